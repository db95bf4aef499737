#!/bin/bash
# props --conform: our engine (minigpt serve) is conformant, and the output is kept in
# WORK/minigpt.txt; each fault the script can see gives its wrong line and status 5; the
# Python client's bigram engine is conformant with kv_rows and trace missing, its --bug build
# is not; a stand-in whose full recompute is not deterministic is told that bitwise checking
# of it is meaningless; broken stand-ins give their wrong line (status 5) or, when they break
# the transport, one line naming the request (status 4), and no engine outlives props; bad
# flags are refused (status 2).
# usage: conform_test.sh PROPS MINIGPT WORK
set -u
props=$1 minigpt=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
source "$here/engine_gone.sh"
bigram="$here/../../clients/python/bigram_engine.py"
mkdir -p "$work" && cd "$work" || exit 1
failed=0

# conform NAME STATUS REGEX CMD [FLAGS...]: the status, and a line of stdout+stderr matching REGEX
# (no --engine-cmd when CMD is empty).
conform() {
  local name=$1 want=$2 regex=$3 cmd=$4
  shift 4
  rm -f pid
  "$props" --conform ${cmd:+--engine-cmd "$cmd"} "$@" >out.txt 2>&1
  local got=$?
  if [[ $got != "$want" ]] || ! grep -Eq -- "$regex" out.txt; then
    echo "FAIL $name: status $got (want $want), no line matches /$regex/:"
    sed 's/^/    /' out.txt
    failed=1
    return
  fi
  # The stand-in writes its pid: it must be gone shortly after props exits.
  engine_gone "$name" || { failed=1; return; }
  echo "ok   $name: status $got: $(grep -E -m1 -- "$regex" out.txt | cut -c1-150)"
}
standin() { echo "$here/standin.py $1 $2 $work/pid $minigpt serve"; }

# On the contiguous layout it has no prefix cache: that line alone is missing.
conform "minigpt serve" 0 "^props --conform: 17 ok, 1 missing, 0 wrong: conformant \(props skips what is missing\)$" \
  "$minigpt serve"
cp out.txt minigpt.txt
grep -v '^  missing  prefix_cache ' minigpt.txt | grep -q '^  wrong\|^  missing' &&
  { echo "FAIL: minigpt serve has a wrong or missing line besides prefix_cache"; failed=1; }
conform "fork-shallow" 5 "^  wrong    fork  .*forked at 3 over older rows" "$minigpt serve --inject fork-shallow"
conform "truncate-stale" 5 "^  wrong    truncate .*after truncating to 3" "$minigpt serve --inject truncate-stale"
conform "chunk-mask" 5 "^  wrong    forward_cached .*all_rows on an empty sequence" "$minigpt serve --inject chunk-mask"
conform "continuous-batch-mask" 5 "^  wrong    forward_batch .*a one-token chunk beside a new chunk" \
  "$minigpt serve --inject continuous-batch-mask"
conform "cursor-off-by-one" 5 "^  wrong    decode .*one token after the chunk" "$minigpt serve --inject cursor-off-by-one"
conform "its verdict" 5 "^props --conform: 13 ok, 1 missing, 4 wrong: not conformant: 4 checks found cached logits" \
  "$minigpt serve --inject cursor-off-by-one"

conform "bigram engine" 0 "^props --conform: 15 ok, 3 missing, 0 wrong: conformant \(props skips what is missing\)$" \
  "$bigram 989"
grep -Eq '^  missing  kv_rows .*not claimed' out.txt && grep -Eq '^  missing  trace .*not claimed' out.txt ||
  { echo "FAIL: the bigram engine's kv_rows and trace lines"; failed=1; }
conform "bigram engine --bug" 5 "^  wrong    decode .*one token after the chunk" "$bigram 989 --bug"

conform "a vocabulary list" 0 "^  ok       vocab              a list of 989 strings holding the grammar's 989 words" \
  "$(standin permuted 0)"
conform "nondeterministic recompute" 5 \
  "^  wrong    recompute twice .*full recompute is not deterministic, so bitwise checking of this engine is meaningless" \
  "$(standin noisy 0)"
grep -q "^props --conform: .*not conformant: full recompute is not deterministic" out.txt ||
  { echo "FAIL: the nondeterministic engine's summary"; failed=1; }

conform "NaN logits" 5 "^  wrong    forward_cached     logits: value 0 is nan" "$(standin nan 6)"
conform "wrong shape" 5 "^  wrong    forward_cached     logits of shape \[3\], expected \[7,989\]" "$(standin shape 6)"
conform "error for an op" 5 "^  wrong    forward_cached     forward_cached answers error internal: out of luck" \
  "$(standin error 6)"
conform "a required op missing" 5 "^  missing  fork               fork answers unknown_op" "$(standin unknown 33)"
conform "unknown protocol version" 5 "^  wrong    hello              chose protocol 99, props offered \[1\]" \
  "$(standin version 0)"
conform "does not start" 4 "^props: engine '/no/such': request 0 hello: the engine command did not start" /no/such
conform "exits" 4 "request 5 reset: the engine exited with status 3" "$(standin exit 5)"
grep -q "^  engine stderr: standin: exiting on purpose" out.txt || { echo "FAIL: no stderr tail"; failed=1; }
conform "not JSON" 4 "request 5 reset: a reply that is not a JSON object: 'this is not json'" "$(standin garbage 5)"
conform "wrong id" 4 "request 5 reset: a reply to id 1005 \(expected 5\)" "$(standin wrong-id 5)"
conform "hangs" 4 "request 5 reset: no reply within 1 s \(--engine-timeout\)" "$(standin hang 5)" --engine-timeout 1

conform "no --engine-cmd" 2 "^props: props --conform needs --engine-cmd CMD" ""
conform "a flag it does not use" 2 "^props: --rc-seed: props --conform checks one engine's protocol; it takes no --rc-seed" \
  "$minigpt serve" --rc-seed=1
conform "another engine" 2 "^props: --engine miniinfer: props --conform checks an engine over docs/protocol.md" \
  "$minigpt serve" --engine miniinfer
exit $failed
