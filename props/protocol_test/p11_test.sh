#!/bin/bash
# p11 (the model-based property) runs on the engine under test over the protocol, not on an
# in-process engine of ours: minigpt serve with a history fault fails it, names the command,
# and the saved program replays against the same engine command; an engine that offers no K/V
# rows (standin.py plain) is checked on its logits alone, and says so, and a fault there is
# still caught by the logits.
# usage: p11_test.sh PROPS MINIGPT WORK
set -u
props=$1 minigpt=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" && cd "$work" || exit 1
failed=0
bad() { echo "FAIL $*"; failed=1; }

# 1. A fault p11 catches (fork-shallow: a fork copies the lower half of the layers only).
"$props" --rc-seed=1 "[p11]" --report-dir "$work/fork" --engine process \
  --engine-cmd "$minigpt serve --inject fork-shallow" >fork.txt 2>&1
status=$?
headline=$(grep -m1 -E '^command [0-9]+ \(' fork.txt)
if [[ $status != 1 ]]; then
  bad "fork-shallow over the protocol: status $status, not 1 (p11 fails)"
elif [[ -z $headline ]]; then
  bad "fork-shallow over the protocol: no headline naming the command"
elif ! grep -q "^props: engine process '" fork.txt; then
  bad "fork-shallow over the protocol: the run did not check the process engine"
elif ! grep -q -- "--engine process --engine-cmd '$minigpt serve --inject fork-shallow' --rc-reproduce=" fork.txt; then
  bad "fork-shallow over the protocol: the reproduce line does not restart the engine"
else
  echo "ok   fork-shallow over the protocol fails p11: $headline"
fi
# Its case file records the engine and replays there, failing again with the same headline.
if ! grep -q '"engine": "process"' fork/p11.case.json 2>/dev/null; then
  bad "the p11 case file does not name the process engine"
else
  "$props" --replay fork/p11.case.json --report-dir "$work/replay" >replay.txt 2>&1
  status=$?
  if [[ $status != 1 ]] || ! grep -qF "FAIL  $headline" replay.txt; then
    bad "the replay of fork/p11.case.json: status $status, $(grep -m1 -E '^(FAIL|ok) ' replay.txt)"
  else
    echo "ok   the saved program replays on the same engine command and fails again"
  fi
fi

# 2. No K/V rows, no trace: logits only, said on the mix line; the correct engine passes.
plain="$here/standin.py plain 0 $work/pid $minigpt serve"
"$props" --rc-seed=1 "[p11]" --report-dir "$work/plain" --engine process --engine-cmd "$plain" >plain.txt 2>&1
status=$?
if [[ $status != 0 ]] || ! grep -q '^ok    p11 ' plain.txt; then
  bad "p11 on an engine without K/V rows: status $status, $(grep -m1 -E '^(ok|FAIL|SKIP) ' plain.txt)"
elif ! grep -q 'logits only (engine has no K/V rows)' plain.txt; then
  bad "p11 on an engine without K/V rows does not say it checks logits only"
else
  echo "ok   p11 on an engine without K/V rows passes on logits only, and says so"
fi

# 3. ... and a fault in it is caught without K/V rows (truncate-stale: the cursor stays one past
# the truncation point; the truncate reply's cursor says so, and without it the next call's
# row would sit at the wrong position, in the logits).
"$props" --rc-seed=1 "[p11]" --report-dir "$work/plain-fault" --engine process \
  --engine-cmd "$plain --inject truncate-stale" >plain-fault.txt 2>&1
status=$?
if [[ $status != 1 ]] || ! grep -qE '^command [0-9]+ .*(the logits of sequence [0-9]+ differ from full recompute|sequence [0-9]+ holds [0-9]+ slots where its history holds)' plain-fault.txt; then
  bad "truncate-stale without K/V rows: status $status, $(grep -m1 -E '^command ' plain-fault.txt)"
elif ! grep -qE 'not located: engine process offers no trace|first parting: the cursor of sequence' plain-fault.txt; then
  bad "truncate-stale without K/V rows: the report neither locates it at the cursor nor says why it is not located"
else
  echo "ok   truncate-stale without K/V rows fails p11: $(grep -m1 -E '^command ' plain-fault.txt)"
fi
exit $failed
