#!/bin/bash
# Broken engines behind --engine process, each a finding: one line naming the engine, the
# request and the problem, exit status 4, and no engine process left behind.
# usage: bad_engines_test.sh PROPS MINIGPT WORK
set -u
props=$1 minigpt=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
source "$here/engine_gone.sh"
mkdir -p "$work" && cd "$work" || exit 1
failed=0

# expect NAME STATUS REGEX -- PROPS-ARGS...: the status, and the first stderr line matching REGEX.
# Against minigpt serve, request 1 is a clean slate, 2 a start_request, 3 a forward.
expect() {
  local name=$1 want=$2 regex=$3
  shift 4
  rm -f pid
  "$props" --rc-seed=1 --report-dir "$work/reports" "$@" >out.txt 2>err.txt
  local got=$? line
  line=$(grep -v '^Using configuration' err.txt | head -1)
  if [[ $got != "$want" ]] || ! grep -Eq "$regex" <<<"$line"; then
    echo "FAIL $name: status $got (want $want): $line"
    failed=1
    return
  fi
  # The stand-in writes its pid: it must be gone shortly after props exits.
  engine_gone "$name" || { failed=1; return; }
  echo "ok   $name: status $got: $line"
}

standin() { echo "$here/standin.py $1 $2 $work/pid $minigpt serve"; }

expect "does not start" 4 "^props: engine '/no/such': request 0 hello: the engine command did not start" -- \
  --engine process --engine-cmd /no/such
expect "unknown protocol version" 4 "request 0 hello: chose protocol 99, props offered \[1\]" -- \
  --engine process --engine-cmd "$(standin version 0)"
# An engine that exits (or answers `internal`) during a case is that case's finding, not the
# run's end: the property fails (status 1) naming the request, the op and the stderr's last
# line, and props restarts the engine (this stand-in, restarted, fails at request N again).
expect_case() {
  local name=$1 regex=$2
  shift 3
  rm -f pid
  "$props" --rc-seed=1 "[p6]" --report-dir "$work/reports" "$@" >out.txt 2>err.txt
  local got=$? line
  line=$(grep -m1 -E '^the engine (crashed|failed) ' out.txt)
  if [[ $got != 1 ]] || ! grep -Eq "$regex" <<<"$line"; then
    echo "FAIL $name: status $got (want 1): $line $(head -1 err.txt)"
    failed=1
    return
  fi
  engine_gone "$name" || { failed=1; return; }  # the last stand-in props started is gone too
  echo "ok   $name: status $got: $line"
}
expect_case "exits mid-case" "^the engine crashed \(exit status 3\) at request 5 \(op [a-z_]+\); its stderr ended: standin: exiting on purpose$" -- \
  --engine process --engine-cmd "$(standin exit 5)"
expect "a line that is not JSON" 4 "request 5 [a-z_]+: a reply that is not a JSON object: 'this is not json'" -- \
  --engine process --engine-cmd "$(standin garbage 5)"
expect "hangs past the timeout" 4 "request 5 [a-z_]+: no reply within 1 s \(--engine-timeout\)" -- \
  --engine process --engine-timeout 1 --engine-cmd "$(standin hang 5)"
expect "reply to an unknown id" 4 "request 5 [a-z_]+: a reply to id 1005 \(expected 5\)" -- \
  --engine process --engine-cmd "$(standin wrong-id 5)"
expect "NaN logits" 4 "request 3 [a-z_]+: logit 0 of row 0 is nan" -- --engine process --engine-cmd "$(standin nan 3)"
expect "wrong shape" 4 "request 3 [a-z_]+: logits of shape \[3\], expected" -- \
  --engine process --engine-cmd "$(standin shape 3)"
expect_case "internal error for a claimed op" "^the engine failed \(error internal: out of luck\) at request 3 \(op [a-z_]+\)$" -- \
  --engine process --engine-cmd "$(standin error 3)"
expect "a cursor outside the sequence" 4 "request 2 start_request: a reply whose cursor is -1, not 0\.\.[0-9]+" -- \
  --engine process --engine-cmd "$(standin cursor 2)"
expect "no --engine-cmd" 2 "^props: --engine process needs --engine-cmd CMD" -- --engine process
expect "--engine-timeout 0" 2 "^props: --engine-timeout: 0 is less than 1 second" -- \
  --engine process --engine-timeout 0 --engine-cmd "$minigpt serve"
exit $failed
