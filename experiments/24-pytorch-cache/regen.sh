#!/usr/bin/env bash
# Regenerates experiments/24-pytorch-cache (called by scripts/regen-experiments): lab.py runs
# lab 02's comparisons and the op-by-op probe on the PyTorch MiniGPT (results.json,
# manifest.json); then props checks the same engine over the protocol at the bits, ulp:4 and
# tokens levels, every property, with their shrunk counterexamples, reports and heatmaps in
# counterexamples/LEVEL/ (none for a property that holds) and props' summaries in props-LEVEL.json
# (ulp:4 as ulp-4).
#
# usage: experiments/24-pytorch-cache/regen.sh BUILD_DIR MODEL [--props-only | --lab-only]
#   LEVELS  the props levels to run (default "bits ulp:4 tokens")
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] || [ "${3:-}" = --props-only ] || [ "${3:-}" = --lab-only ] || {
  echo "usage: experiments/24-pytorch-cache/regen.sh BUILD_DIR MODEL [--props-only | --lab-only]" >&2
  exit 2
}
build=$1 model=$2 only=${3:-}
dir=experiments/24-pytorch-cache
work=$build/$dir
mkdir -p "$work"
/usr/bin/python3 -c 'import torch' 2>/dev/null || {
  echo "regen: 24-pytorch-cache: /usr/bin/python3 cannot import torch; scripts/setup installs python3-torch" >&2
  exit 1
}
[ "$only" = --props-only ] || /usr/bin/python3 $dir/lab.py --model "$model" --out $dir
[ "$only" = --lab-only ] && exit 0
# Relative paths: the case files name the engine's command as run from the repository's root.
engine="clients/python/torch_minigpt.py --model $model"
for level in ${LEVELS:-bits ulp:4 tokens}; do
  name=${level/:/-}
  out=$dir/counterexamples/$name
  rm -rf "$out"
  mkdir -p "$out"
  status=0
  "$build/props" --rc-seed=1 --model "$model" --level $level --engine process --engine-cmd "$engine" \
    --report-dir "$out" --summary "$work/props-$name.json" >"$work/props-$name.log" 2>&1 || status=$?
  # 0: every property holds, 1: some failed and their files are written; else a refusal.
  if [ "$status" -gt 1 ]; then
    cat "$work/props-$name.log" >&2
    exit 1
  fi
  rm -f "$out/.props-report.lock"  # props' guard against two runs sharing the folder
  # The summary without its timings (they change every run).
  /usr/bin/python3 - "$work/props-$name.json" "$dir/props-$name.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d.pop("seconds", None)
for p in d["properties"]:
    p.pop("seconds", None)
json.dump(d, open(sys.argv[2], "w"), indent=2, sort_keys=True)
open(sys.argv[2], "a").write("\n")
PY
  echo "regen: 24-pytorch-cache at $level: $(grep -E '^(ok|FAIL|SKIP) ' "$work/props-$name.log" |
    awk '{printf "%s %s, ", $2, $1}')"
done
