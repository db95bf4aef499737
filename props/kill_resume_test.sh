#!/usr/bin/env bash
# A shard survives SIGKILL (CTest props_kill_resume): props --results is killed at random
# moments, at least 20 times, and started again each time; every fourth time a torn half line
# is appended first, as a crash in the middle of a write would leave. When it has finished, its
# results file must hold every batch of an uninterrupted run exactly once, every line whole
# JSON, and every torn line must have been dropped and its batch redone.
# The kill moments come from bash's RANDOM seeded with KILL_SEED (default 1): a rerun repeats.
# usage: kill_resume_test.sh PROPS WORKDIR [MIN_KILLS]
set -uo pipefail
props=$1 work=$2 min_kills=${3:-20}
# (WORKDIR must lie inside the current folder, where CTest runs this: only that is ever removed.)
"$(dirname "$0")/../scripts/remove-inside" . "$work" && mkdir -p "$work" && cd "$work" || exit 1
RANDOM=${KILL_SEED:-1}
flags=(--rc-seed=11 --rc-max-success=600 "[p0],[p6],[p7],[p5],[p4]")
keys() {
  sed -nE 's/^\{"batch":([0-9]+),"case_seed":([0-9]+),"cases":([0-9]+),"property":"([a-z0-9]+)".*/\4 \1 \2 \3/p' "$1"
}

start=$(date +%s)
"$props" "${flags[@]}" --results reference.jsonl >reference.log 2>&1 || { echo "FAIL  the uninterrupted run failed"; exit 1; }
took=$(($(date +%s) - start))
keys reference.jsonl | sort >reference.keys
echo "reference: $(wc -l <reference.keys) batches in $took s"

kills=0 torn=0 rounds=0 failures=0 dups_total=0 lost_total=0 cases_total=0
while [ "$kills" -lt "$min_kills" ]; do
  rounds=$((rounds + 1))
  file=run-$rounds.jsonl
  : >drops-$rounds.log
  while :; do
    "$props" "${flags[@]}" --results "$file" >>run-$rounds.log 2>>drops-$rounds.log &
    pid=$!
    # A moment between 0.05 and 1.05 s: during start-up, mid-batch or between lines.
    sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
    sleep 0.05
    if kill -KILL "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      kills=$((kills + 1))
      # (only onto a whole last line: a second fragment would make one torn line of two)
      if [ $((kills % 4)) -eq 0 ] && [ -s "$file" ] && [ -z "$(tail -c1 "$file")" ]; then
        printf '{"batch":3,"case_seed":12345,"ca' >>"$file"  # a torn write: no newline
        torn=$((torn + 1))
      fi
    else
      wait "$pid"
      status=$?
      [ "$status" -eq 0 ] && break
      echo "FAIL  round $rounds: a restarted run exited $status"; tail -5 drops-$rounds.log; exit 1
    fi
  done
  keys "$file" | sort >run-$rounds.keys
  dups=$(uniq -d run-$rounds.keys | wc -l)
  lost=$(comm -23 reference.keys run-$rounds.keys | wc -l)
  extra=$(comm -13 reference.keys <(sort -u run-$rounds.keys) | wc -l)
  bad=$(grep -cvE '^\{.*\}$' "$file")
  [ -n "$(tail -c1 "$file")" ] && bad=$((bad + 1))  # the last line ends with a newline
  dropped=$(grep -c 'dropped a torn last line' drops-$rounds.log)
  cases=$(sed -nE 's/.*"cases":([0-9]+),"property".*/\1/p' "$file" | awk '{ s += $1 } END { print s + 0 }')
  echo "round $rounds: $kills kills so far, $cases cases, $dups duplicates, $lost lost, $extra extra, $bad torn or bad lines, $dropped torn lines dropped"
  [ "$dups" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$extra" -eq 0 ] && [ "$bad" -eq 0 ] || failures=$((failures + 1))
  dups_total=$((dups_total + dups)) lost_total=$((lost_total + lost)) cases_total=$((cases_total + cases))
done
all_dropped=$(cat drops-*.log | grep -c 'dropped a torn last line')
# The files' whole lines and full batch sets show every torn line was dropped and redone; the
# notes on stderr show the reader saw them (a kill can fall between a drop and its note).
if [ "$torn" -gt 0 ] && [ "$all_dropped" -eq 0 ]; then
  echo "FAIL  $torn torn lines written, none reported dropped"; failures=$((failures + 1))
fi
echo "kill-resume: $kills kills in $rounds rounds, $torn torn lines written ($all_dropped reported dropped), $cases_total cases, $dups_total duplicates, $lost_total lost"
[ "$failures" -eq 0 ]
