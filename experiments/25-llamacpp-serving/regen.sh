#!/usr/bin/env bash
# Regenerates experiments/25-llamacpp-serving (called by scripts/regen-experiments): exports the
# model to GGUF in the build folder, runs serving_lab (results.json: a prefix hit against a miss
# on the lab's 50 prompts, four ways), then props on llama.cpp per configuration: the
# properties that exercise a serving cache (p13 a prefix hit, p11's programs with forks, submits
# and frees, p5 two sequences in one cache, p6 the one-sequence control) at the bits level, then
# those of p5, p6 and p13 that failed at the ulp:1024, ulp:65536 and tokens levels in turn (p11
# checks bits only). The shrunk counterexamples, reports and heatmaps of bits and tokens are in
# counterexamples/CONFIG/ and counterexamples/CONFIG/tokens/ (none for a property that holds);
# props' summaries of every level, without timings, in summaries/CONFIG-LEVEL.json (each failure
# with its shrunk case). Then manifest.json: llama.cpp's release, the npm packages' and the
# model's and GGUF's sha256, and the machine as props records it (CPU, ISA flags, compiler,
# threads, the ggml build and the CPU backend variant llama.cpp loaded: the bytes depend on it).
#
# usage: experiments/25-llamacpp-serving/regen.sh BUILD_DIR MODEL
#   CONFIGS  the props configurations to run (default: all of them, as below, and serving_lab;
#            when set, serving_lab does not run)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] || {
  echo "usage: experiments/25-llamacpp-serving/regen.sh BUILD_DIR MODEL" >&2
  exit 2
}
build=$1 model=$2
dir=experiments/25-llamacpp-serving
work=$build/$dir
mkdir -p "$work" "$dir/summaries"
gguf=$work/minigpt.gguf
"$build/minigpt" export-gguf --out "$gguf" --model "$model" >/dev/null
if [ -z "${CONFIGS:-}" ]; then  # everything: nothing of an earlier run's configurations stays
  rm -rf "$dir/counterexamples" "$dir/summaries"
  mkdir -p "$dir/summaries"
  "$build/$dir/serving_lab" --gguf "$gguf" --model "$model"
fi

# The summary without its timings (they change every run).
strip_seconds() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d.pop("seconds", None)
for p in d["properties"]:
    p.pop("seconds", None)
json.dump(d, open(sys.argv[2], "w"), indent=2, sort_keys=True)
open(sys.argv[2], "a").write("\n")
PY
}

# props at one level on some properties; 0: all hold, 1: failures written; else a refusal.
run_props() {
  local name=$1 level=$2 out=$3 filter=$4
  shift 4
  local status=0
  rm -rf "$out"
  mkdir -p "$out"
  "$build/props" --rc-seed=1 --no-expected --model "$model" --engine llamacpp --gguf "$gguf" "$@" --level "$level" \
    --report-dir "$out" --summary "$work/$name.json" "$filter" >"$work/$name.log" 2>&1 || status=$?
  if [ "$status" -gt 1 ]; then
    cat "$work/$name.log" >&2
    exit 1
  fi
  rm -f "$out/.props-report.lock"
  strip_seconds "$work/$name.json" "$dir/summaries/$name.json"
  echo "regen: 25-llamacpp-serving $name: $(grep -E '^(ok|FAIL|SKIP) ' "$work/$name.log" | awk '{printf "%s %s, ", $2, $1}')"
}

all="defaults f32-kv flash-on ubatch-1 ubatch-1-f32 holes reorder flash-ubatch-1 flash-holes flash-reorder reuse-off flash-ubatch-1-reuse-off"
for config in ${CONFIGS:-$all}; do
  case $config in
    defaults) flags=() ;;
    f32-kv) flags=(--llama-kv f32) ;;
    flash-on) flags=(--llama-flash on) ;;
    ubatch-1) flags=(--llama-ubatch 1) ;;
    ubatch-1-f32) flags=(--llama-ubatch 1 --llama-kv f32) ;;
    holes) flags=(--llama-ubatch 1 --llama-fragment holes:6) ;;
    reorder) flags=(--llama-ubatch 1 --llama-fragment reorder:6) ;;
    flash-ubatch-1) flags=(--llama-flash on --llama-ubatch 1) ;;
    flash-holes) flags=(--llama-flash on --llama-ubatch 1 --llama-fragment holes:6) ;;
    flash-reorder) flags=(--llama-flash on --llama-ubatch 1 --llama-fragment reorder:6) ;;
    reuse-off) flags=(--llama-prefix-reuse off) ;;
    # p11 without submits and frees (it checks their reuse against the pool llama.cpp does not show)
    flash-ubatch-1-reuse-off) flags=(--llama-flash on --llama-ubatch 1 --llama-prefix-reuse off) ;;
    *) echo "regen: 25-llamacpp-serving: no configuration '$config' (one of: $all)" >&2; exit 2 ;;
  esac
  out=$dir/counterexamples/$config
  rm -rf "$out"
  run_props "$config-bits" bits "$out" '[p13],[p11],[p5],[p6]' "${flags[@]}"
  # The coarser levels, each for the properties that failed at the level before (the same seed
  # draws the same cases, so one that holds at a level holds at every coarser one): two ULP
  # levels, to bracket the finest that holds, whose counterexamples stay in the build, and tokens.
  previous=$config-bits
  for level in ulp:1024 ulp:65536 tokens; do
    filter=$(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(",".join("[%s]" % p["id"] for p in d["properties"] if p["status"] == "failed" and p["id"] != "p11"))' \
      "$dir/summaries/$previous.json")
    [ -n "$filter" ] || break
    name=$config-${level/:/-}
    where=$work/counterexamples/$config/${level/:/-}
    [ "$level" = tokens ] && where=$out/tokens
    run_props "$name" $level "$where" "$filter" "${flags[@]}"
    previous=$name
  done
done

# The machine the figures hold for, as props records it (src/base/machine.h): the CPU, its ISA
# flags, the compiler and the build's flags, the threads, and the ggml build and CPU variant
# llama.cpp loaded (the bytes depend on it). (p6 fails at the bits level there: its exit status
# is not the point.)
"$build/props" --rc-seed=1 --no-expected --rc-max-success=1 --model "$model" --engine llamacpp --gguf "$gguf" \
  --report-dir "$work/backend" --summary "$work/machine.json" '[p6]' >"$work/backend.log" 2>&1 || true
backend=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["machine"].get("ggml_cpu_variant", ""))' \
  "$work/machine.json" 2>/dev/null || true)
[ -n "$backend" ] || { echo "regen: 25-llamacpp-serving: props did not say which CPU backend ggml loaded" >&2; exit 1; }
/usr/bin/python3 - "$model" "$gguf" "$work/machine.json" "$dir/manifest.json" <<'PY'
import hashlib, json, sys, datetime
model, gguf, machine, out = sys.argv[1:]
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
pins = dict(reversed(l.split()) for l in open("third_party.sha256") if l.strip())
m = {
    "experiment": "25-llamacpp-serving",
    "date": datetime.date.today().isoformat(),
    "command": "experiments/25-llamacpp-serving/regen.sh BUILD MODEL (props per configuration)",
    "llama_cpp": open("third_party/llama.cpp/VERSION").read().strip(),
    "npm_packages_sha256": pins,
    "model_file": model,
    "model_sha256": sha(model),
    "gguf": "minigpt export-gguf of the model (starcoder2, F32 tensors)",
    "gguf_sha256": sha(gguf),
    "machine": json.load(open(machine))["machine"],
}
json.dump(m, open(out, "w"), indent=2)
open(out, "a").write("\n")
PY
echo "regen: 25-llamacpp-serving: manifest.json (ggml CPU backend $backend)"
