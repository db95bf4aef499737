"""A client for props' engine protocol (docs/protocol.md), Python standard library only.

Write an engine by subclassing Engine, setting a few attributes and overriding logits();
run() then answers props on stdin/stdout:

    class Mine(props_engine.Engine):
        name, version, vocab_size = "mine", "1", 989
        def logits(self, tokens, start):
            return [[0.0] * self.vocab_size for _ in tokens[start:]]
    Mine().run()

The base class keeps each sequence's tokens and answers the cached operations by calling
logits() on the whole sequence, so an engine with no cache of its own is correct by
construction. An engine with a real cache overrides on_forward_cached, on_decode, ... (one
method per op, named on_<op>, taking the request and returning the reply's fields). Raise
ProtocolError(code, message) to answer with an error; anything else becomes "internal".

An engine with a prefix cache sets prefix_block (its granularity of reuse, in tokens): hello
then claims "prefix_cache", and the base answers submit (the prompt as one chunk on an emptied
sequence, reusing nothing: correct, if no cache) and free (the sequence is refused until a
submit, reset or fork makes it live again). A real prefix cache overrides on_submit and
returns submitted(logits, reused, cursor).
"""
import base64
import json
import os
import struct
import sys

PROTOCOL = 1


class ProtocolError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def tensor(rows, shape=None):
    """The protocol's f32 tensor of a list of floats (row-major, `shape` required), or of a numpy
    array or torch tensor (any float dtype, rounded to f32; its own shape unless `shape` is given)."""
    if hasattr(rows, "detach"):  # a torch tensor
        rows = rows.detach().cpu().float().contiguous()
        shape = list(rows.shape) if shape is None else shape
        try:
            rows = rows.numpy()
        except (ImportError, RuntimeError):  # torch without numpy
            rows = rows.flatten().tolist()
    if hasattr(rows, "astype"):  # a numpy array
        shape = list(rows.shape) if shape is None else shape
        data = rows.astype("<f4").tobytes(order="C")
    else:
        data = struct.pack("<%df" % len(rows), *rows)
    return {"dtype": "f32", "shape": shape, "data": base64.b64encode(data).decode("ascii")}


def wants(trace, pos):
    """Whether a request's `trace` asks for the row (or cache slot) at absolute position pos."""
    return trace is not None and (not trace.get("positions") or pos in trace["positions"])


def trace_record(layer, head, site, seq, pos, data, pass_=None):
    """One record of a reply's `trace` (docs/protocol.md, "Tracing a call"): head -1 for a
    whole-row site; data a 1-D list, numpy array or torch tensor."""
    n = len(data) if isinstance(data, list) else None
    record = {"layer": layer, "head": head, "site": site, "seq": seq, "pos": pos,
              "data": tensor(data, [n] if n is not None else None)}
    if pass_ is not None:
        record["pass"] = pass_
    return record


def kv_rows(k, v):
    """The reply of cache_rows and recompute_rows: K (after RoPE) and V, each (L, H, T, d_head)."""
    return {"k": tensor(k), "v": tensor(v)}


class Engine:
    name = "python"
    version = "0"
    vocab = "minigpt"      # or the token strings in this engine's id order, or "tokenize"
    vocab_size = 0
    sequences = 4
    positions = 512
    max_recompute = 512
    capabilities = {}      # {"kv_rows": True, "trace": True} if the on_ methods exist
    threads = 1            # threads logits() computes with; with 1 it runs on props' CPU
    prefix_block = 0       # > 0: a prefix cache reusing multiples of this many tokens (submit, free)

    def logits(self, tokens, start):
        """The logits of rows start..len(tokens)-1 of full recompute of `tokens`: a list of
        rows, each vocab_size floats. The one method every engine writes."""
        raise NotImplementedError

    def tokenize(self, text):
        """Only with vocab = "tokenize": this engine's token ids (at least one) for one word of
        props' grammar ("<bos>", ".", "yesterday", ...); props concatenates a prompt's words'
        ids. docs/protocol.md, "An engine with its own tokenizer"."""
        raise NotImplementedError

    # ---- the operations -------------------------------------------------------------------

    def on_hello(self, req):
        if PROTOCOL not in req.get("protocol", []):
            raise ProtocolError("bad_request", "this engine speaks protocol %d" % PROTOCOL)
        self.seqs = [[] for _ in range(self.sequences)]
        self.freed = set()
        reply = {"name": self.name, "version": self.version, "protocol": PROTOCOL, "vocab": self.vocab,
                 "vocab_size": self.vocab_size, "sequences": self.sequences, "positions": self.positions,
                 "max_recompute": self.max_recompute, "capabilities": dict(self.capabilities)}
        if self.prefix_block:
            reply["capabilities"]["prefix_cache"] = True
            reply["prefix_block"] = self.prefix_block
        # props and the engine take turns, so an engine computing on one thread runs on props' CPU
        # (a wake-up on another core costs tens of microseconds a request in a VM).
        if isinstance(req.get("cpu"), int) and self.threads == 1 and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(0, {req["cpu"]})
                reply["pinned"] = True
            except OSError:
                reply["pinned"] = False
        return reply

    def append(self, seq, tokens, all_rows):
        """Appends `tokens` to sequence `seq`; the rows of the new positions (or the last)."""
        s = self.seq(seq)
        if len(s) + len(tokens) > self.positions:
            raise ProtocolError("out_of_capacity", "sequence %d: %d positions would exceed %d"
                                % (seq, len(s) + len(tokens), self.positions))
        start = len(s)
        s.extend(tokens)
        return self.logits(s, start if all_rows else len(s) - 1)

    def on_forward_cached(self, req):
        rows = self.append(req["seq"], req["tokens"], req.get("all_rows", False))
        return self.reply_rows(rows, len(req["tokens"]), req.get("all_rows", False))

    def on_forward_batch(self, req):
        rows = [self.append(c["seq"], c["tokens"], False)[0] for c in req["chunks"]]
        return {"logits": tensor([x for r in rows for x in r], [len(rows), self.vocab_size])}

    def on_decode(self, req):
        rows = [self.append(s, [t], False)[0] for s, t in zip(req["seqs"], req["tokens"])]
        return {"logits": tensor([x for r in rows for x in r], [len(rows), self.vocab_size])}

    def on_forward_uncached(self, req):
        tokens, all_rows = req["tokens"], req.get("all_rows", False)
        if len(tokens) > self.max_recompute:
            raise ProtocolError("out_of_capacity", "%d tokens exceed %d" % (len(tokens), self.max_recompute))
        return self.reply_rows(self.logits(tokens, 0 if all_rows else len(tokens) - 1), len(tokens), all_rows)

    def on_tokenize(self, req):
        return {"ids": [self.tokenize(text) for text in req["texts"]]}

    def on_truncate(self, req):
        s = self.seq(req["seq"])
        if not 0 <= req["pos"] <= len(s):
            raise ProtocolError("bad_request", "pos %d outside 0..%d" % (req["pos"], len(s)))
        del s[req["pos"]:]
        return {}

    def on_fork(self, req):
        self.seqs[self.index(req["dst"])] = list(self.seq(req["src"])[:req["prefix_len"]])
        self.freed.discard(req["dst"])
        return {}

    def on_reset(self, req):
        for i in ([self.index(req["seq"])] if "seq" in req else range(self.sequences)):
            self.seqs[i] = []
            self.freed.discard(i)
        return {}

    def on_submit(self, req):
        """A new request: the sequence emptied, then the prompt as one chunk; nothing reused."""
        seq, tokens = self.submitted_prompt(req)
        rows = self.append(seq, tokens, False)
        return self.submitted(rows[0], 0, len(tokens))

    def on_free(self, req):
        self.require_prefix_cache()
        self.seq(req["seq"])  # a second free is refused, as every call on a freed sequence
        seq = self.index(req["seq"])
        self.seqs[seq] = []
        self.freed.add(seq)
        return {}

    # ---- plumbing ---------------------------------------------------------------------------

    def index(self, seq):
        if not isinstance(seq, int) or not 0 <= seq < self.sequences:
            raise ProtocolError("bad_request", "seq %r outside 0..%d" % (seq, self.sequences - 1))
        return seq

    def seq(self, seq):
        if self.index(seq) in self.freed:
            raise ProtocolError("bad_request", "seq %d is freed (a submit, reset or fork makes it live)" % seq)
        return self.seqs[seq]

    def require_prefix_cache(self):
        if not self.prefix_block:
            raise ProtocolError("not_implemented", "this engine claims no prefix_cache")

    def submitted_prompt(self, req):
        """A submit request's sequence (emptied, live again) and prompt, checked."""
        self.require_prefix_cache()
        seq, tokens = self.index(req["seq"]), req["tokens"]
        if not isinstance(tokens, list) or not tokens:
            raise ProtocolError("bad_request", "tokens: a prompt is at least one token")
        if any(not isinstance(t, int) or not 0 <= t < self.vocab_size for t in tokens):
            raise ProtocolError("bad_request", "tokens: a token id outside 0..%d" % (self.vocab_size - 1))
        if len(tokens) > self.positions:
            raise ProtocolError("out_of_capacity", "a prompt of %d tokens exceeds %d positions"
                                % (len(tokens), self.positions))
        self.freed.discard(seq)
        self.seqs[seq] = []
        return seq, tokens

    def submitted(self, row, reused, cursor):
        """submit's reply: the prompt's last row of logits, the tokens reused, the cursor."""
        return {"logits": tensor(row, None if hasattr(row, "shape") else [self.vocab_size]),
                "reused": reused, "cursor": cursor}

    def reply_rows(self, rows, n, all_rows):
        shape = [n, self.vocab_size] if all_rows else [self.vocab_size]
        return {"logits": tensor([x for r in rows for x in r], shape)}

    def handle(self, req):
        rid = req.get("id") if isinstance(req, dict) else None
        op = req.get("op") if isinstance(req, dict) else None
        handler = getattr(self, "on_" + op, None) if isinstance(op, str) else None
        try:
            if handler is None:
                raise ProtocolError("unknown_op", "%s: no such op" % op)
            reply = handler(req)
        except ProtocolError as e:
            return {"re": rid, "error": {"code": e.code, "message": "%s: %s" % (op, e)}}
        except (KeyError, TypeError, ValueError) as e:
            return {"re": rid, "error": {"code": "bad_request", "message": "%s: %r" % (op, e)}}
        except Exception as e:  # the engine's own bug: still one reply, so props can say so
            return {"re": rid, "error": {"code": "internal", "message": "%s: %r" % (op, e)}}
        reply["re"] = rid
        return reply

    def run(self, stdin=sys.stdin, stdout=sys.stdout):
        """Answers requests until stdin closes."""
        for line in stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError:
                req = None
            reply = self.handle(req) if isinstance(req, dict) else \
                {"re": None, "error": {"code": "bad_request", "message": "a line that is not a JSON object"}}
            if "error" in reply:
                print("%s: %s" % (self.name, reply["error"]["message"]), file=sys.stderr, flush=True)
            stdout.write(json.dumps(reply, separators=(",", ":")) + "\n")
            stdout.flush()
