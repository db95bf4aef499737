#!/usr/bin/env bash
# Regenerates experiments/23-llamacpp-cache (called by scripts/regen-experiments): exports the
# model to GGUF in the build folder, runs llamacpp_lab (results.json, manifest.json), then props
# per configuration at the bits level on p6, whose shrunk counterexample, report and heatmap go
# to counterexamples/CONFIG/ (an empty folder when p6 holds there).
#
# usage: experiments/23-llamacpp-cache/regen.sh BUILD_DIR MODEL
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] || { echo "usage: experiments/23-llamacpp-cache/regen.sh BUILD_DIR MODEL" >&2; exit 2; }
build=$1 model=$2
dir=experiments/23-llamacpp-cache
work=$build/$dir
mkdir -p "$work"
gguf=$work/minigpt.gguf
"$build/minigpt" export-gguf --out "$gguf" --model "$model" >/dev/null
"$build/$dir/llamacpp_lab" --gguf "$gguf" --model "$model"
for config in defaults f32-kv threads-2 flash-on; do
  case $config in
    defaults) flags=() ;;
    f32-kv) flags=(--llama-kv f32) ;;
    threads-2) flags=(--llama-threads 2) ;;
    flash-on) flags=(--llama-flash on) ;;
  esac
  out=$dir/counterexamples/$config
  rm -rf "$out"
  mkdir -p "$out"
  status=0
  "$build/props" --rc-seed=1 --model "$model" --engine llamacpp --gguf "$gguf" "${flags[@]}" --report-dir "$out" \
    '[p6]' >"$work/$config.log" 2>&1 || status=$?
  # 0: p6 holds (no counterexample), 1: it failed and the files are written; else a refusal.
  if [ "$status" -gt 1 ]; then
    cat "$work/$config.log" >&2
    exit 1
  fi
  echo "regen: 23-llamacpp-cache $config: p6 $([ "$status" -eq 0 ] && echo holds || echo "fails: $out")"
done
