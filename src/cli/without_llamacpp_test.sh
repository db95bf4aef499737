#!/usr/bin/env bash
# minigpt and props without llama.cpp's libraries (CTest cli_without_llamacpp): every command
# that does not ask for llama.cpp runs, and the two that do (props --engine llamacpp, minigpt
# export-gguf) refuse with one line naming the missing library and the status of any refused
# input (2 in props and minigpt), instead of the dynamic loader's exit 127 before main. Three checks:
#  1. neither program needs a llama.cpp library (readelf: no such NEEDED entry);
#  2. copies of both, with a copy of the module (libminiinfer_llamacpp.so) beside them, whose
#     $ORIGIN-relative RUNPATH then leads nowhere;
#  3. where user namespaces allow it, the built programs themselves, with LIBDIR (llama.cpp's
#     libraries) hidden under an empty folder by a private bind mount.
# usage: without_llamacpp_test.sh MINIGPT PROPS MODULE LIBDIR WORKDIR
set -uo pipefail
self=$(readlink -f "$0")
failures=0

# check NAME STATUS REGEX -- COMMAND...: the exit status, and for a refusal one line on stderr
# matching REGEX.
check() {
  local name=$1 want=$2 regex=$3
  shift 4
  timeout 300 "$@" >stdout.txt 2>stderr.txt
  local got=$? why=""
  if [ "$got" -ne "$want" ]; then why="exit status $got, expected $want"
  elif [ -n "$regex" ] && [ "$(wc -l <stderr.txt)" -ne 1 ]; then why="$(wc -l <stderr.txt) lines on stderr, expected 1"
  elif [ -n "$regex" ] && ! grep -Eq -- "$regex" stderr.txt; then why="stderr does not match /$regex/"
  fi
  if [ -n "$why" ]; then
    failures=$((failures + 1))
    printf 'FAIL  %-40s %s\n      command: %s\n      stderr:  %s\n' "$name" "$why" "$*" "$(head -c 600 stderr.txt)"
  else
    printf 'ok    %-40s exit %s  %s\n' "$name" "$got" "$( ([ -n "$regex" ] && cat stderr.txt) || tail -n 1 stdout.txt)"
  fi
}

# The cases, on MINIGPT and PROPS as given, in the current folder.
cases() {
  local minigpt=$1 props=$2 where=$3
  local missing="cannot load llama.cpp: lib(llama|ggml)[^ ]*\.so[^ ]*: cannot open shared object file"
  check "$where: props --help" 0 "" -- "$props" --help
  check "$where: props --rc-seed=1 [p0]" 0 "" -- "$props" --rc-seed=1 "[p0]"
  check "$where: minigpt tokenize" 0 "" -- "$minigpt" tokenize --prompt "I worked"
  : >some.gguf
  check "$where: props --engine llamacpp" 2 "^props: --engine llamacpp: $missing" -- \
    "$props" --engine llamacpp --gguf some.gguf
  check "$where: minigpt export-gguf" 2 "^minigpt export-gguf: $missing" -- "$minigpt" export-gguf --out out.gguf
  if [ -e out.gguf ]; then
    failures=$((failures + 1))
    echo "FAIL  $where: minigpt export-gguf left out.gguf behind"
  fi
}

if [ "$1" = --hidden ]; then  # 3., inside the private mount namespace
  libdir=$2 minigpt=$3 props=$4 work=$5
  mkdir -p "$work/empty" && cd "$work" || exit 1
  mount --bind "$work/empty" "$libdir" || { echo "FAIL  cannot hide $libdir"; exit 1; }
  cases "$minigpt" "$props" "libraries hidden"
  exit $((failures > 0))
fi

minigpt=$(readlink -f "$1") props=$(readlink -f "$2") module=$(readlink -f "$3") libdir=$(readlink -f "$4")
work=$(realpath -m "$5")
rm -rf "$work" && mkdir -p "$work/copy/bin" "$work/hidden" || exit 1

# 1.
for program in "$minigpt" "$props"; do
  needed=$(readelf -d "$program" | grep -Eo '\[lib(llama|ggml)[^]]*\]' | tr '\n' ' ')
  if [ -n "$needed" ]; then
    failures=$((failures + 1))
    echo "FAIL  $(basename "$program") needs $needed"
  else
    echo "ok    $(basename "$program") needs no llama.cpp library"
  fi
done

# 2.
cp "$minigpt" "$props" "$module" "$work/copy/bin/" && cd "$work/copy" || exit 1
cases "$work/copy/bin/$(basename "$minigpt")" "$work/copy/bin/$(basename "$props")" "copies"

# 3.
if unshare -rm true 2>/dev/null; then
  unshare -rm "$self" --hidden "$libdir" "$minigpt" "$props" "$work/hidden" || failures=$((failures + 1))
else
  echo "skip  libraries hidden: no user namespaces here (unshare -rm)"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures failed"
  exit 1
fi
echo "all passed"
