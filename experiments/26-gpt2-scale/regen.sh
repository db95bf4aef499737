#!/usr/bin/env bash
# Regenerates experiments/26-gpt2-scale (called by scripts/regen-experiments): makes the
# GPT-2-small-shaped model and its GGUF in the build folder, timing `minigpt init` and
# `minigpt export-gguf` (timings.json), checks both against the pinned sha256 (model.sha256),
# runs scale_lab (results.json: load times, resident memory, llama.cpp's logits against ours
# within the derived tolerance), then props on the model within the budget stated in README.md
# (--rc-seed=1 --rc-max-success=1: one case per property) on our engine and on llama.cpp, and
# on llama.cpp again at the tokens level for what failed at bits: summaries/NAME.json (props'
# summaries, timings kept: they are the point) and props.json (cases per second per property,
# and the load average around each run). The ~1 GB of model files stay in
# BUILD_DIR/experiments/26-gpt2-scale, never here.
#
# usage: experiments/26-gpt2-scale/regen.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 1 ] || {
  echo "usage: experiments/26-gpt2-scale/regen.sh BUILD_DIR" >&2
  exit 2
}
build=$1
dir=experiments/26-gpt2-scale
work=$build/$dir
model=$work/gpt2-small.safetensors gguf=$work/gpt2-small.gguf
mkdir -p "$work" "$dir/summaries"

# init and export, timed from scratch (wall seconds and peak resident KB), then the pins.
rm -f "$model" "$gguf"
timed() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.log"
  echo "{\"seconds\": $(cut -d' ' -f1 "$work/$name.time"), \"peak_resident_kb\": $(cut -d' ' -f2 "$work/$name.time")," \
    "\"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >"$work/$name.json"
}
timed init "$build/minigpt" init --preset gpt2-small --seed 1 --out "$model"
timed export "$build/minigpt" export-gguf --model "$model" --out "$gguf"
(cd "$work" && sha256sum -c "$OLDPWD/$dir/model.sha256") || {
  echo "regen: 26-gpt2-scale: the model or GGUF is not the pinned one ($dir/model.sha256)" >&2
  exit 1
}
/usr/bin/python3 - "$work" "$model" "$gguf" "$dir/timings.json" <<'PY'
import json, os, sys
work, model, gguf, out = sys.argv[1:]
t = {k: json.load(open(f"{work}/{k}.json")) for k in ("init", "export")}
t["init"]["file_bytes"] = os.path.getsize(model)
t["export"]["file_bytes"] = os.path.getsize(gguf)
json.dump(t, open(out, "w"), indent=2)
open(out, "a").write("\n")
PY

echo "regen: 26-gpt2-scale: scale_lab (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$build/$dir/scale_lab" --model "$model" --gguf "$gguf" --out "$dir/results.json"

# props within the budget: one case per property, RapidCheck seed 1, failures not shrunk (a
# shrink step is a case, minutes each at this size). Exit 1 (a property failed) is a result.
# run_props NAME LEVEL FILTER ENGINE_FLAGS...
run_props() {
  local name=$1 level=$2 filter=$3 status=0 before
  shift 3
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  "$build/props" --rc-seed=1 --rc-max-success=1 --rc-noshrink --no-expected --model "$model" --level "$level" "$@" \
    --report-dir "$work/report-$name" --summary "$dir/summaries/$name.json" ${filter:+"$filter"} >"$work/props-$name.log" 2>&1 ||
    status=$?
  if [ "$status" -gt 1 ]; then
    cat "$work/props-$name.log" >&2
    exit 1
  fi
  echo "$name $before $(cut -d' ' -f1-3 /proc/loadavg)" >>"$work/props-loadavg.txt"
  echo "regen: 26-gpt2-scale props $name: $(grep -E '^props: [0-9]+ passed' "$work/props-$name.log")"
}
rm -f "$work/props-loadavg.txt" "$dir"/summaries/*.json
run_props miniinfer bits "" --engine miniinfer
run_props llamacpp bits "" --engine llamacpp --gguf "$gguf"
# What holds on llama.cpp at the token level: the properties that failed at bits, again (the
# same seed draws the same cases; p11 compares bits only).
failed=$(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(",".join("[%s]" % p["id"] for p in d["properties"] if p["status"] == "failed" and p["id"] != "p11"))' \
  "$dir/summaries/llamacpp.json")
[ -z "$failed" ] || run_props llamacpp-tokens tokens "$failed" --engine llamacpp --gguf "$gguf"
/usr/bin/python3 - "$dir/summaries" "$work/props-loadavg.txt" "$dir/props.json" <<'PY'
import json, sys
summaries, loads, out = sys.argv[1:]
table = {}
for line in open(loads):
    engine, *avg = line.split()
    s = json.load(open(f"{summaries}/{engine}.json"))
    table[engine] = {
        "loadavg_before": " ".join(avg[:3]), "loadavg_after": " ".join(avg[3:]),
        "seconds": s["seconds"], "exit_status": s["exit_status"],
        "properties": {p["id"]: {"status": p["status"], "cases": p.get("cases", 0), "seconds": p.get("seconds", 0),
                                 "cases_per_second": p["cases"] / p["seconds"] if p.get("seconds") else None}
                       for p in s["properties"]},
    }
json.dump(table, open(out, "w"), indent=2)
open(out, "a").write("\n")
PY

/usr/bin/python3 - "$model" "$gguf" "$dir/summaries/llamacpp.json" "$dir/manifest.json" <<'PY'
import hashlib, json, os, sys, datetime
model, gguf, summary, out = sys.argv[1:]
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
m = {
    "experiment": "26-gpt2-scale",
    "date": datetime.date.today().isoformat(),
    "command": "experiments/26-gpt2-scale/regen.sh BUILD",
    "model": "minigpt init --preset gpt2-small --seed 1",
    "model_sha256": sha(model),
    "model_bytes": os.path.getsize(model),
    "gguf": "minigpt export-gguf of the model (starcoder2, F32 tensors)",
    "gguf_sha256": sha(gguf),
    "gguf_bytes": os.path.getsize(gguf),
    "llama_cpp": open("third_party/llama.cpp/VERSION").read().strip(),
    "machine": json.load(open(summary))["machine"],
}
json.dump(m, open(out, "w"), indent=2)
open(out, "a").write("\n")
PY
echo "regen: 26-gpt2-scale: results.json, timings.json, props.json, summaries/, manifest.json"
