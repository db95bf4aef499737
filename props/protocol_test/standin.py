#!/usr/bin/python3
"""A broken engine for props' protocol tests: it passes requests through to a real engine
(CMD, e.g. minigpt serve) and misbehaves on request N (0 is hello) in one way, MODE:
  version  answers hello with a protocol props did not offer
  exit     exits with status 3 (after a line on stderr)
  garbage  answers with a line that is not JSON
  hang     never answers
  wrong-id answers with another request's id
  nan      answers with NaN logits
  shape    answers with logits of the wrong shape
  error    answers with an internal error
  unknown  answers with unknown_op (an op it does not implement)
  noisy    from request N on, every other forward_uncached reply has the lowest bit of its first
           logit flipped: full recompute that is not deterministic (props --conform says so)
  word=W   dies of SIGSEGV on any request whose tokens hold the word W (N unused): a crash
           that is a pure function of the case, which props must shrink like a failure
  random   dies of SIGSEGV on a forward request with probability 1/200, drawn from a
           generator seeded with N, in the first process only (its starts are counted in
           PIDFILE.starts; the restarted one never dies): a crash the same case does not
           repeat, which props calls flaky
  plain    (not a breakage) answers hello with no capabilities (no K/V rows, no trace): the
           engine as one that offers logits alone
  cursor   answers a start_request with the cursor -1
  The prefix cache's breakages (CMD claims prefix_cache; N unused, each applies to every reply):
  noblock  answers hello with prefix_cache but without prefix_block
  overreuse  answers every submit with reused = the prompt's length (at most length - 1 is possible)
  offgrid  answers a submit that reused tokens with one token fewer (not a multiple of prefix_block)
  nohit    answers every submit with reused 0 (legal, but no prefix hit ever)
  unfreed  answers free without passing it on: the sequence stays live
  permuted (not a breakage) presents the model's vocabulary in reverse order, translating
           token ids and logits both ways: props must map its words through the list
           (the model's vocabulary is read from STANDIN_MODEL, default the shipped model)
usage: standin.py MODE N PIDFILE CMD...   (PIDFILE gets this process's id, so a test can
check that props left no orphan behind)"""
import base64, json, os, random, signal, struct, subprocess, sys, time

def main():
    mode, n, pidfile, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    engine = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if mode == "permuted":
        return permuted(engine)
    recomputes = 0
    if mode.startswith("word=") or mode == "random":
        return crashing(mode, n, pidfile, engine)
    if mode in PREFIX_MODES:
        return prefix(mode, engine)
    for count, line in enumerate(sys.stdin):
        if count == n:
            misbehave(mode, line, engine)
        engine.stdin.write(line)
        engine.stdin.flush()
        reply = engine.stdout.readline()
        if mode == "noisy" and count >= n and json.loads(line).get("op") == "forward_uncached":
            recomputes += 1
            reply = flip(reply) if recomputes % 2 == 0 else reply
        elif count == n:
            reply = bend(mode, reply)
        sys.stdout.write(reply)
        sys.stdout.flush()

def misbehave(mode, line, engine):
    if mode == "exit":
        print("standin: exiting on purpose", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "garbage":
        print("this is not json", flush=True)
    if mode == "hang":
        print("standin: hanging on purpose", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)

def bend(mode, reply):
    r = json.loads(reply)
    if mode == "plain":
        r.pop("capabilities", None)
    elif mode == "version":
        r["protocol"] = 99
    elif mode == "wrong-id":
        r["re"] = r["re"] + 1000
    elif mode == "error":
        r = {"re": r["re"], "error": {"code": "internal", "message": "out of luck"}}
    elif mode == "unknown":
        r = {"re": r["re"], "error": {"code": "unknown_op", "message": "no such op here"}}
    elif mode in ("nan", "shape") and "logits" in r:
        shape = r["logits"]["shape"]
        count = 1
        for d in shape:
            count *= d
        if mode == "shape":
            shape, count = [3], 3
        data = struct.pack("<%df" % count, *([float("nan")] * count))
        r["logits"] = {"dtype": "f32", "shape": shape, "data": base64.b64encode(data).decode()}
    elif mode == "cursor" and "cursors" in r:
        r["cursors"][0] = -1
    elif mode == "garbage":
        return "not json either\n"
    return json.dumps(r) + "\n"

def flip(reply):
    r = json.loads(reply)
    if "logits" in r:
        data = bytearray(base64.b64decode(r["logits"]["data"]))
        data[0] ^= 1  # little-endian: the first logit's lowest mantissa bit
        r["logits"]["data"] = base64.b64encode(bytes(data)).decode()
    return json.dumps(r) + "\n"
def crashing(mode, seed, pidfile, engine):
    if mode == "random":
        starts = pidfile + ".starts"
        count = int(open(starts).read()) if os.path.exists(starts) else 0
        with open(starts, "w") as f:
            f.write(str(count + 1))
        coins = random.Random(seed)
    else:
        word = mode[len("word="):]
        bad = model_vocab().index(word)
    for line in sys.stdin:
        req = json.loads(line)
        tokens = [t for h in [req] + req.get("chunks", []) for t in h.get("tokens", [])]
        if mode == "random":
            die = count == 0 and req["op"] in ("forward_batch", "decode", "forward_cached") and \
                coins.random() < 1 / 200
        else:
            die = bad in tokens
        if die:
            print("standin: crashing on purpose at request %d (%s)" % (req["id"], req["op"]), file=sys.stderr,
                  flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        engine.stdin.write(line)
        engine.stdin.flush()
        sys.stdout.write(engine.stdout.readline())
        sys.stdout.flush()

PREFIX_MODES = ("noblock", "overreuse", "offgrid", "nohit", "unfreed")

def prefix(mode, engine):
    for line in sys.stdin:
        req = json.loads(line)
        if mode == "unfreed" and req.get("op") == "free":
            sys.stdout.write(json.dumps({"re": req["id"]}) + "\n")
            sys.stdout.flush()
            continue
        engine.stdin.write(line)
        engine.stdin.flush()
        r = json.loads(engine.stdout.readline())
        if req.get("op") == "hello" and mode == "noblock":
            r.pop("prefix_block", None)
        elif req.get("op") == "submit" and "reused" in r:
            if mode == "overreuse":
                r["reused"] = len(req["tokens"])
            elif mode == "offgrid" and r["reused"] > 0:
                r["reused"] -= 1
            elif mode == "nohit":
                r["reused"] = 0
        sys.stdout.write(json.dumps(r) + "\n")
        sys.stdout.flush()

def model_vocab():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.environ.get("STANDIN_MODEL", os.path.join(here, "../../experiments/17-minigpt/minigpt.safetensors"))
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["vocab"])

def permuted(engine):
    vocab = model_vocab()
    last = len(vocab) - 1  # our id i is this engine's id last - i
    for line in sys.stdin:
        req = json.loads(line)
        for holder in [req] + req.get("chunks", []):
            if "tokens" in holder:
                holder["tokens"] = [last - t for t in holder["tokens"]]
        engine.stdin.write(json.dumps(req) + "\n")
        engine.stdin.flush()
        r = json.loads(engine.stdout.readline())
        if req["op"] == "hello" and "vocab" in r:
            r["vocab"] = vocab[::-1]
        if "logits" in r:
            data = base64.b64decode(r["logits"]["data"])
            xs = struct.unpack("<%df" % (len(data) // 4), data)
            rows = [xs[i:i + len(vocab)][::-1] for i in range(0, len(xs), len(vocab))]
            flat = [x for row in rows for x in row]
            r["logits"]["data"] = base64.b64encode(struct.pack("<%df" % len(flat), *flat)).decode()
        sys.stdout.write(json.dumps(r) + "\n")
        sys.stdout.flush()

main()
