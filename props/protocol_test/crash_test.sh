#!/bin/bash
# An engine that crashes during a case, over the protocol: a crash that the case's inputs
# cause (standin.py word=yo: SIGSEGV on any request holding "yo") is a counterexample, shrunk
# like any other, reported with the exit status, the request and the op and the stderr's last
# lines, and its saved case replays the crash; a crash the same case does not repeat
# (standin.py random, seeded) is reported as flaky, with both outcomes, and fails the property.
# usage: crash_test.sh PROPS MINIGPT WORK
set -u
props=$1 minigpt=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" && cd "$work" || exit 1
failed=0
bad() { echo "FAIL $*"; failed=1; }
crash='^the engine crashed \(exit status 139: signal 11 under /bin/sh\) at request [0-9]+ \(op [a-z_]+\); its stderr ended: standin: crashing on purpose'

# 1. Deterministic: p6 fails on the crash and shrinks it to a short case.
"$props" --rc-seed=1 "[p6]" --report-dir "$work/word" --engine process \
  --engine-cmd "$here/standin.py word=yo 0 $work/pid $minigpt serve" >word.txt 2>&1
status=$?
headline=$(grep -m1 -E "$crash" word.txt)
shrunk=$(grep -m1 -E '^  the case: p6 ' word.txt)
if [[ $status != 1 || -z $headline ]]; then
  bad "a crash on the word 'yo': status $status (want 1), $(grep -m1 -E '^(ok|FAIL|FLAKY) ' word.txt)"
elif ! grep -qE '^Shrunk in [1-9][0-9]* steps' word.txt; then
  bad "a crash on the word 'yo' was not shrunk: $(grep -m1 '^Shrunk' word.txt)"
elif grep -q '^FLAKY' word.txt; then
  bad "a crash on the word 'yo' was called flaky"
else
  echo "ok   a crash on the word 'yo' fails p6, shrunk to$(sed 's/^  the case: p6//' <<<"$shrunk"): $headline"
fi
# Its case replays the crash: status 1, the same line.
"$props" --replay word/p6.case.json --report-dir "$work/replay" >replay.txt 2>&1
status=$?
if [[ $status != 1 ]] || ! grep -qF "FAIL  $headline" replay.txt; then
  bad "the replay of word/p6.case.json: status $status, $(grep -m1 -E '^(FAIL|ok) ' replay.txt)"
else
  echo "ok   the saved case replays the crash"
fi

# p11 too: its program shrinks to the one command that sends "yo", and replays the crash.
"$props" --rc-seed=1 "[p11]" --report-dir "$work/p11" --engine process \
  --engine-cmd "$here/standin.py word=yo 0 $work/pid $minigpt serve" >p11.txt 2>&1
status=$?
program=$(sed -n '/^Report for p11:/,/written:/p' p11.txt | grep -E '^  [ >] +[0-9]+\. ')
if [[ $status != 1 ]] || ! grep -qE "$crash" p11.txt; then
  bad "p11 on a crash on the word 'yo': status $status, $(grep -m1 -E '^(ok|FAIL|FLAKY) ' p11.txt)"
elif [[ $(wc -l <<<"$program") != 1 ]] || ! grep -q '"yo"' <<<"$program"; then
  bad "p11 on a crash on the word 'yo' did not shrink to one command sending it: $program"
else
  "$props" --replay p11/p11.case.json --report-dir "$work/p11-replay" >p11-replay.txt 2>&1
  status=$?
  if [[ $status != 1 ]] || ! grep -qE "^FAIL  the engine crashed" p11-replay.txt; then
    bad "the replay of p11/p11.case.json: status $status, $(grep -m1 -E '^(FAIL|ok) ' p11-replay.txt)"
  else
    echo "ok   p11 on a crash on the word 'yo' shrinks to:$program, and replays the crash"
  fi
fi

# 2. Flaky: the crash does not come back when the case runs again.
rm -f "$work/rpid.starts"
"$props" --rc-seed=1 "[p6]" --report-dir "$work/random" --engine process \
  --engine-cmd "$here/standin.py random 7 $work/rpid $minigpt serve" >random.txt 2>&1
status=$?
note=$(grep -m1 -E '^      flaky: p6 ' random.txt)
if [[ $status != 1 ]] || ! grep -q '^FLAKY p6 ' random.txt; then
  bad "a random crash: status $status (want 1), $(grep -m1 -E '^(ok|FAIL|FLAKY) ' random.txt)"
elif ! grep -qE "flaky: p6 .*: the engine crashed .* at request [0-9]+ \(op [a-z_]+\).*; the same case run again: (it passed|it failed: .*)$" <<<"$note"; then
  bad "a random crash: the flaky line does not give both outcomes: $note"
elif grep -q '^Shrunk' random.txt; then
  bad "a random crash was shrunk on"
else
  echo "ok   a random crash is flaky, with both outcomes: $(cut -c1-160 <<<"$note")..."
fi
exit $failed
