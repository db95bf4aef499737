#!/usr/bin/python3
"""Experiment 24: lab 02's property on the PyTorch MiniGPT (clients/python/torch_minigpt.py),
as the lab's learners would run it: generate(prompt, cache=True) against cache=False.

1. The lab's runs, greedy: the 50 prompts of experiments/22-cache-correctness/results.json with
   64 new tokens; 256 new tokens on prompts 0, 5, ..., 45; and 50 resumes (the prompt, 4 tokens,
   the next prompt appended as one chunk, 12 more tokens). Every step's logits are compared
   cached against full recompute: bit-identical, the largest ULP distance and |d|, and the step
   where the tokens part. With 1 thread; the 64-token runs again with 2.
2. The probe: where do the two paths part, and in which op? For T = 1..40 tokens (prefixes of
   10 sentences: prompts 0, 5, ..., 45 and their continuations in experiment 22), it records every op's output (torch.nn.functional's calls: the
   LayerNorms, the linear layers, softmax's input (the scores) and output, GELU; and the logits)
   and compares row i of a call of T rows with row i of a call of T+1 rows (a cached prefill
   against full recompute, the situation of props' p6), and a cached decode's one row with the
   same row of full recompute. It names the first op, in dataflow order, whose row differs.
   Then each op alone on seeded inputs: the linear layers and the logits' product (M rows
   against one), softmax with masked columns after a row, q @ K^T and P @ V.

Writes results.json and manifest.json into --out.
usage: lab.py [--model FILE] [--out DIR]
"""
import argparse
import hashlib
import json
import os
import platform
import struct
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import torch_minigpt  # noqa: E402
from torch_minigpt import MiniGPT, empty_kv  # noqa: E402


def ulp_distance(a, b):
    """Per element: how many floats lie between a and b (f32, as props/level.h counts)."""
    ia = a.contiguous().view(torch.int32).to(torch.int64)
    ib = b.contiguous().view(torch.int32).to(torch.int64)
    ia = torch.where(ia < 0, -(ia & 0x7FFFFFFF), ia)  # sign-magnitude to a monotonic line
    ib = torch.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return (ia - ib).abs()


def compare(steps_a, steps_b, tokens_a, tokens_b):
    """Lab 02's verdict for one run: cached (a) against full recompute (b), step by step."""
    token_step = next((i for i, (x, y) in enumerate(zip(tokens_a, tokens_b)) if x != y), None)
    last = len(steps_a) if token_step is None else token_step + 1  # the contexts differ after it
    bits_step, max_ulp, max_abs = None, 0, 0.0
    for i in range(last):
        if not torch.equal(steps_a[i], steps_b[i]):
            bits_step = i if bits_step is None else bits_step
            max_ulp = max(max_ulp, int(ulp_distance(steps_a[i], steps_b[i]).max()))
            max_abs = max(max_abs, float((steps_a[i] - steps_b[i]).abs().max()))
    return {"tokens_equal": token_step is None, "first_token_step": token_step,
            "bit_identical": bits_step is None and token_step is None, "first_bits_step": bits_step,
            "max_ulp": max_ulp, "max_abs": max_abs}


def resume(model, prompt, chunk, cache):
    """The prompt, 4 greedy tokens, `chunk` appended in one call, 12 more greedy tokens."""
    tokens, steps, past, appended = list(prompt), [], None, False
    for step in range(17):
        if step == 4 and not appended:
            tokens += chunk
            appended = True
        if not cache:
            logits, _ = model.forward(tokens)
        elif past is None:
            logits, past = model.forward(tokens, [empty_kv(model)] * model.L, 0)
        else:
            n_new = len(chunk) + 1 if step == 4 else 1
            logits, past = model.forward(tokens[-n_new:], past, len(tokens) - n_new)
        steps.append(logits[-1])
        if step < 16:
            tokens.append(int(torch.argmax(logits[-1])))
    return tokens, steps


def lab_runs(model, prompts, kinds):
    runs = []
    with torch.no_grad():
        for p in prompts if "64" in kinds else []:
            ta, sa = torch_minigpt.generate(model, p["prompt_ids"], 64, cache=True)
            tb, sb = torch_minigpt.generate(model, p["prompt_ids"], 64, cache=False)
            runs.append(dict(kind="64", prompt=p["index"], **compare(sa, sb, ta, tb)))
        for p in prompts[::5] if "256" in kinds else []:
            ta, sa = torch_minigpt.generate(model, p["prompt_ids"], 256, cache=True)
            tb, sb = torch_minigpt.generate(model, p["prompt_ids"], 256, cache=False)
            runs.append(dict(kind="256", prompt=p["index"], **compare(sa, sb, ta, tb)))
        for i, p in enumerate(prompts if "resume" in kinds else []):
            chunk = prompts[(i + 1) % len(prompts)]["prompt_ids"]
            ta, sa = resume(model, p["prompt_ids"], chunk, cache=True)
            tb, sb = resume(model, p["prompt_ids"], chunk, cache=False)
            runs.append(dict(kind="resume", prompt=p["index"], **compare(sa, sb, ta, tb)))
    return runs


def summary(runs, kinds):
    out = {}
    for kind in kinds:
        rs = [r for r in runs if r["kind"] == kind]
        out[kind] = {"runs": len(rs), "bit_identical": sum(r["bit_identical"] for r in rs),
                     "tokens_equal": sum(r["tokens_equal"] for r in rs),
                     "max_ulp": max(r["max_ulp"] for r in rs), "max_abs": max(r["max_abs"] for r in rs)}
    return out


# ---- the probe -------------------------------------------------------------------------------

class Recorder:
    """Stands in for torch.nn.functional inside torch_minigpt: calls through and records each
    op's output (softmax's input too: the masked, scaled scores)."""

    def __init__(self, real):
        self.real, self.log = real, []

    def __getattr__(self, name):
        fn = getattr(self.real, name)

        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            if name == "softmax":
                self.log.append(("scores", args[0].clone()))
            self.log.append((name, out.clone()))
            return out
        return call


OPS_PER_LAYER = ["ln1", "q_proj", "k_proj", "v_proj", "scores", "softmax", "o_proj", "ln2", "fc_in", "gelu",
                 "fc_out"]


def named_ops(log, L):
    """(layer, op) names for the recorder's log, in call order."""
    names = [(l, op) for l in range(L) for op in OPS_PER_LAYER] + [(None, "ln_f")]
    assert len(names) == len(log), (len(names), len(log))
    return [(n, t) for n, (_, t) in zip(names, log)]


def row(t, i, op):
    """Row i of an op's output: (T, X) tensors by row; (H, T, S) scores and probabilities by the
    row's own keys 0..S-1 of the call (the query's causal slots, and nothing past them)."""
    if op in ("scores", "softmax"):
        return t[:, i, :]
    return t[i]


def traced_forward(model, tokens, past=None, pos0=0):
    rec = Recorder(torch_minigpt.F)
    torch_minigpt.F = rec
    try:
        with torch.no_grad():
            logits, present = model.forward(tokens, past, pos0)
    finally:
        torch_minigpt.F = rec.real
    return named_ops(rec.log, model.L) + [((None, "logits"), logits)], present


def first_parting(ops_a, ia, ops_b, ib):
    """The first op whose row ia of run a differs from row ib of run b; None if none does."""
    for ((layer, op), ta), (_, tb) in zip(ops_a, ops_b):
        ra, rb = row(ta, ia, op), row(tb, ib, op)
        if op in ("scores", "softmax"):  # compare the slots both rows may read: 0..pos
            n = min(ra.shape[-1], rb.shape[-1])
            ra, rb = ra[..., :n], rb[..., :n]
        if not torch.equal(ra, rb):
            return {"layer": layer, "op": op, "max_ulp": int(ulp_distance(ra.float(), rb.float()).max())}
    return None


def probe(model, sentence, t_max):
    """For T = 1..t_max: a prefill of T rows against full recompute of T+1 rows (every row), and
    a decode of row T on a cache of T against full recompute of T+1 rows (row T), noting whether
    the cache it reads (the prefill's K/V) equals recompute's rows: only then is a parting in
    the decode's own ops (scores: q @ K^T) not inherited from the prefill."""
    prefill, decode = [], []
    full = {T: traced_forward(model, sentence[:T]) for T in range(1, t_max + 2)}
    for T in range(1, t_max + 1):
        ops_a, present = full[T]
        ops_b, _ = full[T + 1]
        parts = [first_parting(ops_a, i, ops_b, i) for i in range(T)]
        first = next((dict(row=i, **p) for i, p in enumerate(parts) if p), None)
        prefill.append({"T": T, "rows_differing": sum(p is not None for p in parts), "first": first})
        ops_d, _ = traced_forward(model, sentence[T:T + 1], present, T)
        _, present_b = full[T + 1]
        same_cache = all(torch.equal(k, kb[:, :T]) and torch.equal(v, vb[:, :T])
                         for (k, v), (kb, vb) in zip(present, present_b))
        decode.append({"T": T, "cache_equals_recompute": same_cache, "first": first_parting(ops_d, 0, ops_b, T)})
    return {"prefill_T_vs_recompute_T_plus_1": prefill, "decode_vs_recompute": decode}


def linear_rows(model, t_max):
    """The linear layers alone, on layer 0's weights: for M = 1..t_max rows (seeded normal
    inputs), which rows of an M-row product differ from the same row computed alone."""
    g = torch.Generator().manual_seed(24)
    out = {}
    for name in ("attn.q_proj", "attn.o_proj", "mlp.fc_in", "mlp.fc_out"):
        w, b = model.p(0, name + ".weight"), model.p(0, name + ".bias")
        x = torch.randn(t_max, w.shape[1], generator=g)
        alone = torch.cat([torch.nn.functional.linear(x[i:i + 1], w, b) for i in range(t_max)])
        out[name] = [[i for i in range(M) if not torch.equal(torch.nn.functional.linear(x[:M], w, b)[i], alone[i])]
                     for M in range(1, t_max + 1)]
    w = model.w["tok_emb.weight"]
    x = torch.randn(t_max, w.shape[1], generator=g)
    alone = torch.cat([x[i:i + 1] @ w.t() for i in range(t_max)])
    out["logits (x @ tok_emb^T)"] = [[i for i in range(M) if not torch.equal((x[:M] @ w.t())[i], alone[i])]
                                     for M in range(1, t_max + 1)]
    return out


def attention_rows(t_max):
    """Attention's three ops alone, on seeded normal inputs (4 heads, d_head 16):
    - softmax: a row of n scores alone against the same row followed by k masked (-inf)
      columns, as row i of a longer causal call has; which (n, k) change the probabilities;
    - q @ K^T and P @ V: which T give a row of a T-row product other bytes than the row alone."""
    g = torch.Generator().manual_seed(24)
    softmax = {}
    for n in range(1, t_max + 1):
        x = torch.randn(4, 1, n, generator=g)
        alone = torch.nn.functional.softmax(x, dim=-1)
        ks = [k for k in range(1, 9) if not torch.equal(
            alone, torch.nn.functional.softmax(torch.cat([x, torch.full((4, 1, k), float("-inf"))], -1), dim=-1)[..., :n])]
        if ks:
            softmax[str(n)] = ks
    scores, weighted = [], []
    for T in range(1, t_max + 1):
        q, k = torch.randn(4, T, 16, generator=g), torch.randn(4, T, 16, generator=g)
        if not torch.equal(q @ k.transpose(1, 2), torch.cat([q[:, i:i + 1] @ k.transpose(1, 2) for i in range(T)], 1)):
            scores.append(T)
        p, v = torch.nn.functional.softmax(torch.randn(4, T, T, generator=g), -1), torch.randn(4, T, 16, generator=g)
        if not torch.equal(p @ v, torch.cat([p[:, i:i + 1] @ v for i in range(T)], 1)):
            weighted.append(T)
    return {"softmax_n_to_masked_k_that_change_it": softmax, "scores_T_with_a_row_differing": scores,
            "weighted_sum_T_with_a_row_differing": weighted}


def tally(entries):
    counts = {}
    for e in entries:
        key = "none" if e["first"] is None else "layer %s %s" % (e["first"]["layer"], e["first"]["op"])
        counts[key] = counts.get(key, 0) + 1
    return counts


# ---- the manifest --------------------------------------------------------------------------

def cpu():
    model, flags = "?", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    isa = [f for f in flags if f.startswith(("avx", "sse", "fma", "f16c", "amx"))]
    return {"model": model, "logical_cpus": os.cpu_count(), "isa_flags": sorted(isa)}


def git_commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=torch_minigpt.DEFAULT_MODEL)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    prompts = json.load(open(os.path.join(ROOT, "experiments", "22-cache-correctness", "results.json")))["prompts"]
    model = MiniGPT(args.model)
    results = {"experiment": "24-pytorch-cache", "threads": {}}
    seconds = {}
    torch.set_num_threads(1)
    start = time.time()
    pr = {"sentences": []}
    for p in prompts[::5]:  # the prompt and its continuation in experiment 22, 41 tokens
        sentence = (p["prompt_ids"] + p["generated_ids"])[:41]
        pr["sentences"].append(dict(prompt=p["index"], ids=sentence, **probe(model, sentence, 40)))
    pr["tally"] = {"prefill": tally(e for s in pr["sentences"] for e in s["prefill_T_vs_recompute_T_plus_1"]),
                   "decode": tally(e for s in pr["sentences"] for e in s["decode_vs_recompute"]),
                   "decode, on a cache equal to recompute's rows": tally(
                       e for s in pr["sentences"] for e in s["decode_vs_recompute"] if e["cache_equals_recompute"])}
    pr["linear_rows_differing_from_alone"] = linear_rows(model, 40)
    pr["attention_ops_alone"] = attention_rows(40)
    seconds["probe"] = round(time.time() - start, 1)
    results["probe"] = pr
    print("lab.py: probe: %s" % json.dumps(pr["tally"]), file=sys.stderr, flush=True)
    # 1 thread: every run; 2 threads: the 64-token runs (on this shared 2-core machine a second
    # torch thread mostly waits, so the whole set took too long to repeat).
    logits_by_threads = {}
    for threads, kinds in ((1, ("64", "256", "resume")), (2, ("64",))):
        torch.set_num_threads(threads)
        start = time.time()
        runs = lab_runs(model, prompts, kinds)
        seconds["lab runs %s, %d thread%s" % ("+".join(kinds), threads, "" if threads == 1 else "s")] = \
            round(time.time() - start, 1)
        results["threads"][str(threads)] = {"summary": summary(runs, kinds), "runs": runs}
        with torch.no_grad():
            logits_by_threads[threads] = [model.forward(p["prompt_ids"] + [1] * 20)[0] for p in prompts]
        print("lab.py: %d thread(s): %s" % (threads, json.dumps(summary(runs, kinds))), file=sys.stderr, flush=True)
    results["threads_1_vs_2"] = {
        "full_recompute_logits_bit_identical": sum(torch.equal(a, b) for a, b in zip(logits_by_threads[1],
                                                                                    logits_by_threads[2])),
        "of": len(prompts)}
    torch.set_num_threads(1)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    manifest = {
        "experiment": "24-pytorch-cache",
        "command": "scripts/regen-experiments (experiments/24-pytorch-cache/regen.sh: lab.py, then props at bits and tokens)",
        "model_file": os.path.relpath(os.path.abspath(args.model), ROOT),
        "model_sha256": sha,
        "props_commit": git_commit(),
        "engine": "clients/python/torch_minigpt.py",
        "torch_version": torch.__version__,
        "torch_config": torch.__config__.show().splitlines(),
        "torch_parallel_info": torch.__config__.parallel_info().splitlines(),
        "threads": "1 (torch.set_num_threads) for the probe and every lab run, then 2 for the 64-token runs",
        "python": platform.python_version(),
        "numpy": __import__("numpy").__version__,
        "cpu": cpu(),
        "seconds": seconds,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
