#!/bin/bash
# The prefix cache over the protocol (docs/protocol.md, "Serving requests"): capability
# prefix_cache, submit and free.
#   serve: minigpt serve --kv-cache paged claims it (prefix_block = its block size) and is
#          conformant, with the contiguous layout it does not (and refuses submit with
#          not_implemented); its bad requests get their error codes; p13 holds on it over the
#          protocol; each broken stand-in (standin.py noblock, overreuse, offgrid, nohit, unfreed)
#          gets its wrong line from props --conform, and the ones that break the protocol end a
#          p13 run with one line and exit status 4, no engine left behind; the Python client's
#          submit and free answer as the protocol says.
#   torch: the PyTorch MiniGPT with --prefix-cache: its prefix_cache line of props --conform is
#          ok; p13 holds on it at the bits level in blocks of 16; in blocks of 4 it holds at the
#          tokens level and at bits fails as drift (or passes); its --fault prefix-positions
#          fails p13 (shrunk), and --fault prefix-block-key, which p13's cases cannot reach (B
#          always shares a true prefix with A), passes p13 (a measured blind spot, kept so a
#          change shows).
# usage: prefix_test.sh PROPS MINIGPT WORK serve|torch
set -u
props=$(realpath -- "$1") minigpt=$(realpath -- "$2") work=$(realpath -m -- "$3") part=$4
here=$(cd "$(dirname "$0")" && pwd)
source "$here/engine_gone.sh"
client=$(cd "$here/../../clients/python" && pwd)
mkdir -p "$work" && cd "$work" || exit 1
failed=0
bad() { echo "FAIL $*"; failed=1; }
paged="$minigpt serve --kv-cache paged --block-size 16"
standin() { echo "$here/standin.py $1 0 $work/pid $2"; }

# conform NAME STATUS REGEX CMD: props --conform's status, and a line matching REGEX.
conform() {
  local name=$1 want=$2 regex=$3 cmd=$4
  rm -f pid
  "$props" --conform --engine-cmd "$cmd" >out.txt 2>&1
  local got=$?
  if [[ $got != "$want" ]] || ! grep -Eq -- "$regex" out.txt; then
    bad "$name: conform status $got (want $want), no line matches /$regex/:"
    grep -E '^  (wrong|missing)|^props' out.txt | sed 's/^/    /'
    return
  fi
  engine_gone "$name" || { failed=1; return; }
  echo "ok   $name: conform status $got: $(grep -E -m1 -- "$regex" out.txt | cut -c1-160)"
}

# p13 NAME STATUS REGEX CMD [FLAGS...]: a p13 run's status and a line of its stdout+stderr.
p13() {
  local name=$1 want=$2 regex=$3 cmd=$4
  shift 4
  rm -f pid
  rm -rf "$work/reports"
  "$props" --rc-seed=1 "[p13]" --report-dir "$work/reports" --engine process --engine-cmd "$cmd" "$@" >out.txt 2>&1
  local got=$?
  if [[ $got != "$want" ]] || ! grep -Eq -- "$regex" out.txt; then
    bad "$name: p13 status $got (want $want), no line matches /$regex/:"
    grep -v '^Using configuration' out.txt | head -8 | sed 's/^/    /'
    return
  fi
  engine_gone "$name" || { failed=1; return; }
  echo "ok   $name: p13 status $got: $(grep -E -m1 -- "$regex" out.txt | cut -c1-160)"
}

# ask CMD REQUEST...: the engine's replies to hello and then each request, one line each.
ask() {
  local cmd=$1
  shift
  { echo '{"id":0,"op":"hello","protocol":[1]}'; printf '%s\n' "$@"; } | /bin/sh -c "$cmd" 2>/dev/null
}
# reply_has NAME LINE REGEX: one reply line matches.
reply_has() {
  if grep -Eq -- "$3" <<<"$2"; then echo "ok   $1: $(cut -c1-150 <<<"$2")"; else bad "$1: $2"; fi
}

if [[ $part == serve ]]; then
  conform "minigpt serve, paged" 0 "^  ok       prefix_cache       blocks of 16: a cold submit of 18 tokens reuses 0; one of 19 sharing its first block reuses 16" \
    "$paged"
  grep -q '^props --conform: 18 ok, 0 missing, 0 wrong: conformant$' out.txt || bad "minigpt serve, paged: $(tail -1 out.txt)"
  conform "minigpt serve, contiguous" 0 "^  missing  prefix_cache       not claimed" "$minigpt serve"

  # Its bad requests, answered with the protocol's codes.
  mapfile -t r < <(ask "$paged" '{"id":1,"op":"submit","seq":0,"tokens":[]}' '{"id":2,"op":"submit","seq":9,"tokens":[1]}' \
    '{"id":3,"op":"submit","seq":0,"tokens":[5000]}' "{\"id\":4,\"op\":\"submit\",\"seq\":0,\"tokens\":[$(seq -s, 1 513)]}" \
    '{"id":5,"op":"submit","seq":0,"tokens":[1,2,3]}' '{"id":6,"op":"free","seq":0}' '{"id":7,"op":"decode","seqs":[0],"tokens":[1]}' \
    '{"id":8,"op":"submit","seq":0,"tokens":[1,2,3]}')
  reply_has "submit of no tokens" "${r[1]:-}" '"code":"bad_request".*a prompt is at least one token'
  reply_has "submit on sequence 9" "${r[2]:-}" '"code":"bad_request".*seq 9 outside 0\.\.3'
  reply_has "submit of token 5000" "${r[3]:-}" '"code":"bad_request".*token 5000 outside'
  reply_has "submit of 513 tokens" "${r[4]:-}" '"code":"out_of_capacity"'
  reply_has "submit" "${r[5]:-}" '^\{"cursor":3,"logits":\{.*"re":5,"reused":0\}$'
  reply_has "free" "${r[6]:-}" '^\{"re":6\}$'
  reply_has "decode on a freed sequence" "${r[7]:-}" '"code":"bad_request","message":"sequence 0 is freed.*"re":7'
  reply_has "submit on a freed sequence" "${r[8]:-}" '"cursor":3,"logits":.*"re":8,"reused":[0-9]+\}$'
  mapfile -t r < <(ask "$minigpt serve" '{"id":1,"op":"submit","seq":0,"tokens":[1]}' '{"id":2,"op":"free","seq":0}')
  reply_has "submit on the contiguous layout" "${r[1]:-}" '"code":"not_implemented"'
  reply_has "free on the contiguous layout" "${r[2]:-}" '"code":"not_implemented"'

  # p13 over the protocol on our paged engine; a fault of its prefix cache fails it.
  p13 "p13 on minigpt serve, paged" 0 "^ok +p13 " "$paged"
  p13 "p13 on minigpt serve, paged, --inject prefix-hash-short" 1 "^FAIL +p13 " \
    "$minigpt serve --kv-cache paged --block-size 4 --inject prefix-hash-short"
  # p11 over the protocol: no block tables to read, so a submit's reuse is bounded by the
  # prefixes its sequences held; blocks of 4, so its short programs hit.
  rm -f pid
  "$props" --rc-seed=1 "[p11]" --report-dir "$work/p11" --engine process \
    --engine-cmd "$minigpt serve --kv-cache paged --block-size 4" >p11.txt 2>&1
  status=$?
  mix=$(grep -m1 -o 'serving (no placement twin, no pool statistics): [0-9]* submits, [0-9]* hits' p11.txt)
  if [[ $status != 0 ]] || [[ -z $mix ]] || [[ $mix == *" 0 hits" ]]; then
    bad "p11 on minigpt serve, paged, blocks of 4: status $status, '$mix': $(grep -m1 -E '^command [0-9]' p11.txt)"
  else
    echo "ok   p11 on minigpt serve, paged, blocks of 4: $mix"
  fi

  # Broken stand-ins: props --conform's wrong line, and for the protocol breakers a p13 run's end.
  conform "hello without prefix_block" 5 "^  wrong    prefix_cache       prefix_block is missing" "$(standin noblock "$paged")"
  conform "reuse of the whole prompt" 5 "^  wrong    prefix_cache       a cold submit of 18 tokens: reused 18 tokens of a prompt of 18: at most 17" \
    "$(standin overreuse "$paged")"
  conform "reuse off the block grid" 5 "^  wrong    prefix_cache       a submit of 19 tokens sharing the first 16: reused 15 tokens, not a multiple of prefix_block 16" \
    "$(standin offgrid "$paged")"
  conform "no hit" 5 "^  wrong    prefix_cache       a submit of 19 tokens sharing a full block of 16 with an earlier prompt reused nothing" \
    "$(standin nohit "$paged")"
  conform "free that does not free" 5 "^  wrong    prefix_cache       a decode on a freed sequence: decode was answered without an error \(expected bad_request\)" \
    "$(standin unfreed "$paged")"
  p13 "hello without prefix_block" 4 "^props: engine '.*': request 0 hello: claims prefix_cache with prefix_block missing" \
    "$(standin noblock "$paged")"
  p13 "reuse of the whole prompt" 4 "^props: engine '.*': request [0-9]+ submit: reused ([0-9]+) tokens of a prompt of \1: at most" \
    "$(standin overreuse "$paged")"
  p13 "reuse off the block grid" 4 "^props: engine '.*': request [0-9]+ submit: reused [0-9]+ tokens, not a multiple of prefix_block 16$" \
    "$(standin offgrid "$paged")"
  p13 "no hit" 1 "^FAIL +p13 " "$(standin nohit "$paged")"
  grep -q "the prefix cache did not hit" out.txt || bad "no hit: p13's failure does not say the cache did not hit"

  # The Python client's own submit and free (clients/python/props_engine.py).
  cat >client.py <<EOF
import sys
sys.path.insert(0, "$client")
import props_engine
class Echo(props_engine.Engine):
    name, version, vocab_size = "echo","1", 8
    def logits(self, tokens, start):
        return [[float(t)] * self.vocab_size for t in tokens[start:]]
class Cached(Echo):
    prefix_block = 4
Echo().run() if sys.argv[1] == "plain" else Cached().run()
EOF
  mapfile -t r < <(ask "/usr/bin/python3 client.py plain" '{"id":1,"op":"submit","seq":0,"tokens":[1]}')
  reply_has "client without prefix_block: submit" "${r[1]:-}" '"code":"not_implemented"'
  reply_has "client without prefix_block: hello" "${r[0]:-}" '"capabilities":\{\}'
  mapfile -t r < <(ask "/usr/bin/python3 client.py cached" '{"id":1,"op":"submit","seq":0,"tokens":[1,2,3]}' \
    '{"id":2,"op":"free","seq":0}' '{"id":3,"op":"decode","seqs":[0],"tokens":[1]}' '{"id":4,"op":"submit","seq":0,"tokens":[]}' \
    '{"id":5,"op":"submit","seq":0,"tokens":[9]}' '{"id":6,"op":"submit","seq":0,"tokens":[4]}' '{"id":7,"op":"decode","seqs":[0],"tokens":[1]}')
  reply_has "client with prefix_block: hello" "${r[0]:-}" '"capabilities":\{"prefix_cache":true\},"prefix_block":4'
  reply_has "client with prefix_block: submit" "${r[1]:-}" '"reused":0,"cursor":3,"re":1\}$'
  reply_has "client with prefix_block: free" "${r[2]:-}" '^\{"re":2\}$'
  reply_has "client: decode on a freed sequence" "${r[3]:-}" '"code":"bad_request","message":"decode: seq 0 is freed'
  reply_has "client: submit of no tokens" "${r[4]:-}" '"code":"bad_request".*at least one token'
  reply_has "client: submit of token 9" "${r[5]:-}" '"code":"bad_request".*outside 0\.\.7'
  reply_has "client: a submit makes it live" "${r[7]:-}" '"logits"'
elif [[ $part == torch ]]; then
  if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "FAIL: /usr/bin/python3 cannot import torch; scripts/setup installs python3-torch"
    exit 1
  fi
  engine="$client/torch_minigpt.py --prefix-cache"
  # Its cached decode is not bit-identical to its recompute (experiments/24-pytorch-cache), so
  # conform is status 5 for the decode lines; the prefix_cache line is ok.
  conform "torch --prefix-cache" 5 "^  ok       prefix_cache       blocks of 16: a cold submit of 18 tokens reuses 0; one of 19 sharing its first block reuses 16" \
    "$engine"
  p13 "torch --prefix-cache, bits" 0 "^ok +p13 .* 50 cases" "$engine"
  # In blocks of 4 the reused rows were computed in a chunk of another length than full
  # recompute's, and torch's rows depend on it in the last bits (on this machine: up to 320 ULP
  # in B's logits, tokens equal): p13 fails at bits as drift, or passes; it holds at tokens.
  p13 "torch --prefix-block 4, tokens" 0 "^ok +p13 .* 50 cases" "$engine --prefix-block 4" --level tokens
  rm -rf "$work/reports"
  "$props" --rc-seed=1 "[p13]" --report-dir "$work/reports" --engine process --engine-cmd "$engine --prefix-block 4" >out.txt 2>&1
  status=$?
  if [[ $status == 0 ]]; then
    echo "ok   torch --prefix-block 4, bits: p13 holds"
  elif [[ $status == 1 ]] && grep -q "hit vs miss tokens equal; logits differ by at most [0-9]* ULP" "$work/reports/p13.report.txt"; then
    echo "ok   torch --prefix-block 4, bits: p13 fails as drift: $(grep -o 'hit vs miss tokens equal; logits differ by at most [0-9]* ULP' "$work/reports/p13.report.txt")"
  else
    bad "torch --prefix-block 4, bits: status $status, neither a pass nor drift with equal tokens"; tail -5 out.txt
  fi
  p13 "torch --prefix-cache --fault prefix-positions" 1 "^FAIL +p13 " "$engine --fault prefix-positions"
  grep -q '^Shrunk in\|^Falsifiable' out.txt || bad "prefix-positions: p13's failure is not shrunk"
  # ... and at the tokens level too, where the engine's own drift passes: B's next token parts.
  p13 "torch --prefix-block 4 --fault prefix-positions, tokens" 1 "^FAIL +p13 " \
    "$engine --prefix-block 4 --fault prefix-positions" --level tokens
  grep -q "tokens differ first at step 0" "$work/reports/p13.report.txt" ||
    bad "prefix-positions at tokens: the report does not say B's next token differs"
  p13 "torch --prefix-cache --fault prefix-block-key (a blind spot of p13)" 0 "^ok +p13 " "$engine --fault prefix-block-key"
else
  echo "usage: prefix_test.sh PROPS MINIGPT WORK serve|torch"
  exit 2
fi
exit $failed
