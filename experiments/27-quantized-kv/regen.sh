#!/usr/bin/env bash
# Regenerates experiments/27-quantized-kv (called by scripts/regen-experiments): runs quant_lab
# on the shipped model (results.json, report.md); exits non-zero if any mode's cached path
# differs from its full recompute by one byte (the files are written first, to show it).
#
# usage: experiments/27-quantized-kv/regen.sh BUILD_DIR [MODEL]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] && [ $# -le 2 ] || {
  echo "usage: experiments/27-quantized-kv/regen.sh BUILD_DIR [MODEL]" >&2
  exit 2
}
build=$1
model=${2:-experiments/17-minigpt/minigpt.safetensors}
echo "regen: 27-quantized-kv: quant_lab (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$build/experiments/27-quantized-kv/quant_lab" --model "$model"
