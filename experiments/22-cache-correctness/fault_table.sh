#!/usr/bin/env bash
# The fault table of README.md: runs property_test --inject for each of the lab's twelve cache
# faults (src/engine/faults.h) and prints one Markdown row per fault from its results.json.
# Run it after the model or the kernels change and paste its output over the table.
# Takes a few minutes (each fault runs all 50 prompts and the extended runs).
#
# usage: experiments/22-cache-correctness/fault_table.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
program=$build/experiments/22-cache-correctness/property_test
[ -x "$program" ] || { echo "fault_table: $program is not built (cmake --build $build --target property_test)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
faults=(cursor-off-by-one self-excluded decode-mask layer-alias last-layer-stale fp64-decode
        rope-decode-phase batch-stride stale-cache resume-offset library-gemv softmax-scale)
echo "| fault | fail | tok div (steps) | logits | first K/V row | 256 | batch | resume |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for fault in "${faults[@]}"; do
  status=0
  "$program" --inject "$fault" --out "$work/$fault" >"$work/$fault.log" 2>&1 || status=$?
  if [ "$status" -gt 1 ]; then
    cat "$work/$fault.log" >&2
    exit 1
  fi
  python3 - "$fault" "$work/$fault/results.json" <<'PY'
import json, sys
fault, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
prompts, s = r["prompts"], r["summary"]
failed = s["failed"]
div = [p["first_divergence_step"] for p in prompts if p.get("first_divergence_step") is not None]
tok = f"{len(div)} ({min(div)}–{max(div)})" if div else "0"
logit_steps = [p["first_logits_divergence_step"] for p in prompts
               if p.get("first_logits_divergence_step") is not None]
logits = str(min(logit_steps)) if logit_steps else "–"
# Prompt 0's first differing cache row, or, when prompt 0 passes (stale-cache shows from the
# second generate call on), the first failing prompt's.
bad = next((p for p in prompts if not p["pass"]), None)
kv = bad.get("first_kv_difference") if bad else None
if not kv:
    where = "–"
elif "cursor" in kv:
    where = f'prompt {bad["index"]}: cursor {kv["cursor"]}, expected {kv["expected_cursor"]}'
else:
    where = (("" if bad["index"] == 0 else f'prompt {bad["index"]}: ') +
             f'{kv["tensor"]} layer {kv["layer"]} head {kv["head"]} slot {kv["slot"]}')
ext = s["extended"]
cells = [f'{ext[k]["failed"]}/{ext[k]["passed"] + ext[k]["failed"]}' for k in ("long_256", "batch_4", "resume")]
bold = lambda x: f"**{x}**" if x in ("0",) else x
print(f"| `{fault}` | {bold(str(failed))} | {bold(tok)} | {logits} | {where} | " + " | ".join(cells) + " |")
PY
done
