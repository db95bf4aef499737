#!/usr/bin/python3
"""MiniGPT in PyTorch, written the way lab 02's generate.py is written, served to props over
the engine protocol (docs/protocol.md) through props_engine.py.

forward(tokens, past, pos0) is the whole model. cache=False is past=None: all T rows in one
pass, the full T x T causal attention. cache=True passes each layer's past keys and values,
(H, pos0, d_head) each, and gets them back with this call's rows concatenated. The weights are
our shipped safetensors file (docs: /work/shared/spec/minigpt.md), read with the standard
library and torch; token ids are MiniGPT's own.

--fault NAME builds one of the bugs below into the cached path (props --engine process
--engine-cmd 'clients/python/torch_minigpt.py --fault NAME' must catch it); each is a subclass
that overrides one method of MiniGPT, so the correct code path stays the same.

--prefix-cache gives it a prefix cache, as a lab's server adds one to generate.py: every
submitted prompt's past_key_values are kept, keyed by its token prefixes in whole blocks of
--prefix-block tokens (default 16), and a new prompt takes the longest kept prefix's keys and
values (slices, no copy) as its past and runs the rest of the prompt as one forward with it
(PrefixCache below). Its own faults (prefix-*) break the cache, not the model.

usage: torch_minigpt.py [--model FILE] [--threads N] [--fault NAME | --fault list]
                        [--prefix-cache [--prefix-block N]]
"""
import argparse
import collections
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import props_engine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.join(ROOT, "experiments", "17-minigpt", "minigpt.safetensors")


def load_safetensors(path):
    """Every tensor of a safetensors file (F32 only, as our trainer writes), and its metadata."""
    with open(path, "rb") as f:
        head = f.read(8)
        (n,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
        if not 0 < n <= os.fstat(f.fileno()).st_size - 8:
            raise ValueError("not a safetensors file (no header of a plausible length)")
        header = json.loads(f.read(n))
        blob = bytearray(f.read())
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError("%s: tensor %s is %s, not F32" % (path, name, info["dtype"]))
        begin, end = info["data_offsets"]
        t = torch.frombuffer(blob, dtype=torch.float32, count=(end - begin) // 4, offset=begin)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, header.get("__metadata__", {})


class MiniGPT:
    """The model of the spec in plain torch ops. The methods after forward() are the few places
    the cached path could go wrong; the faults below override them."""

    def __init__(self, path):
        self.w, meta = load_safetensors(path)
        c = json.loads(meta["config"])
        self.V, self.D, self.L, self.H = c["vocab_size"], c["d_model"], c["n_layer"], c["n_head"]
        self.dh, self.eps, self.max_seq_len = self.D // self.H, c["ln_eps"], c["max_seq_len"]
        # RoPE's cos and sin: angles in double, rounded to float once (the spec).
        half = self.dh // 2
        inv_freq = [c["rope_theta"] ** (-2.0 * i / self.dh) for i in range(half)]
        angles = [[p * f for f in inv_freq] for p in range(self.max_seq_len)]
        self.cos = torch.tensor([[math.cos(a) for a in row] for row in angles], dtype=torch.float32)
        self.sin = torch.tensor([[math.sin(a) for a in row] for row in angles], dtype=torch.float32)

    def p(self, l, name):
        return self.w["blocks.%d.%s" % (l, name)]

    def forward(self, tokens, past=None, pos0=0, tracer=None):
        """Logits (T, V) of `tokens` at positions pos0..pos0+T-1, and present: per layer (k, v),
        each (H, pos0 + T, d_head). past=None is cache=False (then pos0 is 0)."""
        T, H, dh = len(tokens), self.H, self.dh
        x = self.w["tok_emb.weight"][torch.tensor(tokens)]                 # (T, D)
        pos = torch.arange(pos0, pos0 + T)
        rope_pos = self.positions(pos, past)
        cos, sin = self.cos[rope_pos], self.sin[rope_pos]                  # (T, d_head/2)
        present = []
        for l in range(self.L):
            h = F.layer_norm(x, (self.D,), self.p(l, "ln1.weight"), self.p(l, "ln1.bias"), self.eps)
            q = F.linear(h, self.p(l, "attn.q_proj.weight"), self.p(l, "attn.q_proj.bias"))
            k = F.linear(h, self.p(l, "attn.k_proj.weight"), self.p(l, "attn.k_proj.bias"))
            v = F.linear(h, self.p(l, "attn.v_proj.weight"), self.p(l, "attn.v_proj.bias"))
            q, k, v = (t.view(T, H, dh).transpose(0, 1) for t in (q, k, v))  # (H, T, d_head)
            q, k = rope(q, cos, sin), rope(k, cos, sin)

            if past is None:  # cache=False: the T x T causal attention
                k_all, v_all = k, v
            else:             # cache=True: this call's rows after the cached ones
                past_k, past_v = self.layer_past(past, l)
                k_all, v_all = torch.cat([past_k, k], dim=1), torch.cat([past_v, v], dim=1)
            present.append((k_all, v_all))
            k_read, v_read, key_pos = self.keys_read(k_all, v_all, k, v, pos, past)

            dt = self.attention_dtype(past)
            att = (q.to(dt) @ k_read.to(dt).transpose(1, 2)) * (1.0 / math.sqrt(dh))  # (H, T, S)
            allowed = self.mask(pos, key_pos, past)                                     # (T, S)
            att = F.softmax(att.masked_fill(~allowed, float("-inf")), dim=-1)
            y = (att @ v_read.to(dt)).float()                                           # (H, T, d_head)

            x = x + F.linear(y.transpose(0, 1).reshape(T, self.D), self.p(l, "attn.o_proj.weight"),
                             self.p(l, "attn.o_proj.bias"))
            h2 = F.layer_norm(x, (self.D,), self.p(l, "ln2.weight"), self.p(l, "ln2.bias"), self.eps)
            m = F.linear(F.gelu(F.linear(h2, self.p(l, "mlp.fc_in.weight"), self.p(l, "mlp.fc_in.bias")),
                                approximate="tanh"),
                         self.p(l, "mlp.fc_out.weight"), self.p(l, "mlp.fc_out.bias"))
            x = x + m
            if tracer:
                tracer.layer(l, pos, h, q, k, v, att, allowed, y, h2, m, x, k_read, v_read)
        x = F.layer_norm(x, (self.D,), self.w["ln_f.weight"], self.w["ln_f.bias"], self.eps)
        return x @ self.w["tok_emb.weight"].t(), present

    # ---- where the cached path can go wrong (the faults override one each) ------------------

    def positions(self, pos, past):
        """The positions RoPE rotates the rows at: their own."""
        return pos

    def layer_past(self, past, l):
        """The cached keys and values layer l attends to: its own."""
        return past[l]

    def keys_read(self, k_all, v_all, k, v, pos, past):
        """The keys and values attention reads, and each one's position: the cache, then this call's rows."""
        return k_all, v_all, torch.arange(k_all.shape[1])

    def mask(self, pos, key_pos, past):
        """Causal: row i sees the keys at positions up to its own."""
        return key_pos[None, :] <= pos[:, None]

    def attention_dtype(self, past):
        return torch.float32


def rope(x, cos, sin):
    """Rotate-half RoPE of x (H, T, d_head) with cos, sin (T, d_head/2), in float."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def generate(model, prompt, max_new_tokens, cache=True):
    """Lab 02's generate(), greedy: the tokens after `prompt` (a list of ids), and the logits
    (V) of every step. cache=False recomputes the whole sequence, T rows in one pass, each step."""
    tokens, past, steps = list(prompt), None, []
    for _ in range(max_new_tokens):
        if not cache:
            logits, _ = model.forward(tokens)
        elif past is None:
            logits, past = model.forward(tokens, [empty_kv(model)] * model.L, 0)
        else:
            logits, past = model.forward(tokens[-1:], past, len(tokens) - 1)
        steps.append(logits[-1])
        tokens.append(int(torch.argmax(logits[-1])))
    return tokens[len(prompt):], steps


def empty_kv(model):
    return torch.zeros(model.H, 0, model.dh), torch.zeros(model.H, 0, model.dh)


# ---- the faults: the lab's four pitfalls, then bugs Python engines really have -------------

class StoreBeforeAttend(MiniGPT):
    """The lab's 'off by one in token 1': the current token's K and V are stored in the cache
    before attention and then concatenated again, so the token attends to itself twice."""

    def keys_read(self, k_all, v_all, k, v, pos, past):
        if past is None:
            return super().keys_read(k_all, v_all, k, v, pos, past)
        return torch.cat([k_all, k], 1), torch.cat([v_all, v], 1), torch.cat([torch.arange(k_all.shape[1]), pos])


class DecodeMask(MiniGPT):
    """The lab's 'mask shape wrong for q_len=1 decode': the prefill's causal mask cut to the query
    rows, so a one-token decode sees slot 0 only (google/flax#5591)."""

    def mask(self, pos, key_pos, past):
        if past is None:
            return super().mask(pos, key_pos, past)
        S = len(key_pos)
        return torch.tril(torch.ones(S, S, dtype=torch.bool))[:len(pos)]


class LayerAlias(MiniGPT):
    """The lab's 'layer index swapped': every layer reads layer 0's cache (cache.read(layer=0))."""

    def layer_past(self, past, l):
        return past[0]


class Fp64Attention(MiniGPT):
    """The lab's 'dtype mismatch': the cached path casts to float64 in the middle of attention
    (scores, softmax and the weighted sum in double, back to float after)."""

    def attention_dtype(self, past):
        return torch.float32 if past is None else torch.float64


class ResumePositions(MiniGPT):
    """Positions restart at 0 for a chunk after the first: a multi-token chunk on a non-empty
    cache is rotated at 0..T-1 (huggingface/transformers#43082, position_ids of chunked prefill)."""

    def positions(self, pos, past):
        if past is not None and len(pos) > 1 and pos[0] > 0:
            return pos - pos[0]
        return pos


class RopeTwice(MiniGPT):
    """RoPE applied again to the cached keys: the concatenated K (the cache already rotated) is
    rotated as a whole before attention, so every past key turns twice."""

    def keys_read(self, k_all, v_all, k, v, pos, past):
        n_past = k_all.shape[1] - k.shape[1]
        if past is None or n_past == 0:
            return super().keys_read(k_all, v_all, k, v, pos, past)
        slots = torch.arange(n_past)
        again = rope(k_all[:, :n_past], self.cos[slots], self.sin[slots])
        return torch.cat([again, k], 1), v_all, torch.arange(k_all.shape[1])


class ChunkMaskPeek(MiniGPT):
    """A causal mask off by one for a cached chunk: tril's diagonal one too high, so each row of
    a multi-token chunk also sees the next row's key (a one-token decode has no next row)."""

    def mask(self, pos, key_pos, past):
        if past is None:
            return super().mask(pos, key_pos, past)
        return key_pos[None, :] <= pos[:, None] + 1


# ---- the prefix cache ----------------------------------------------------------------------

class PrefixCache:
    """Past prompts' keys and values: a dictionary from a prompt's first k * block tokens (a
    tuple) to every layer's (K, V) for those positions, (H, k * block, d_head) each, slices of
    the prompt's own past_key_values. Least recently used entries go past `entries`."""

    def __init__(self, block, entries=1024):
        self.block, self.limit, self.kept = block, entries, collections.OrderedDict()

    def key(self, tokens, m):
        return tuple(tokens[:m])

    def lookup(self, tokens):
        """The longest kept prefix of `tokens` in whole blocks, short of its last token: (m, past),
        or (0, None)."""
        m = (len(tokens) - 1) // self.block * self.block
        while m > 0:
            key = self.key(tokens, m)
            past = self.kept.get(key)
            if past is not None:
                self.kept.move_to_end(key)
                return m, past
            m -= self.block
        return 0, None

    def store(self, tokens, present):
        """Keeps every whole-block prefix of a prompt whose past_key_values are `present`."""
        for m in range(self.block, len(tokens) + 1, self.block):
            key = self.key(tokens, m)
            if key not in self.kept:
                self.kept[key] = [(k[:, :m], v[:, :m]) for k, v in present]
            self.kept.move_to_end(key)
        while len(self.kept) > self.limit:
            self.kept.popitem(last=False)

    def forward_rest(self, model, rest, past, m):
        """The prompt's tokens after the m reused ones, at positions m.., on the reused past."""
        return model.forward(rest, past, m)


class BlockKeyPrefixCache(PrefixCache):
    """A prefix cache keyed by each block's own tokens, not by the whole prefix before it (a hash
    of the block alone, without its parent's: vLLM chains them for this reason), so a prompt whose
    block k matches another prompt's block k takes that prompt's rows for every block up to k."""

    def key(self, tokens, m):
        return (m, tuple(tokens[m - self.block:m]))


FAULTS = {
    "store-before-attend": StoreBeforeAttend,
    "decode-mask": DecodeMask,
    "layer-alias": LayerAlias,
    "fp64-attention": Fp64Attention,
    "resume-positions": ResumePositions,
    "rope-twice": RopeTwice,
    "chunk-mask-peek": ChunkMaskPeek,
}
class RestPositionsPrefixCache(PrefixCache):
    """The prompt's rest rotated from position 0 after a hit: its RoPE positions are
    arange(len(rest)), not m + arange(len(rest)), as with model(input_ids=rest,
    past_key_values=past) when position_ids are not offset by the cached length."""

    def forward_rest(self, model, rest, past, m):
        if m == 0:
            return model.forward(rest, past, m)
        own = model.positions
        model.positions = lambda pos, past: pos - m
        try:
            return model.forward(rest, past, m)
        finally:
            model.positions = own


PREFIX_FAULTS = {  # with --prefix-cache: bugs of the prefix cache, the model left as it is
    "prefix-block-key": BlockKeyPrefixCache,
    "prefix-positions": RestPositionsPrefixCache,
}


# ---- the protocol -------------------------------------------------------------------------

class Tracer:
    """Collects the trace records (docs/protocol.md) of one forward call."""

    def __init__(self, req, seq, pass_):
        self.req, self.seq, self.pass_, self.records = req, seq, pass_, []
        self.cache_reads = req.get("cache_reads", True)

    def add(self, layer, head, site, pos, data):
        self.records.append(props_engine.trace_record(layer, head, site, self.seq, pos, data, self.pass_))

    def layer(self, l, pos, ln1, q, k, v, att, allowed, y, ln2, mlp, block_out, k_read, v_read):
        for i, p in enumerate(pos.tolist()):
            if not props_engine.wants(self.req, p):
                continue
            self.add(l, -1, "ln1", p, ln1[i])
            for h in range(q.shape[0]):
                self.add(l, h, "q", p, q[h, i])
                self.add(l, h, "k", p, k[h, i])
                self.add(l, h, "v", p, v[h, i])
                self.add(l, h, "probs", p, att[h, i][allowed[i]])  # over the slots the row read
                self.add(l, h, "attn_out", p, y[h, i])
            self.add(l, -1, "ln2", p, ln2[i])
            self.add(l, -1, "mlp", p, mlp[i])
            self.add(l, -1, "block_out", p, block_out[i])
        if self.cache_reads:  # the key and value rows attention read, slot by slot
            for slot in range(int(pos[-1]) + 1):
                if props_engine.wants(self.req, slot):
                    for h in range(k_read.shape[0]):
                        self.add(l, h, "k_read", slot, k_read[h, slot])
                        self.add(l, h, "v_read", slot, v_read[h, slot])


class TorchEngine(props_engine.Engine):
    name = "torch-minigpt"
    capabilities = {"kv_rows": True, "trace": True}

    def __init__(self, model, threads, fault, prefix_cache=None):
        self.model = model
        self.threads = threads  # 1: props_engine runs this engine on props' CPU
        self.vocab_size, self.positions = model.V, model.max_seq_len
        self.max_recompute = model.max_seq_len
        self.make_prefix_cache = prefix_cache  # PrefixCache or a faulty one, made empty at hello and reset
        self.prefix_block = prefix_cache().block if prefix_cache else 0
        self.version = "torch %s, %d thread%s, fault %s%s" % (
            torch.__version__, threads, "" if threads == 1 else "s", fault or "none",
            ", prefix cache" if prefix_cache else "")

    def on_hello(self, req):
        reply = super().on_hello(req)
        self.cache = [[empty_kv(self.model)] * self.model.L for _ in range(self.sequences)]
        self.prefixes = self.make_prefix_cache() if self.make_prefix_cache else None
        return reply

    def run_forward(self, seq, tokens, cached, trace):
        """One forward call: the logits (T, V), and the trace records when asked."""
        if not tokens:
            raise props_engine.ProtocolError("bad_request", "no tokens")
        if any(not isinstance(t, int) or not 0 <= t < self.vocab_size for t in tokens):
            raise props_engine.ProtocolError("bad_request", "token id outside 0..%d" % (self.vocab_size - 1))
        pos0 = len(self.seq(seq)) if cached else 0
        if pos0 + len(tokens) > (self.positions if cached else self.max_recompute):
            raise props_engine.ProtocolError("out_of_capacity", "%d positions" % (pos0 + len(tokens)))
        pass_ = "uncached" if not cached else "prefill" if pos0 == 0 else "decode" if len(tokens) == 1 else "resume"
        tracer = Tracer(trace, seq, pass_) if trace is not None else None
        with torch.no_grad():
            logits, present = self.model.forward(tokens, self.cache[seq] if cached else None, pos0, tracer)
        if cached:
            self.cache[seq] = present
            self.seq(seq).extend(tokens)
        return logits, (tracer.records if tracer else None)

    def reply(self, rows, traces, shape=None):
        out = {"logits": props_engine.tensor(rows, shape)}
        if any(t is not None for t in traces):
            out["trace"] = [r for t in traces if t for r in t]
        return out

    def on_forward_cached(self, req):
        logits, tr = self.run_forward(req["seq"], req["tokens"], True, req.get("trace"))
        return self.reply(logits if req.get("all_rows") else logits[-1], [tr])

    def on_forward_uncached(self, req):
        logits, tr = self.run_forward(req.get("seq", 0), req["tokens"], False, req.get("trace"))
        return self.reply(logits if req.get("all_rows") else logits[-1], [tr])

    def on_forward_batch(self, req):  # one sequence after another: no padded batch
        out = [self.run_forward(c["seq"], c["tokens"], True, req.get("trace")) for c in req["chunks"]]
        return self.reply(torch.stack([lg[-1] for lg, _ in out]), [tr for _, tr in out])

    def on_decode(self, req):
        out = [self.run_forward(s, [t], True, req.get("trace")) for s, t in zip(req["seqs"], req["tokens"])]
        return self.reply(torch.stack([lg[-1] for lg, _ in out]), [tr for _, tr in out])

    def on_truncate(self, req):
        super().on_truncate(req)
        n = req["pos"]
        self.cache[req["seq"]] = [(k[:, :n], v[:, :n]) for k, v in self.cache[req["seq"]]]
        return {}

    def on_fork(self, req):
        n = req["prefix_len"]
        if not 0 <= n <= len(self.seq(req["src"])):
            raise props_engine.ProtocolError("bad_request", "prefix_len %d outside 0..%d" % (n, len(self.seq(req["src"]))))
        super().on_fork(req)
        self.cache[req["dst"]] = [(k[:, :n], v[:, :n]) for k, v in self.cache[req["src"]]]
        return {}

    def on_reset(self, req):
        super().on_reset(req)
        for i in ([req["seq"]] if "seq" in req else range(self.sequences)):
            self.cache[i] = [empty_kv(self.model)] * self.model.L
        if "seq" not in req and self.prefixes is not None:  # a case reuses nothing of an earlier one
            self.prefixes = self.make_prefix_cache()
        return {}

    def on_submit(self, req):
        """A new request: the longest kept prefix's past_key_values as the past, the rest of the
        prompt as one forward with it (a cold prompt: all of it, on an empty past), and the
        prompt's own past_key_values kept for later prompts."""
        seq, tokens = self.submitted_prompt(req)
        reused, past = self.prefixes.lookup(tokens)
        with torch.no_grad():
            logits, present = self.prefixes.forward_rest(
                self.model, tokens[reused:], past or [empty_kv(self.model)] * self.model.L, reused)
        self.cache[seq] = present
        self.seq(seq).extend(tokens)
        self.prefixes.store(tokens, present)
        return self.submitted(logits[-1], reused, len(tokens))

    def on_free(self, req):
        super().on_free(req)
        self.cache[req["seq"]] = [empty_kv(self.model)] * self.model.L
        return {}

    def on_cache_rows(self, req):
        self.seq(req["seq"])  # refused if freed
        layers = self.cache[self.index(req["seq"])]
        return props_engine.kv_rows(torch.stack([k for k, _ in layers]), torch.stack([v for _, v in layers]))

    def on_recompute_rows(self, req):
        with torch.no_grad():
            _, present = self.model.forward(req["tokens"])
        return props_engine.kv_rows(torch.stack([k for k, _ in present]), torch.stack([v for _, v in present]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="safetensors file (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--fault", default=None, help="a bug in the cached path; 'list' lists them")
    ap.add_argument("--prefix-cache", action="store_true", help="keep prompts' past_key_values for later prompts")
    ap.add_argument("--prefix-block", type=int, default=16, help="the prefix cache's granularity in tokens (16)")
    args = ap.parse_args()
    if args.fault == "list":
        for name, cls in list(FAULTS.items()) + list(PREFIX_FAULTS.items()):
            print("%-20s %s" % (name, " ".join(cls.__doc__.split())))
        return 0
    if args.fault is not None and args.fault not in FAULTS and args.fault not in PREFIX_FAULTS:
        print("torch_minigpt: --fault %s: no such fault (%s)" % (args.fault, ", ".join(list(FAULTS) + list(PREFIX_FAULTS))),
              file=sys.stderr)
        return 2
    if args.fault in PREFIX_FAULTS and not args.prefix_cache:
        print("torch_minigpt: --fault %s: a fault of the prefix cache needs --prefix-cache" % args.fault, file=sys.stderr)
        return 2
    if not 1 <= args.prefix_block <= 512:
        print("torch_minigpt: --prefix-block %d: must be in 1..512" % args.prefix_block, file=sys.stderr)
        return 2
    if args.threads < 1:
        print("torch_minigpt: --threads %d: must be at least 1" % args.threads, file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        model = FAULTS.get(args.fault, MiniGPT)(args.model)
    except (OSError, ValueError, KeyError) as e:
        print("torch_minigpt: --model %s: %s" % (args.model, e), file=sys.stderr)
        return 2
    prefix_cache = None
    if args.prefix_cache:
        cls = PREFIX_FAULTS.get(args.fault, PrefixCache)
        prefix_cache = lambda: cls(args.prefix_block)  # noqa: E731
    engine = TorchEngine(model, args.threads, args.fault, prefix_cache)
    print("torch_minigpt: %s, %s" % (args.model, engine.version), file=sys.stderr, flush=True)
    engine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
