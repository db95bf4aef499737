#!/usr/bin/env bash
# props --db DIR, the failure database (CTest props_failure_db, docs/failure-db.md): a run with a
# fault saves its shrunk case; the next run replays it first, it still fails and no new case is
# generated; a run without the fault replays it, it passes and is retired, and leaves the cases
# generated after it as a run on an empty db draws them; shards split the saved cases, none
# replayed twice; --replay DIR replays a db; a damaged db file is named, exit 2. About 10 s.
# usage: failure_db_test.sh PROPS WORKDIR
set -uo pipefail
props=$1 work=$2
# (WORKDIR must lie inside the current folder, where CTest runs this: only that is ever removed.)
"$(dirname "$0")/../scripts/remove-inside" . "$work" && mkdir -p "$work" && cd "$work" || exit 1
failures=0
check() {  # check WHAT CONDITION-STATUS DETAIL-FILE
  if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1 (see $work/$3)"; failures=$((failures + 1)); fi
}
has() { grep -qE "$2" "$1"; echo $?; }  # has FILE REGEX: 0 when a line matches
cases() { find db -name '*.case.json' | wc -l; }
fault=(--inject cursor-off-by-one)
run() {  # run LOG ARGS...: props on [p6] with the db; the exit status into $status
  local log=$1
  shift
  "$props" --rc-seed=3 --db db --report-dir "reports-$log" "$@" '[p6]' >"$log.log" 2>&1
  status=$?
}

run found "${fault[@]}"
check "a run with a fault fails (exit 1)" "$([ $status -eq 1 ]; echo $?)" found.log
check "it saves its shrunk case in the db" "$([ "$(cases)" -eq 1 ]; echo $?)" found.log
check "and says where" "$(has found.log '^  db: +db/p6-[0-9a-f]{16}\.case\.json \(saved\)$')" found.log
saved=$(find db -name '*.case.json')

run again "${fault[@]}"
check "the next run with the fault fails (exit 1)" "$([ $status -eq 1 ]; echo $?)" again.log
check "it replays the saved case first: it still fails" \
  "$(has again.log "^db: p6: $saved still fails: ")" again.log
check "with the summary line" \
  "$(has again.log '^db: p6: 1 saved case replayed first: 1 still fails, 0 now pass \(retired\)$')" again.log
check "and generates no new case" "$(has again.log 'a saved case still fails \(--db\); no new cases were generated')" again.log
check "its report is published" "$([ -f reports-again/p6.case.json ]; echo $?)" again.log
check "the still-failing case stays" "$([ -f "$saved" ]; echo $?)" again.log

"$props" --replay db --report-dir reports-replay >replay.log 2>&1
status=$?
check "--replay db: exit 1, the case still fails" "$([ $status -eq 1 ]; echo $?)" replay.log
check "--replay db names it and counts" \
  "$(grep -qx "replay $saved: still fails" replay.log && grep -qx 'replay db: 1 case: 1 still fails, 0 pass now' replay.log;
     echo $?)" replay.log
"$props" --replay db --inject none --report-dir reports-replay >replay-fixed.log 2>&1
check "--replay db --inject none: exit 0, it passes" \
  "$([ $? -eq 0 ] && grep -qx 'replay db: 1 case: 0 still fail, 1 passes now' replay-fixed.log; echo $?)" replay-fixed.log
check "--replay never retires a case" "$([ -f "$saved" ]; echo $?)" replay-fixed.log

run fixed
check "a run without the fault passes (exit 0)" "$([ $status -eq 0 ]; echo $?)" fixed.log
check "it replays the saved case first: it passes and is retired" \
  "$(has fixed.log "^db: p6: $saved passes now \(retired\)$")" fixed.log
check "the retired case is gone" "$([ "$(cases)" -eq 0 ]; echo $?)" fixed.log

run empty
check "a third run finds an empty db" "$(has empty.log '^props: db db: 0 saved cases, 0 of them')" empty.log
check "and replays nothing" "$([ "$(grep -c '^db: ' empty.log)" -eq 0 ]; echo $?)" empty.log
# A saved case is a pure function of its inputs: replaying it leaves the generated cases alone.
generated() { sed -nE '/^ok    p6 /,/^props: took/p' "$1" | sed -E 's/ +[0-9.]+ s$//; /^props: took/d'; }
check "the cases generated after a replay are those of a run without one" \
  "$([ -n "$(generated fixed.log)" ] && [ "$(generated fixed.log)" == "$(generated empty.log)" ]; echo $?)" fixed.log

"$props" --replay db >replay-empty.log 2>&1
check "--replay of an empty db: exit 2, named" \
  "$([ $? -eq 2 ] && grep -q 'replay db: the folder holds no \*.case.json' replay-empty.log; echo $?)" replay-empty.log

# Shards: each saved case is replayed (and retired) by exactly one of them, even side by side.
for k in 1 2; do "$props" --rc-seed=3 --db db --shard $k/2 --report-dir reports-s "${fault[@]}" '[p6],[p1]' >"shard-found-$k.log" 2>&1; done
n=$(cases)
check "two failing shards save their cases" "$([ "$n" -ge 2 ]; echo $?)" shard-found-1.log
# (side by side, as the nightly runs its shards on one folder)
for k in 1 2; do "$props" --rc-seed=3 --db db --shard $k/2 --report-dir reports-s '[p6],[p1]' >"shard-fixed-$k.log" 2>&1 & done
wait
retired=$(cat shard-fixed-*.log | grep -cE '^db: p[0-9]+: .* passes now \(retired\)$')
replayed=$(cat shard-fixed-*.log | grep -oE '^db: p[0-9]+: db/[^:]*: ' | sort)
check "the shards retire every saved case ($n), each once" \
  "$([ "$retired" -eq "$n" ] && [ -z "$(uniq -d <<<"$replayed")" ] && [ "$(cases)" -eq 0 ]; echo $?)" shard-fixed-1.log
check "a shard says what it left to the other" "$(cat shard-found-2.log | grep -qE 'left to the other shards$'; echo $?)" \
  shard-found-2.log

# A damaged db file is named, and nothing runs.
mkdir -p db && echo '{"property": "p6", "prompts": [' >db/p6-0000000000000000.case.json
"$props" --rc-seed=3 --db db '[p6]' >damaged.log 2>damaged.err
check "a damaged db file: exit 2" "$([ $? -eq 2 ]; echo $?)" damaged.err
check "one line on stderr naming the file" \
  "$([ "$(wc -l <damaged.err)" -eq 1 ] && grep -q 'db/p6-0000000000000000\.case\.json: not valid JSON' damaged.err; echo $?)" \
  damaged.err
check "before any property runs" "$([ "$(grep -cE '^(ok|FAIL) ' damaged.log)" -eq 0 ]; echo $?)" damaged.log
echo '{"property": "p99"}' >db/p6-0000000000000000.case.json
"$props" --replay db >replay-damaged.log 2>&1
check "--replay db with a bad case file: exit 2, named" \
  "$([ $? -eq 2 ] && grep -q "db/p6-0000000000000000.case.json: case: unknown property 'p99'" replay-damaged.log; echo $?)" \
  replay-damaged.log

[ "$failures" -eq 0 ] || { echo "failure_db_test: $failures checks failed"; exit 1; }
echo "failure_db_test: every check holds"
