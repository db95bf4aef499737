#!/bin/bash
# README.md's "Check your own engine" stays true: its Python block is clients/python/example_engine.py
# byte for byte, and its sh block's commands, run as they are written from a folder that
# looks like the repository after the quick start (build/ holding this build's props,
# clients/ the source's), each exit 0: the conformance check says conformant, props passes.
# usage: readme_test.sh PROPS SOURCE_DIR WORK
set -u
props=$1 source=$2 work=$3
rm -rf "$work/tree" && mkdir -p "$work/tree" && cd "$work" || exit 1
ln -s "$(cd "$(dirname "$props")" && pwd)" tree/build
ln -s "$source/clients" tree/clients
/usr/bin/python3 - "$source/README.md" <<'PY' || exit 1
import sys
text = open(sys.argv[1], encoding="utf-8").read()
head = "## Check your own engine\n"
if head not in text:
    sys.exit("FAIL: README.md has no section '## Check your own engine'")
section = text.split(head, 1)[1].split("\n## ", 1)[0]
def block(lang):
    fence = "```" + lang + "\n"
    if fence not in section:
        sys.exit("FAIL: the section has no ```%s block" % lang)
    return section.split(fence, 1)[1].split("```\n", 1)[0]
open("engine.py", "w", encoding="utf-8").write(block("python"))
open("commands.sh", "w", encoding="utf-8").write(block("sh"))
PY
if ! cmp -s engine.py "$source/clients/python/example_engine.py"; then
  echo "FAIL: README.md's engine differs from clients/python/example_engine.py:"
  diff engine.py "$source/clients/python/example_engine.py"
  exit 1
fi
[[ -x $source/clients/python/example_engine.py ]] || { echo "FAIL: example_engine.py is not executable"; exit 1; }
echo "ok   README.md's engine is clients/python/example_engine.py"
failed=0 n=0
while IFS= read -r cmd; do
  [[ -z $cmd || $cmd == \#* ]] && continue
  n=$((n + 1))
  (cd tree && bash -c "$cmd") >"out$n.txt" 2>&1
  status=$?
  if [[ $status != 0 ]]; then
    echo "FAIL (status $status): $cmd"
    tail -5 "out$n.txt"
    failed=1
  else
    echo "ok   $cmd: $(tail -1 "out$n.txt")"
  fi
done <commands.sh
[[ $n -ge 2 ]] || { echo "FAIL: the sh block holds $n commands"; failed=1; }
grep -q "^props --conform: .* 0 wrong: conformant" out1.txt || { echo "FAIL: the first command is not a conformant check"; failed=1; }
grep -q "^props: [0-9]* passed, 0 failed" out2.txt || { echo "FAIL: the second command is not a passing props run"; failed=1; }
exit $failed
