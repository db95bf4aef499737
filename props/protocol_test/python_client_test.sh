#!/bin/bash
# An engine written with the Python client (clients/python/bigram_engine.py): props passes it
# (every property it can run; p7, p10 and p11 skipped for K/V rows and random architectures it
# lacks), and fails its --bug build (cached positions off by one) with status 1.
# usage: python_client_test.sh PROPS MINIGPT WORK
set -u
props=$1 minigpt=$2 work=$3
engine=$(cd "$(dirname "$0")/../../clients/python" && pwd)/bigram_engine.py
mkdir -p "$work" && cd "$work" || exit 1
# The engine answers with the model's vocabulary size, which our own engine's hello names.
vocab=$(echo '{"id":0,"op":"hello","protocol":[1]}' | "$minigpt" serve |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["vocab_size"])') || exit 1

"$props" --rc-seed=1 --report-dir good --engine process --engine-cmd "$engine $vocab" >good.txt 2>&1
status=$?
if [[ $status != 0 ]] || grep -q '^FAIL' good.txt || ! grep -q '^ok    p6 ' good.txt; then
  echo "FAIL: the bigram engine should pass (status $status):"; grep -E '^(ok|FAIL|SKIP) ' good.txt; exit 1
fi
echo "ok   the bigram engine passes: $(grep -c '^ok ' good.txt) ok, $(grep -c '^SKIP ' good.txt) skipped"

"$props" --rc-seed=1 -a --report-dir bug --engine process --engine-cmd "$engine $vocab --bug" >bug.txt 2>&1
status=$?
if [[ $status != 1 ]] || ! grep -q '^FAIL  p6 ' bug.txt; then
  echo "FAIL: the bigram engine's --bug build should fail p6 (status $status)"; tail -5 bug.txt; exit 1
fi
echo "ok   its --bug build fails p6 with status 1"

# Both kinds of engine run on props' CPU when the hello names one (docs/protocol.md, the
# handshake): minigpt serve, and an engine of the Python client at one thread.
for eng in "$minigpt serve" "$engine $vocab"; do
  pinned=$(echo '{"id":0,"op":"hello","protocol":[1],"cpu":0}' | $eng 2>/dev/null |
           /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin).get("pinned"))')
  [[ $pinned == True ]] || { echo "FAIL: '$eng' answers a hello with cpu 0 with pinned $pinned"; exit 1; }
done
echo "ok   minigpt serve and the Python client run on the hello's CPU (pinned)"
