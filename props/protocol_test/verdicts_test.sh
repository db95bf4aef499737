#!/bin/bash
# Our engine over the protocol (minigpt serve) gives the in-process verdicts: with no fault
# every property's line is the same (p10 aside: a process has no random architectures, and
# says so; and p13, p15 and p16, which both skip, each naming itself: neither has a prefix cache,
# a quantized cache or a sliding window), and with --inject FAULT on both sides the same property
# fails first with the same
# shrunk case and the same report.
# With WRAP, the engine command is "WRAP MINIGPT serve ..." (standin.py permuted: the same
# engine behind a vocabulary in another order, which props must map its words through).
# With VERDICTS_FILTER in the environment, both runs get it as Catch2's test filter ('~[p11]').
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
  grep -q '^SKIP  p13 .*(engine process has no prefix cache' proc.txt ||
    { echo "FAIL: p13 is not skipped for want of a prefix cache"; exit 1; }
  grep -q '^SKIP  p14 .*(engine process has no settable thread count: the protocol has no command' proc.txt ||
    { echo "FAIL: p14 is not skipped, saying why, for want of a thread count"; exit 1; }
  grep -q '^SKIP  p15 .*(engine process has no quantized K/V cache' proc.txt ||
    { echo "FAIL: p15 is not skipped for want of a quantized cache"; exit 1; }
  grep -q '^SKIP  p16 .*(engine process has no sliding-window cache' proc.txt ||
    { echo "FAIL: p16 is not skipped for want of a sliding window"; exit 1; }
  if ! diff <(verdicts in.txt | grep -Ev ' p1[03456] ') <(verdicts proc.txt | grep -Ev ' p1[03456] '); then
    echo "FAIL: the verdicts over the protocol differ from the in-process ones (< in-process, > process)"
    exit 1
  fi
  grep -q 'FAIL' <(verdicts proc.txt) && { echo "FAIL: a property fails over the protocol"; exit 1; }
  echo "ok   $(verdicts proc.txt | wc -l) verdicts over the protocol equal the in-process ones (p10, p13, p14, p15 and p16 skipped)"
  exit 0
fi

fault=$4 wrap=${5:-} filter=()
[[ -n ${VERDICTS_FILTER:-} ]] && filter=("$VERDICTS_FILTER")
# -a (Catch2's --abort): both runs stop after the first failing property.
"$props" --rc-seed=1 -a --report-dir "$work/in" --inject "$fault" "${filter[@]}" >in.txt 2>&1
"$props" --rc-seed=1 -a --report-dir "$work/proc" --engine process --engine-cmd "$wrap $minigpt serve --inject $fault" \
  "${filter[@]}" >proc.txt 2>&1
first_in=$(verdicts in.txt | grep -m1 '^FAIL' | awk '{print $2}')
first_proc=$(verdicts proc.txt | grep -m1 '^FAIL' | awk '{print $2}')
if [[ -z $first_in || $first_in != "$first_proc" ]]; then
  echo "FAIL: the first failing property is '$first_in' in-process, '$first_proc' over the protocol"
  exit 1
fi
# The same shrunk case, and the same report: its text and heatmap byte for byte, its JSON and
# the case file field for field, all but the engine's name, settings and fault (the process
# engine's fault lives in its command). The magnitudes (max_abs, max_ulp) are the same too:
# they measure what a stale slot held, and over the protocol props poisons free slots as
# in-process (the op `poison`, docs/protocol.md).
# The text the report quotes (the tokens generated before the parting) shows that the engine's
# token ids were mapped to and from props' words correctly.
for ext in report.txt heatmap.svg; do
  if [[ -e $work/in/$first_in.$ext ]] && ! cmp -s "$work/in/$first_in.$ext" "$work/proc/$first_in.$ext"; then
    echo "FAIL: $first_in.$ext differs (< in-process, > over the protocol):"
    diff "$work/in/$first_in.$ext" "$work/proc/$first_in.$ext" | head -20
    exit 1
  fi
done
/usr/bin/python3 - "$work/in/$first_in" "$work/proc/$first_in" <<'PY' || exit 1
import json, re, sys
ENGINE = ("engine", "engine_settings", "fault")
def facts(base):
    case = {k: v for k, v in json.load(open(base + ".case.json")).items() if k not in ENGINE}
    report = json.load(open(base + ".report.json"))
    report["case"] = {k: v for k, v in report["case"].items() if k not in ENGINE}
    return case, report
a, b = facts(sys.argv[1]), facts(sys.argv[2])
for what, x, y in (("case", a[0], b[0]), ("report.json", a[1], b[1])):
    for k in sorted(set(x) | set(y)):
        if x.get(k) != y.get(k):
            print(f"FAIL: {what}: {k} in-process", json.dumps(x.get(k))[:400], "\n      over the protocol", json.dumps(y.get(k))[:400])
            sys.exit(1)
text = re.findall(r'after "[^"]*"', open(sys.argv[1] + ".report.txt").read())
# A p11 case is a program of commands, the others' a list of prompts.
shown = a[0]["prompts"] if "prompts" in a[0] else [c["text"] for c in a[0]["program"]]
print("ok   both fail", sys.argv[1].split("/")[-1], "first, with the same case and report:", json.dumps(shown),
      json.dumps(a[1].get("first_parting")), text)
PY
