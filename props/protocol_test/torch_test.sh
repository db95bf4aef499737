#!/bin/bash
# The PyTorch MiniGPT (clients/python/torch_minigpt.py) over the protocol. Its cached path is
# not bit-identical to its own full recompute (experiments/24-pytorch-cache), so:
#   - the correct engine passes p6 and p4 at the tokens level, and at the bits level p6 either
#     holds or fails as ULP-level drift, never as a gross error;
#   - every --fault is caught (status 1) by the property and at the level of its row below,
#     shrunk, and its report's first parting names the layer, head and site of that row;
#     fp64-attention changes only rounding, so it is caught at bits only (its site, layer 0
#     probs in a case of one decode, is what tells it from the correct engine's drift);
#   - a saved case replays (--replay restarts the same engine) to the same report, byte for byte.
# usage: torch_test.sh PROPS WORK correct|faults|FAULT...
set -u
props=$(realpath -- "$1") work=$(realpath -m -- "$2")  # the script changes folder below
shift 2
[[ $# != 0 ]] || { echo "usage: torch_test.sh PROPS WORK correct|faults|FAULT..."; exit 2; }
engine=$(cd "$(dirname "$0")/../../clients/python" && pwd)/torch_minigpt.py
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "FAIL: /usr/bin/python3 cannot import torch; scripts/setup installs python3-torch (apt-get install python3-torch)"
  exit 1
fi
mkdir -p "$work" && cd "$work" || exit 1
failed=0
bad() { echo "FAIL: $*"; failed=1; }

# fault level property site-pattern verdict-pattern
table="store-before-attend tokens p6 layer_0,_head_[0-9],_probs gross
decode-mask tokens p6 layer_0,_head_[0-9],_probs gross
layer-alias tokens p6 layer_1,_head_[0-9],_k-read gross
rope-twice tokens p6 layer_0,_head_[0-9],_k-read gross
chunk-mask-peek tokens p6 layer_0,_head_[0-9],_probs gross
resume-positions tokens p4 layer_0,_head_[0-9],_q_at gross
fp64-attention bits p6 layer_0,_head_[0-9],_probs ULP-level"

if [[ $1 == correct ]]; then
  rm -rf good good-bits
  "$props" --rc-seed=1 --level tokens --report-dir good --engine process --engine-cmd "$engine" '[p6],[p4]' >good.txt 2>&1
  status=$?
  if [[ $status != 0 ]] || [[ $(grep -c '^ok ' good.txt) != 2 ]]; then
    bad "the correct engine should pass p6 and p4 at the tokens level (status $status)"; grep -E '^(ok|FAIL|SKIP) ' good.txt
  else
    echo "ok   the correct engine passes p6 and p4 at the tokens level"
  fi
  "$props" --rc-seed=1 --report-dir good-bits --engine process --engine-cmd "$engine" '[p6]' >good-bits.txt 2>&1
  status=$?
  if [[ $status == 0 ]]; then
    echo "ok   the correct engine passes p6 at the bits level"
  elif [[ $status == 1 ]] && grep -q 'verdict: ULP-level drift' good-bits/p6.report.txt; then
    echo "ok   the correct engine fails p6 at the bits level as drift: $(grep -m1 'first parting: layer' good-bits/p6.report.txt)"
  else
    bad "the correct engine at the bits level: status $status, not a pass nor ULP-level drift"; tail -5 good-bits.txt
  fi
fi

while read -r fault level prop site verdict; do
  if [[ $1 != faults ]] && [[ " $* " != *" $fault "* ]]; then continue; fi
  site=${site//_/ }
  out=fault-$fault
  rm -rf "$out"
  "$props" --rc-seed=1 --level "$level" --report-dir "$out" --engine process --engine-cmd "$engine --fault $fault" \
    "[$prop]" >"$out.txt" 2>&1
  status=$?
  parting=$(grep -m1 'first parting: layer' "$out/$prop.report.txt" 2>/dev/null)
  if [[ $status != 1 ]] || ! grep -q "^FAIL  $prop " "$out.txt" || ! grep -q '^Shrunk in\|^Falsifiable' "$out.txt"; then
    bad "$fault: $prop at $level should fail and shrink (status $status)"; tail -5 "$out.txt"
  elif ! grep -q "first parting: $site" "$out/$prop.report.txt" || ! grep -q "verdict: $verdict" "$out/$prop.report.txt"; then
    bad "$fault: the report should name '$site' ($verdict); it says: $parting"
  else
    echo "ok   $fault: $prop fails at $level, $(grep -m1 -o 'Shrunk in [0-9]* steps' "$out.txt"); $parting"
    last=$fault last_out=$out last_prop=$prop
  fi
done <<<"$table"

# The last caught fault's saved case replays to the same report.
if [[ -n ${last:-} ]]; then
  fault=$last out=$last_out prop=$last_prop
  rm -rf replay
  "$props" --replay "$out/$prop.case.json" --report-dir replay >replay.txt 2>&1
  if cmp -s "$out/$prop.report.json" "replay/$prop.report.json"; then
    echo "ok   $fault: --replay restarts the engine and writes the same report"
  else
    bad "$fault: --replay gave another report"; tail -5 replay.txt
  fi
fi
exit $failed
