#!/usr/bin/env bash
# props --junit FILE end to end (CTest props_junit): a passing run, a failing run, its reproduce
# command (an --rc-reproduce run, the other properties skipped) and a sliced run each write a
# file that xmllint finds well-formed and valid against props/junit.xsd, and that a real JUnit
# reader (Debian's python3-junitparser) reads back with the right counts, names, case counts,
# and for each failure its reproduce and replay commands and first parting site. A Catch2
# reporter on stdout and an unwritable --junit are refused before the run; a full disk mid-write
# is exit status 3 and leaves no file.
# usage: junit_test.sh PROPS WORKDIR
set -uo pipefail
props=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
# (WORKDIR must lie inside the current folder, where CTest runs this: only that is ever removed.)
"$here/../scripts/remove-inside" . "$work" && mkdir -p "$work" && cd "$work" || exit 1
# Debian's python3 has python3-junitparser; a python3 earlier on PATH (pyenv) may not.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
failures=0

ok() { printf 'ok    %s\n' "$1"; }
bad() {
  failures=$((failures + 1))
  printf 'FAIL  %s\n' "$1"
  [ $# -gt 1 ] && printf '      %s\n' "${@:2}"
}

# run NAME STATUS FILE -- COMMAND...: the command exits STATUS, keeps XML off stdout, and FILE
# is well-formed, valid against junit.xsd, and read by junitparser as the expectations say.
run() {
  local name=$1 want=$2 file=$3
  shift 4
  "$@" >"$name.out" 2>"$name.err"
  local got=$?
  if [ "$got" -ne "$want" ]; then bad "$name: exit status $got, expected $want" "$(tail -n 3 "$name.err")"; return 1; fi
  if grep -q '<?xml\|<testsuite' "$name.out"; then bad "$name: XML on stdout"; return 1; fi
  if ! xmllint --noout "$file" 2>lint.txt; then bad "$name: not well-formed XML" "$(head -n 3 lint.txt)"; return 1; fi
  if ! xmllint --noout --schema "$here/junit.xsd" "$file" 2>lint.txt; then
    bad "$name: not valid against props/junit.xsd" "$(head -n 3 lint.txt)"
    return 1
  fi
  ok "$name: exit $got, $file well-formed and valid"
}

# read_back NAME FILE TESTS FAILURES SKIPPED [ID=STATUS]...: junitparser's view of FILE.
read_back() {
  if "$py" - "$@" <<'EOF'; then ok "$1: junitparser reads $2 as expected"; else bad "$1: junitparser: $2"; fi
import sys
from junitparser import JUnitXml, Failure, Skipped
name, path, tests, fails, skips = sys.argv[1:6]
want = dict(a.split("=") for a in sys.argv[6:])
xml = JUnitXml.fromfile(path)
suites = list(xml)
problems = []
def need(cond, what):
    if not cond: problems.append(what)
need(len(suites) == 1, f"{len(suites)} testsuites, expected 1")
suite = suites[0]
need((suite.tests, suite.failures, suite.errors, suite.skipped) == (int(tests), int(fails), 0, int(skips)),
     f"suite counts tests/failures/errors/skipped {suite.tests}/{suite.failures}/{suite.errors}/{suite.skipped}, "
     f"expected {tests}/{fails}/0/{skips}")
settings = {p.name: p.value for p in suite.properties()}
for key in ("seed", "engine", "engine_settings", "level", "backend", "fault", "model_sha256", "machine"):
    need(key in settings, f"no testsuite property {key}")
need(settings.get("seed") == "1", f"seed {settings.get('seed')!r}, expected '1'")
cases = list(suite)
need(len(cases) == int(tests), f"{len(cases)} testcases, expected {tests}")
for case in cases:
    cid = case.name.split(":")[0]
    status = case._elem.get("status")
    assertions = int(case._elem.get("assertions"))
    need(case.classname == "props" and case.time >= 0, f"{case.name}: classname {case.classname!r}, time {case.time}")
    need(case.name.startswith(cid + ": ") and len(case.name) > len(cid) + 10, f"{case.name!r}: no sentence")
    if cid in want:
        need(status == want[cid], f"{cid}: status {status}, expected {want[cid]}")
    results = case.result
    if status == "passed":
        need(not results and assertions > 0, f"{cid}: passed with {assertions} cases and results {results}")
    elif status == "skipped":
        need(len(results) == 1 and isinstance(results[0], Skipped), f"{cid}: skipped without <skipped>")
    elif status == "failed":
        need(len(results) == 1 and isinstance(results[0], Failure), f"{cid}: failed without <failure>")
        f = results[0]
        text = f.text or ""
        need(f.message and f.type, f"{cid}: failure message {f.message!r} type {f.type!r}")
        need("counterexample (shrunk):\n" in text and "Falsifiable" in text, f"{cid}: no counterexample in the text")
        # The prompt is shown quoted: XML-special characters come back as they were written.
        need("miniinfer::gen::Prompt:\n\"" in text, f"{cid}: the counterexample's quoted prompt is not in the text")
        need("\nreproduce: " in text and "--rc-reproduce=" in text, f"{cid}: no reproduce command in the text")
        need(f"\nreplay: " in text and f"{cid}.case.json" in text, f"{cid}: no replay command in the text")
        need("first parting: layer " in text, f"{cid}: no first parting site in the text")
for cid in want:
    need(any(c.name.startswith(cid + ": ") for c in cases), f"no testcase {cid}")
for p in problems:
    print(f"      {p}")
sys.exit(1 if problems else 0)
EOF
}

# refused NAME REGEX -- COMMAND...: exit status 2, one line on stderr matching REGEX, no file.
refused() {
  local name=$1 regex=$2
  shift 3
  "$@" >refused.out 2>refused.err
  local got=$? lines
  lines=$(wc -l <refused.err)
  if [ "$got" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -Eq -- "$regex" refused.err; then
    bad "$name: exit status $got (expected 2), $lines lines on stderr, expected one matching /$regex/" "$(head -c 400 refused.err)"
  elif compgen -G "refused*.xml" >/dev/null; then
    bad "$name: left a file behind"
  else
    ok "$name: $(cat refused.err)"
  fi
}

fault=(--inject cursor-off-by-one --report-dir reports)
run pass 0 pass.xml -- "$props" --rc-seed=1 "[p0],[p6],[p7]" --junit pass.xml &&
  read_back pass pass.xml 3 0 0 p0=passed p6=passed p7=passed
run fail 1 fail.xml -- "$props" --rc-seed=1 "${fault[@]}" "[p1],[p6],[p8]" --junit fail.xml &&
  read_back fail fail.xml 3 3 0 p1=failed p6=failed p8=failed
# p6's reproduce command, as the file gives it: every other property is skipped.
reproduce=$("$py" -c '
import sys; from junitparser import JUnitXml
for c in next(iter(JUnitXml.fromfile(sys.argv[1]))):
    if c.name.startswith("p6: "):
        print(next(l for l in c.result[0].text.splitlines() if l.startswith("reproduce: "))[11:])
' fail.xml)
if [ -z "$reproduce" ]; then
  bad "reproduce: no reproduce command for p6 in fail.xml"
else
  total=$("$props" --list-test-names-only 2>/dev/null | grep -v '^props: ' | grep -c .)
  eval "run reproduce 1 reproduce.xml -- $reproduce --report-dir reports --junit reproduce.xml" &&
    read_back reproduce reproduce.xml "$total" 1 $((total - 1)) p6=failed p0=skipped
fi
run sliced 1 sliced.xml -- "$props" --rc-seed=1 "${fault[@]}" --shard 1/1 --results sliced.jsonl "[p0],[p6]" \
  --junit sliced.xml && read_back sliced sliced.xml 2 1 0 p0=passed p6=failed

mkdir -p folder
refused "junit: missing folder" "^props: --junit no-such/refused\.xml: the folder no-such does not exist" \
  -- "$props" --junit no-such/refused.xml "[p0]"
refused "junit: a folder" "^props: --junit folder: is a folder" -- "$props" --junit folder "[p0]"
refused "junit: under /proc" "^props: --junit /proc/refused\.xml: cannot write in /proc" \
  -- "$props" --junit /proc/refused.xml "[p0]"
refused "junit: with --replay" "--junit: --replay re-runs one saved case" \
  -- "$props" --replay reports/p6.case.json --junit refused.xml
for reporter in "-r junit" "-r xml" "--reporter=junit" "--reporter compact"; do
  # shellcheck disable=SC2086  # the reporter's words split on purpose
  refused "catch2 $reporter" "^props: Catch2's reporter '[a-z]+' is refused: .* use --junit FILE" \
    -- "$props" --rc-seed=1 "[p0]" $reporter
done
refused "catch2 -r junit with -o" "^props: Catch2's reporter 'junit' is refused" \
  -- "$props" --rc-seed=1 "[p0]" -r junit -o refused-catch.xml

# A full disk while the file is written: exit status 3, one line naming it, no file left.
(trap '' XFSZ; ulimit -f 1; exec "$props" --rc-seed=1 "[p0],[p1],[p6]" --junit full.xml) >full.out 2>full.err
got=$?
if [ "$got" -eq 3 ] && grep -q "^props: --junit full\.xml: .*File too large" full.err && ! compgen -G "full.xml*" >/dev/null; then
  ok "junit: disk full: exit 3, $(grep '^props: --junit' full.err)"
else
  bad "junit: disk full: exit status $got, expected 3 and no full.xml" "$(head -c 400 full.err)"
fi

[ "$failures" -eq 0 ] && echo "junit_test: all checks passed" || echo "junit_test: $failures checks failed"
[ "$failures" -eq 0 ]
