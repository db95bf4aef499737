#!/usr/bin/env bash
# CTest gpt2_round_trip (label scale): makes the GPT-2-small-shaped model and its GGUF in DIR
# (scripts/make-gpt2-small: their sha256 must be the pinned ones, so init and the export are
# deterministic), then scale_lab loads both, in our engine and in llama.cpp, and checks llama.cpp's
# logits against ours within the derived tolerance. The ~1 GB of files stay in DIR for the next run.
# usage: round_trip_test.sh MINIGPT SCALE_LAB DIR
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: round_trip_test.sh MINIGPT SCALE_LAB DIR" >&2; exit 2; }
minigpt=$1 lab=$2 dir=$3
"$(dirname "$0")/../../scripts/make-gpt2-small" "$dir" "$minigpt"
"$lab" --model "$dir/gpt2-small.safetensors" --gguf "$dir/gpt2-small.gguf"
