#!/usr/bin/env bash
# Regenerates experiments/23-llamacpp-cache (called by scripts/regen-experiments): exports the
# model to GGUF in the build folder, runs llamacpp_lab (results.json, manifest.json with the
# machine the figures hold for: src/base/machine.h), then props
# per configuration: at the bits level on p6 and p3, whose shrunk counterexamples, reports and
# heatmaps go to counterexamples/CONFIG/ (none when they hold there); then every property at the
# tokens level (what the lab's runs hold), whose failures go to counterexamples/CONFIG/tokens/.
#
# usage: experiments/23-llamacpp-cache/regen.sh BUILD_DIR MODEL [--props-only]
#   --props-only  keep results.json and manifest.json; rerun the props part only
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] || [ "${3:-}" = --props-only ] || {
  echo "usage: experiments/23-llamacpp-cache/regen.sh BUILD_DIR MODEL [--props-only]" >&2
  exit 2
}
build=$1 model=$2 props_only=${3:-}
dir=experiments/23-llamacpp-cache
work=$build/$dir
mkdir -p "$work"
gguf=$work/minigpt.gguf
"$build/minigpt" export-gguf --out "$gguf" --model "$model" >/dev/null
[ -n "$props_only" ] || "$build/$dir/llamacpp_lab" --gguf "$gguf" --model "$model"
for config in defaults f32-kv threads-2 flash-on ubatch-1; do
  case $config in
    defaults) flags=() ;;
    f32-kv) flags=(--llama-kv f32) ;;
    threads-2) flags=(--llama-threads 2) ;;
    flash-on) flags=(--llama-flash on) ;;
    ubatch-1) flags=(--llama-ubatch 1) ;;
  esac
  out=$dir/counterexamples/$config
  rm -rf "$out"
  mkdir -p "$out"
  status=0
  "$build/props" --rc-seed=1 --no-expected --model "$model" --engine llamacpp --gguf "$gguf" "${flags[@]}" --report-dir "$out" \
    '[p6],[p3]' >"$work/$config.log" 2>&1 || status=$?
  # 0: p6 holds (no counterexample), 1: it failed and the files are written; else a refusal.
  if [ "$status" -gt 1 ]; then
    cat "$work/$config.log" >&2
    exit 1
  fi
  echo "regen: 23-llamacpp-cache $config: at bits: $(grep -E '^(ok|FAIL) ' "$work/$config.log" |
    awk '{printf "%s %s, ", $2, $1}')"
  status=0
  "$build/props" --rc-seed=1 --no-expected --model "$model" --engine llamacpp --gguf "$gguf" "${flags[@]}" --level tokens \
    --report-dir "$out/tokens" --summary "$work/$config-tokens.json" >"$work/$config-tokens.log" 2>&1 || status=$?
  if [ "$status" -gt 1 ]; then
    cat "$work/$config-tokens.log" >&2
    exit 1
  fi
  rm -f "$out/.props-report.lock" "$out/tokens/.props-report.lock"  # props' lock, not a figure
  echo "regen: 23-llamacpp-cache $config: at tokens: $(grep -E '^(ok|FAIL|SKIP) ' "$work/$config-tokens.log" |
    awk '{printf "%s %s, ", $2, $1}')"
done
