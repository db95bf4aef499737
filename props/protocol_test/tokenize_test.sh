#!/bin/bash
# An engine whose tokenizer is not ours (props/protocol_test/char_engine.py: characters),
# checked through its tokenize op: props --conform says it is conformant, props passes it
# (K/V rows and trace withheld, so p7 and p11 skip by name), its --bug builds fail p6 and p8
# with a counterexample shrunk to a prompt of at most 3 words that replays, and a malformed
# tokenize reply, a word that is no tokens or an id out of range ends the run with one line and
# status 4.
# usage: tokenize_test.sh PROPS WORK
set -u
props=$1 work=$2
engine=$(cd "$(dirname "$0")" && pwd)/char_engine.py
mkdir -p "$work" && cd "$work" || exit 1
failed=0
fail() { echo "FAIL $*"; failed=1; }

"$props" --conform --engine-cmd "$engine" >conform.txt 2>&1
status=$?
if [[ $status == 0 ]] && grep -Eq '^  ok       tokenize +the grammar.s 989 words into 1 to [0-9]+ tokens' conform.txt; then
  echo "ok   props --conform: $(tail -1 conform.txt)"
else
  fail "props --conform on the char engine: status $status"; cat conform.txt
fi

"$props" --conform --engine-cmd "$engine --tokenize-bug empty" >conform-empty.txt 2>&1
status=$?
if [[ $status == 5 ]] && grep -q "^  wrong    tokenize           the word '.' tokenizes to \[\]: every word needs at least one token" conform-empty.txt; then
  echo "ok   props --conform on a word that is no tokens: status 5: $(grep '^  wrong' conform-empty.txt)"
else
  fail "props --conform on --tokenize-bug empty: status $status"; cat conform-empty.txt
fi

"$props" --rc-seed=1 --report-dir good --engine process --engine-cmd "$engine" >good.txt 2>&1
status=$?
if [[ $status == 0 ]] && grep -q '^ok    p6 ' good.txt && grep -q '^ok    p8 ' good.txt &&
   grep -q "^SKIP  p7 .*(engine process has no K/V rows.*: a tokenize engine's K/V rows and trace are in its own positions, withheld)$" good.txt; then
  echo "ok   the char engine passes: $(grep -c '^ok ' good.txt) ok, $(grep -c '^SKIP ' good.txt) skipped"
else
  fail "the char engine should pass (status $status):"; grep -E '^(ok|FAIL|SKIP|props:) ' good.txt
fi

# bug PROPERTY FLAG: that property (run alone: p11 catches --bug truncate too) fails, shrunk to at most
# 3 words, and the case replays.
bug() {
  local id=$1 flag=$2
  "$props" --rc-seed=1 "[$id]" --report-dir "$flag" --engine process --engine-cmd "$engine --bug $flag" >"$flag.txt" 2>&1
  local status=$? words
  words=$(grep -oE '^"[^"]*" \([^)]*, [0-9]+ words' "$flag.txt" | grep -oE '[0-9]+ words$' | cut -d' ' -f1)
  if [[ $status != 1 ]] || ! grep -q "^FAIL  $id " "$flag.txt" || [[ -z $words || $words -gt 3 ]]; then
    fail "--bug $flag: status $status, want $id to fail with a prompt of at most 3 words (got '$words')"
    grep -E '^(ok|FAIL|SKIP) |^"' "$flag.txt"
    return
  fi
  "$props" --replay "$flag/$id.case.json" --report-dir "$flag/replay" >"$flag.replay.txt" 2>&1
  local replayed=$?
  [[ $replayed == 1 ]] || { fail "--bug $flag: the saved case should fail again on replay (status $replayed)"; return; }
  echo "ok   --bug $flag fails $id, shrunk to $(grep -m1 -E '^"' "$flag.txt"), and replays (status 1)"
}
bug p6 position
bug p8 truncate

# bad TOKENIZE-BUG REGEX: one line, status 4.
bad() {
  "$props" --rc-seed=1 --report-dir bad --engine process --engine-cmd "$engine --tokenize-bug $1" >bad.txt 2>&1
  local status=$? line
  line=$(grep -v '^Using configuration' bad.txt | head -1)
  if [[ $status != 4 ]] || ! grep -Eq -- "$2" <<<"$line" || [[ $(wc -l <bad.txt) -gt 2 ]]; then
    fail "--tokenize-bug $1: status $status (want 4): $(cat bad.txt)"
    return
  fi
  echo "ok   --tokenize-bug $1: status 4: $line"
}
bad empty "^props: engine '.*': request 1 tokenize: the word '\.' tokenizes to \[\]: every word must be at least one token$"
bad malformed "^props: engine '.*': request 1 tokenize: a tokenize reply whose 'ids' is not a list of 989 lists"
bad range "^props: engine '.*': request 1 tokenize: the word '\.' tokenizes to \[256\]: ids are integers in 0\.\.255$"

"$props" --rc-seed=1 --report-dir bad --engine process --engine-cmd "$engine --positions 1000" >bad.txt 2>&1
status=$?
line=$(head -1 bad.txt)
if [[ $status == 4 ]] && grep -Eq "request 1 tokenize: holds 1000 positions a sequence; props needs 512 words of up to [0-9]+ tokens: [0-9]+$" <<<"$line"; then
  echo "ok   too few positions for props' words: status 4: $line"
else
  fail "--positions 1000: status $status (want 4): $(cat bad.txt)"
fi
"$props" --conform --engine-cmd "$engine --positions 1000" >conform-positions.txt 2>&1
status=$?
if [[ $status == 5 ]] && grep -Eq "^  wrong    capacity           4 sequences of 1000 positions; props needs 4 of [0-9]+ \(512 words of up to [0-9]+ tokens\)$" conform-positions.txt; then
  echo "ok   props --conform on too few positions: status 5: $(grep '^  wrong' conform-positions.txt)"
else
  fail "props --conform --positions 1000: status $status (want 5)"; cat conform-positions.txt
fi
exit $failed
