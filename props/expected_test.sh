#!/usr/bin/env bash
# Expected failures (CTest props_expected, docs/failure-db.md): a failure an entry expects is
# XFAIL and the run exits 0; an entry whose property passes on our engine is XPASS, exit 6;
# --no-expected makes the failure fail again; a bad expected-failures file is refused, exit 2,
# in one line naming the file, the entry and the problem. About 5 s.
# usage: expected_test.sh PROPS WORKDIR
set -uo pipefail
props=$1 work=$2
# (WORKDIR must lie inside the current folder, where CTest runs this: only that is ever removed.)
"$(dirname "$0")/../scripts/remove-inside" . "$work" && mkdir -p "$work" && cd "$work" || exit 1
failures=0
check() {  # check WHAT CONDITION-STATUS LOG
  if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1 (see $work/$3)"; failures=$((failures + 1)); fi
}
entry() {  # entry PROPERTY: our engine's p6 expected to fail at bits, as a file's one entry
  printf '[{"engine": "miniinfer", "settings": {"backend": "invariant"}, "property": "%s", "level": "bits",
  "reason": "a test: %s is expected to fail", "link": "docs/failure-db.md"}]\n' "$1" "$1"
}
entry p6 >p6.json
run() {  # run LOG ARGS...: props on [p6], stdout and stderr into LOG.log; the status into $status
  local log=$1
  shift
  "$props" --rc-seed=1 --report-dir "reports-$log" --summary "$log.summary.json" "$@" '[p6]' >"$log.log" 2>&1
  status=$?
}
status_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["properties"][0]["status"])' "$1"; }

run xfail --expected p6.json --inject cursor-off-by-one
check "an expected failure: exit 0" "$([ $status -eq 0 ]; echo $?)" xfail.log
check "its XFAIL line gives the reason and the link" \
  "$(grep -qE '^XFAIL p6 +expected on miniinfer at level bits: a test: p6 is expected to fail$' xfail.log &&
     grep -qxF '      see docs/failure-db.md' xfail.log; echo $?)" xfail.log
check "its report is still printed and saved" \
  "$(grep -q '^Report for p6:' xfail.log && [ -f reports-xfail/p6.case.json ]; echo $?)" xfail.log
check "the closing line counts it" "$(grep -qx 'props: 0 passed, 0 failed, 1 expected failure' xfail.log; echo $?)" xfail.log
check "the summary's status is expected-failure" "$([ "$(status_of xfail.summary.json)" == expected-failure ]; echo $?)" \
  xfail.log
check "the summary gives the entry's reason and link" \
  "$(python3 -c 'import json,sys; e = json.load(open(sys.argv[1]))["properties"][0]["expected"]
assert e == {"reason": "a test: p6 is expected to fail", "link": "docs/failure-db.md", "strict": True}, e' \
     xfail.summary.json; echo $?)" xfail.summary.json

run sliced --expected p6.json --inject cursor-off-by-one --shard 1/1
check "a sliced run (--shard) expects it too: exit 0, XFAIL" "$([ $status -eq 0 ] && grep -q '^XFAIL p6 ' sliced.log; echo $?)" \
  sliced.log

run xpass --expected p6.json
check "an expected failure that passes: exit 6" "$([ $status -eq 6 ]; echo $?)" xpass.log
check "its XPASS line asks to remove the entry" \
  "$(grep -qE '^XPASS p6 +expected to fail on miniinfer at level bits \(.*\), but it passed: remove its entry from p6.json$' \
     xpass.log; echo $?)" xpass.log
check "the closing line counts it" "$(grep -qx 'props: 0 passed, 0 failed, 1 unexpected pass' xpass.log; echo $?)" xpass.log
check "the summary's status is unexpected-pass" "$([ "$(status_of xpass.summary.json)" == unexpected-pass ]; echo $?)" \
  xpass.log

sed 's/"level": "bits",/"level": "bits", "strict": false,/' p6.json >loose.json
run loose --expected loose.json
check "a pass that a non-strict entry expects to fail: exit 0, a note, status passed" \
  "$([ $status -eq 0 ] && grep -q '^      expected to fail for some seeds on miniinfer at level bits (not strict): ' loose.log &&
     [ "$(status_of loose.summary.json)" == passed ]; echo $?)" loose.log

run none --expected p6.json --no-expected --inject cursor-off-by-one
check "--expected with --no-expected: refused, exit 2" "$([ $status -eq 2 ]; echo $?)" none.log
run none --no-expected --inject cursor-off-by-one
check "--no-expected: the failure fails the run (exit 1)" "$([ $status -eq 1 ] && ! grep -q '^XFAIL' none.log; echo $?)" \
  none.log
run other --expected p6.json --backend eigen --inject cursor-off-by-one
check "an entry whose settings do not match expects nothing (exit 1)" \
  "$([ $status -eq 1 ] && ! grep -q '^XFAIL' other.log; echo $?)" other.log

# Bad files: one line on stderr naming the file, the entry and the problem; nothing runs.
refused() {  # refused NAME TEXT EXPECTED-LINE
  printf '%s\n' "$2" >"$1.json"
  "$props" --expected "$1.json" '[p6]' >"$1.log" 2>"$1.err"
  local s=$?
  check "$1: exit 2, one line: $3" \
    "$([ $s -eq 2 ] && [ "$(wc -l <"$1.err")" -eq 1 ] && grep -qF "$3" "$1.err" && ! grep -qE '^(ok|FAIL) ' "$1.log";
       echo $?)" "$1.err"
}
good='"engine": "miniinfer", "settings": {}, "property": "p6", "level": "bits", "reason": "r", "link": "docs/failure-db.md"'
refused bad-json '[{"engine": ' 'bad-json.json: not valid JSON'
refused not-a-list '{}' 'not-a-list.json: must be a JSON list of entries'
refused missing "[{${good/\"reason\": \"r\", /}}]" "missing.json: entry 1 (p6): the field 'reason' is missing"
refused property "[{${good/p6/p99}}]" "property.json: entry 1 (p99): unknown property id 'p99'"
refused level "[{${good/bits/bitz}}]" 'level.json: entry 1 (p6): level: '
refused field "[{${good}, \"note\": 1}]" "field.json: entry 1 (p6): unknown field 'note'"
refused link "[{${good/docs\/failure-db.md/docs\/none.md}}]" "link.json: entry 1 (p6): link 'docs/none.md' is neither"
refused setting "[{${good/\"settings\": \{\}/\"settings\": {\"kvv\": 1\}}}]" \
  "setting.json: entry 1 (p6): 'kvv' is not one of miniinfer's settings"
"$props" --expected nowhere.json '[p6]' >nowhere.log 2>&1
check "a missing file: exit 2, named" "$([ $? -eq 2 ] && grep -q 'nowhere.json' nowhere.log; echo $?)" nowhere.log

[ "$failures" -eq 0 ] || { echo "expected_test: $failures checks failed"; exit 1; }
echo "expected_test: every check holds"
