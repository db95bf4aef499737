#!/bin/bash
# Our engine over the protocol (minigpt serve) gives the in-process verdicts: with no fault
# every property's line is the same (p10 aside: a process has no random architectures, and
# says so), and with --inject cursor-off-by-one on both sides the same property fails first
# with the same shrunk case and the same first parting.
# With WRAP, the engine command is "WRAP MINIGPT serve ..." (standin.py permuted: the same
# engine behind a vocabulary in another order, which props must map its words through).
# usage: verdicts_test.sh PROPS MINIGPT WORK [FAULT [WRAP]]
set -u
props=$1 minigpt=$2 work=$3
mkdir -p "$work" && cd "$work" || exit 1
verdicts() { grep -E '^(ok|FAIL|SKIP) ' "$1" | sed -E 's/ +[0-9.]+ s$//'; }

if [[ $# -lt 4 ]]; then
  "$props" --rc-seed=1 --report-dir in/reports >in.txt 2>&1
  "$props" --rc-seed=1 --report-dir proc/reports --engine process --engine-cmd "$minigpt serve" >proc.txt 2>&1
  grep -q '^SKIP  p10 .*(engine process has no engines for random architectures)$' proc.txt ||
    { echo "FAIL: p10 is not skipped for want of random architectures"; exit 1; }
  if ! diff <(verdicts in.txt | grep -v ' p10 ') <(verdicts proc.txt | grep -v ' p10 '); then
    echo "FAIL: the verdicts over the protocol differ from the in-process ones (< in-process, > process)"
    exit 1
  fi
  grep -q 'FAIL' <(verdicts proc.txt) && { echo "FAIL: a property fails over the protocol"; exit 1; }
  echo "ok   $(verdicts proc.txt | wc -l) verdicts over the protocol equal the in-process ones (p10 skipped)"
  exit 0
fi

fault=$4 wrap=${5:-}
# -a (Catch2's --abort): both runs stop after the first failing property.
"$props" --rc-seed=1 -a --report-dir "$work/in" --inject "$fault" >in.txt 2>&1
"$props" --rc-seed=1 -a --report-dir "$work/proc" --engine process --engine-cmd "$wrap $minigpt serve --inject $fault" >proc.txt 2>&1
first_in=$(verdicts in.txt | grep -m1 '^FAIL' | awk '{print $2}')
first_proc=$(verdicts proc.txt | grep -m1 '^FAIL' | awk '{print $2}')
if [[ -z $first_in || $first_in != "$first_proc" ]]; then
  echo "FAIL: the first failing property is '$first_in' in-process, '$first_proc' over the protocol"
  exit 1
fi
# The same shrunk case and the same first parting. Its magnitudes (max_abs, max_ulp) are left
# out: they measure what a stale slot held, and in-process props poisons free slots
# (clean_slate) where the protocol can only reset.
# The text the report quotes (the tokens generated before the parting) shows that the engine's
# token ids were mapped to and from props' words correctly.
/usr/bin/python3 - "$work/in/$first_in" "$work/proc/$first_in" <<'PY' || exit 1
import json, re, sys
def facts(base):
    case = json.load(open(base + ".case.json"))
    parting = json.load(open(base + ".report.json"))["first_parting"]
    parting = {k: v for k, v in parting.items() if k not in ("max_abs", "max_ulp")}
    text = re.findall(r'after "[^"]*"', open(base + ".report.txt").read())
    return {"prompts": case["prompts"], "params": case["params"], "first_parting": parting, "text": text}
a, b = facts(sys.argv[1]), facts(sys.argv[2])
if a != b:
    print("FAIL: in-process", json.dumps(a), "\n      over the protocol", json.dumps(b))
    sys.exit(1)
print("ok   both fail", sys.argv[1].split("/")[-1], "first, with", json.dumps(a))
PY
