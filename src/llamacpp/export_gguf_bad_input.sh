#!/usr/bin/env bash
# `minigpt export-gguf` on bad input (CTest export_gguf_bad_input, label llamacpp): each case
# must exit 2 (refused, src/base/exit_status.h), print exactly one line on stderr naming the
# input, and leave no file behind.
# usage: export_gguf_bad_input.sh MINIGPT WORKDIR
set -uo pipefail
minigpt=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
failures=0

# check NAME REGEX OUT -- COMMAND...
check() {
  local name=$1 regex=$2 out=$3
  shift 4
  timeout 120 "$@" >stdout.txt 2>stderr.txt
  local got=$? why=""
  if [ "$got" -ge 124 ]; then why="crashed or hung (status $got)"
  elif [ "$got" -ne 2 ]; then why="exit status $got, expected 2"
  elif [ "$(wc -l <stderr.txt)" -ne 1 ]; then why="$(wc -l <stderr.txt) lines on stderr, expected 1"
  elif ! grep -Eq -- "$regex" stderr.txt; then why="stderr does not match /$regex/"
  elif compgen -G "$out*" >/dev/null || compgen -G "$(dirname "$out")/.$(basename "$out")*" >/dev/null; then
    why="left a file behind"
  fi
  if [ -n "$why" ]; then
    failures=$((failures + 1))
    printf 'FAIL  %-28s %s\n      stderr: %s\n' "$name" "$why" "$(head -c 600 stderr.txt)"
  else
    printf 'ok    %-28s %s\n' "$name" "$(cat stderr.txt)"
  fi
}

"$minigpt" init --seed 1 --out tiny.safetensors \
  --config '{"d_model": 8, "n_head": 2, "n_layer": 1, "max_seq_len": 32}' >/dev/null || exit 1
head -c 100 tiny.safetensors >truncated.safetensors
mkdir -p readonly && chmod 555 readonly

check "model: missing" "no-such\.safetensors" out1.gguf -- "$minigpt" export-gguf --model no-such.safetensors --out out1.gguf
check "model: truncated" "truncated\.safetensors" out2.gguf -- "$minigpt" export-gguf --model truncated.safetensors --out out2.gguf
check "out: missing folder" "no-dir/out3\.gguf" no-dir/out3.gguf -- "$minigpt" export-gguf --model tiny.safetensors --out no-dir/out3.gguf
if [ "$(id -u)" -ne 0 ]; then  # root writes into a 555 folder anyway
  check "out: read-only folder" "readonly/out4\.gguf" readonly/out4.gguf -- "$minigpt" export-gguf --model tiny.safetensors --out readonly/out4.gguf
fi
check "flag: --out missing" "--out" out5.gguf -- "$minigpt" export-gguf --model tiny.safetensors
# And the good case writes a file.
"$minigpt" export-gguf --model tiny.safetensors --out good.gguf >/dev/null && [ -s good.gguf ] ||
  { echo "FAIL  a valid export wrote no file"; failures=$((failures + 1)); }
chmod 755 readonly
echo "export-gguf bad input: $failures failures"
[ "$failures" -eq 0 ]
