#!/usr/bin/env bash
# Nothing lost, nothing silent (CTest props_results_races, issue 32), in a few seconds:
# 1. --results on a file props did not write (notes without a newline, one line, JSON that is
#    no props header) is refused: exit status 2, one line on stderr naming it, every byte kept.
# 2. Two runs race for a new results file: the loser, held up between finding the file absent
#    and creating it (test hook MINIINFER_TEST_RESULTS_CREATE_DELAY_MS), is refused, and the
#    winner's file survives with every batch. A second hook (MINIINFER_TEST_RESULTS_CREATED_HOLD_MS)
#    holds the winner, with its lock, while the loser tries, so the outcome does not depend on
#    the machine's speed.
# 3. Two failing runs share a report folder: one pauses between its report's first file and the
#    others (test hook MINIINFER_TEST_REPORT_DELAY_MS), and is stopped there while the other
#    reports; every file of the folder must then be the same run's, byte for byte as that run
#    writes it alone.
# usage: results_race_test.sh PROPS WORKDIR
set -uo pipefail
props=$1 work=$2
# (WORKDIR must lie inside the current folder, where CTest runs this: only that is ever removed.)
"$(dirname "$0")/../scripts/remove-inside" . "$work" && mkdir -p "$work" && cd "$work" || exit 1
failures=0
check() {  # check WHAT CONDITION-STATUS DETAIL
  if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1: $3"; failures=$((failures + 1)); fi
}

# ---- 1: a file that is not a results file is refused and left as it was ---------------------------
printf 'my notes' >notes-no-newline.txt
printf 'my notes\n' >notes-one-line.txt
printf '{"todo": 1}\n' >other-json.jsonl
printf 'first line\nsecond, torn' >notes-two-lines.txt
for f in notes-no-newline.txt notes-one-line.txt other-json.jsonl notes-two-lines.txt; do
  cp "$f" "$f.orig"
  "$props" --rc-seed=1 --results "$f" "[p0]" >/dev/null 2>err.txt
  status=$?
  why=""
  [ "$status" -eq 2 ] || why="exit status $status, expected 2"
  [ "$(wc -l <err.txt)" -eq 1 ] && grep -q -- "--results $f: not a props results file" err.txt ||
    why="$why; stderr: $(head -c 300 err.txt)"
  cmp -s "$f" "$f.orig" || why="$why; the file changed: $(head -c 100 "$f")"
  check "--results $f is refused in one line and left byte for byte" "$([ -z "$why" ]; echo $?)" "$why"
done

# ---- 2: the loser of the race for a new results file never touches the winner's -------------------
# The loser finds the file absent and waits 4 s (the hook says so on stderr); meanwhile the
# winner creates it and holds it, with its lock, for 8 s (a second hook), so the loser meets the
# lock whatever the machine's speed (a SIGSTOP after the file appeared came too late once: the
# winner of 30 batches had finished).
wait_for() {  # wait_for CONDITION...: up to 30 s
  for _ in $(seq 300); do "$@" && return 0; sleep 0.1; done
  return 1
}
flags=(--rc-seed=5 --rc-max-success=300 "[p0]" --results race.jsonl)
MINIINFER_TEST_RESULTS_CREATE_DELAY_MS=4000 "$props" "${flags[@]}" >loser.log 2>loser.err &
loser=$!
wait_for grep -q "test hook: race.jsonl is absent" loser.err
MINIINFER_TEST_RESULTS_CREATED_HOLD_MS=8000 "$props" "${flags[@]}" >winner.log 2>&1 &
winner=$!
wait $loser
loser_status=$?
wait $winner
winner_status=$?
check "the winner of the race finished" "$winner_status" "exit status $winner_status: $(tail -3 winner.log)"
check "the loser, held 4 s before creating the file, is refused in one line" \
  "$([ "$loser_status" -eq 2 ] && [ "$(grep -vc 'test hook' loser.err)" -eq 1 ] &&
    grep -q -- '--results race.jsonl: another props run is appending' loser.err; echo $?)" \
  "exit status $loser_status; stderr: $(head -c 300 loser.err)"
batches=$(grep -c '^{"batch":' race.jsonl 2>/dev/null)
check "the winner's file holds all its 30 batches" "$([ "${batches:-0}" -eq 30 ]; echo $?)" \
  "$(if [ -e race.jsonl ]; then echo "$batches batches"; else echo "race.jsonl is gone"; fi)"

# ---- 3: two reports into one folder: each ID's files are one run's --------------------------------
run_a=(--rc-seed=1 --inject cursor-off-by-one "[p3]")
run_b=(--rc-seed=1 --inject stale-cache "[p3]")
"$props" "${run_a[@]}" --report-dir alone-a >alone-a.log 2>&1
"$props" "${run_b[@]}" --report-dir alone-b >alone-b.log 2>&1
# A pauses 3 s after its report's first file, and is stopped there while B runs up to its
# report (B's "Report for p3" line) and, unless a lock holds it, writes it; then A goes on.
MINIINFER_TEST_REPORT_DELAY_MS=3000 "$props" "${run_a[@]}" --report-dir shared >shared-a.log 2>&1 &
run=$!
wait_for test -e shared/p3.report.json && kill -STOP $run
paused=$?
check "run A paused after its report's first file" "$paused" "no shared/p3.report.json while A ran"
"$props" "${run_b[@]}" --report-dir shared >shared-b.log 2>&1 &
run_b_pid=$!
wait_for grep -q "Report for p3" shared-b.log
sleep 1  # B's four files take milliseconds to write, when nothing holds it back
kill -CONT $run
wait $run $run_b_pid
same_as() { for f in report.json heatmap.svg case.json report.txt; do cmp -s "shared/p3.$f" "$1/p3.$f" || return 1; done; }
files=(alone-a/p3.report.json alone-b/p3.report.json)
check "both runs alone wrote a report, and different ones" \
  "$([ -e "${files[0]}" ] && [ -e "${files[1]}" ] && ! cmp -s "${files[@]}"; echo $?)" "$(ls alone-a alone-b)"
check "the shared folder holds one run's report, all four files of it" \
  "$(same_as alone-a || same_as alone-b; echo $?)" \
  "$(for f in report.json heatmap.svg case.json report.txt; do
       printf '%s: %s; ' "$f" "$(cmp -s shared/p3.$f alone-a/p3.$f && echo A || { cmp -s shared/p3.$f alone-b/p3.$f && echo B || echo neither; })"
     done)"

[ "$failures" -eq 0 ]
