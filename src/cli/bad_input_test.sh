#!/usr/bin/env bash
# The bad-input matrix, end to end through the CLIs (CTest cli_bad_input). Every case must end
# with: the documented exit status (src/base/exit_status.h: 2 for a refused input, flag or
# command, in minigpt and props alike), exactly one line on stderr naming the input and the
# problem, no crash (no signal), no hang (a timeout), and no output file left behind.
# usage: bad_input_test.sh MINIGPT PROPS WORKDIR
set -uo pipefail
minigpt=$1 props=$2 work=$3
# (WORKDIR must lie inside the current folder, where CTest runs this: only that is ever removed.)
"$(dirname "$0")/../../scripts/remove-inside" . "$work" && mkdir -p "$work" && cd "$work" || exit 1
failures=0 cases=0

# check NAME STATUS REGEX [--out FILE] -- COMMAND...
check() {
  local name=$1 want=$2 regex=$3 out=""
  shift 3
  if [ "$1" = --out ]; then out=$2; shift 2; fi
  shift  # --
  cases=$((cases + 1))
  timeout 120 "$@" >stdout.txt 2>stderr.txt
  local got=$? lines
  lines=$(wc -l <stderr.txt)
  local why=""
  if [ "$got" -eq 124 ]; then why="hung (killed after 120 s)"
  elif [ "$got" -ge 128 ]; then why="crashed (signal $((got - 128)))"
  elif [ "$got" -ne "$want" ]; then why="exit status $got, expected $want"
  elif [ "$lines" -ne 1 ]; then why="$lines lines on stderr, expected 1"
  elif ! grep -Eq -- "$regex" stderr.txt; then why="stderr does not match /$regex/"
  elif [ -n "$out" ] && compgen -G "$out*" >/dev/null; then why="left an output file behind: $(ls -d "$out"*)"
  fi
  if [ -n "$why" ]; then
    failures=$((failures + 1))
    printf 'FAIL  %-34s %s\n      command: %s\n      stderr:  %s\n' "$name" "$why" "$*" "$(head -c 600 stderr.txt)"
  else
    printf 'ok    %-34s %s\n' "$name" "$(cat stderr.txt)"
  fi
}

# check_replay_passes NAME -- COMMAND...: a replay that must end "passes now", exit status 0,
# with nothing on stderr.
check_replay_passes() {
  local name=$1
  shift 2
  cases=$((cases + 1))
  timeout 120 "$@" >stdout.txt 2>stderr.txt
  local got=$?
  if [ "$got" -ne 0 ] || [ -s stderr.txt ] || ! grep -q "passes now" stdout.txt; then
    failures=$((failures + 1))
    printf 'FAIL  %-34s exit status %s, expected 0 and "passes now"\n      command: %s\n      stderr:  %s\n' \
      "$name" "$got" "$*" "$(head -c 600 stderr.txt)"
  else
    printf 'ok    %-34s %s\n' "$name" "$(tail -1 stdout.txt)"
  fi
}

# A disk that fills up: files capped at 1 KiB, so a write past it fails (EFBIG) as on a full
# disk (SIGXFSZ ignored); stdout dropped, and RapidCheck's "Using configuration" line left out.
cat >limited.sh <<'EOF'
#!/usr/bin/env bash
trap '' XFSZ
ulimit -f 1
"$@" >/dev/null 2>limited.err
status=$?
grep -v '^Using configuration' limited.err >&2
exit $status
EOF
chmod +x limited.sh

# ---- inputs: a small valid model, then damaged copies of it --------------------------------------
"$minigpt" init --seed 1 --out tiny.safetensors \
  --config '{"d_model": 8, "n_head": 2, "n_layer": 1, "max_seq_len": 32}' >/dev/null || exit 1
size=$(stat -c %s tiny.safetensors)
head -c $((size / 2)) tiny.safetensors >truncated.safetensors
: >empty.safetensors
cp tiny.safetensors corrupted.safetensors
printf '\x01\xff{{' | dd of=corrupted.safetensors bs=1 seek=12 conv=notrunc status=none
# A header whose first data_offsets end far past the data (same length, so the layout holds).
perl -0pe 's/("data_offsets":\[0,)(\d+)/$1 . ("9" x length($2))/e' tiny.safetensors >lying.safetensors
cmp -s tiny.safetensors lying.safetensors && { echo "could not make lying.safetensors"; exit 1; }
# The last float of the data section becomes a NaN.
cp tiny.safetensors nan.safetensors
printf '\x00\x00\xc0\x7f' | dd of=nan.safetensors bs=1 seek=$((size - 4)) conv=notrunc status=none
# props needs a model that can hold its longest case: small has tiny's size and 512 positions.
"$minigpt" init --seed 1 --out small.safetensors --config '{"d_model": 8, "n_head": 2, "n_layer": 1}' >/dev/null || exit 1
"$minigpt" init --seed 1 --out one-position.safetensors \
  --config '{"d_model": 8, "n_head": 2, "n_layer": 1, "max_seq_len": 1}' >/dev/null || exit 1
# A vocabulary without 'trabajo' (the grammar uses it), and weights whose logits overflow: the
# last 16 floats, ln_f's weight and bias, become FLT_MAX (finite, so the file itself is valid).
perl -0pe 's/\\"trabajo\\"/\\"trabajX\\"/' small.safetensors >foreign.safetensors
cmp -s small.safetensors foreign.safetensors && { echo "could not make foreign.safetensors"; exit 1; }
cp small.safetensors overflow.safetensors
small_size=$(stat -c %s small.safetensors)
for i in $(seq 0 15); do
  printf '\xff\xff\x7f\x7f' | dd of=overflow.safetensors bs=1 seek=$((small_size - 4 - 4 * i)) conv=notrunc status=none
done
long_prompt=$(for i in $(seq 40); do printf 'yo trabajo . '; done)
echo "not a file of the grammar" >regular_file

gen=("$minigpt" generate --max-new-tokens 2 --prompt "yesterday I")
for f in truncated empty corrupted lying; do
  check "weights: $f" 2 "$f\.safetensors" -- "${gen[@]}" --model $f.safetensors
done
check "weights: NaN" 2 "nan.safetensors.*tensor ln_f\.bias: value 7 is nan" -- "${gen[@]}" --model nan.safetensors
check "weights: missing file" 2 "no-such\.safetensors" -- "${gen[@]}" --model no-such.safetensors
check "prompt: unknown word" 2 "unknown word 'wrked'" -- "$minigpt" generate --model tiny.safetensors --prompt "I wrked"
check "prompt: escape bytes are shown escaped" 2 "unknown word '\\\\x1b\\[31mwrked'" -- "$minigpt" generate --model tiny.safetensors --prompt $'I \x1b[31mwrked'
check "prompt: bad UTF-8" 2 "invalid UTF-8 at byte 2" -- "$minigpt" generate --model tiny.safetensors --prompt $'I \xff\xfe'
check "prompt: over-long" 2 "prompt 0 has 120 tokens.*more than 32" -- "$minigpt" generate --model tiny.safetensors --prompt "$long_prompt"
check "tokenize: bad UTF-8" 2 "invalid UTF-8" -- "$minigpt" tokenize --prompt $'\xc3'
check "flag: unknown" 2 "unknown flag --bogus" -- "$minigpt" generate --prompt "I" --bogus
check "flag: not a number" 2 "flag --max-new-tokens: 'many' is not a valid number" -- "$minigpt" generate --prompt "I" --max-new-tokens many
check "flag: temperature below floor" 2 "temperature 1e-39 is below the floor" -- "$minigpt" generate --model tiny.safetensors --prompt "I" --temperature 1e-39
check "flag: top-p out of range" 2 "top-p must lie in \(0, 1\]" -- "$minigpt" generate --prompt "I" --top-p 2
check "flag: unknown backend" 2 "unknown backend 'gpu'" -- "$minigpt" generate --prompt "I" --backend gpu
check "flag: unknown fault" 2 "unknown fault 'nope'" -- "$minigpt" generate --prompt "I" --inject nope
check "flag: unknown kv cache layout" 2 "flag --kv-cache: unknown kv cache layout 'blocks' \(known: contiguous, paged\)" -- "$minigpt" generate --prompt "I" --kv-cache blocks
check "flag: block size not a power of two" 2 "flag --block-size: 3 is not a power of two" -- "$minigpt" generate --prompt "I" --kv-cache paged --block-size 3
check "flag: block size without paged" 2 "flag --block-size: only with --kv-cache paged" -- "$minigpt" generate --prompt "I" --block-size 4
check "flag: negative pool" 2 "flag --pool-blocks: must be >= 0, got -1" -- "$minigpt" generate --prompt "I" --kv-cache paged --pool-blocks -1
check "flag: block size over capacity" 2 "paged cache: block size 64 does not divide the capacity 32" -- "$minigpt" generate --model tiny.safetensors --prompt "I" --kv-cache paged --block-size 64
check "flag: pool below one sequence" 2 "paged cache: a pool of 1 blocks of 16 slots cannot hold one full sequence of 32 slots \(it needs 2\)" -- "$minigpt" generate --model tiny.safetensors --prompt "I" --kv-cache paged --pool-blocks 1
check "flag: paged fault, contiguous cache" 2 "fault 'cow-missing' acts on the paged cache: use the paged layout" -- "$minigpt" generate --model tiny.safetensors --prompt "I" --inject cow-missing
check "serve: bad block size" 2 "flag --block-size: 5 is not a power of two" -- "$minigpt" serve --kv-cache paged --block-size 5
# The quantized cache (issue 31, docs/quantized-cache.md): format, residual and layout.
check "flag: unknown kv quant" 2 "flag --kv-quant: unknown kv cache format 'fp8' \(known: f32, bf16, int8\)" -- "$minigpt" generate --prompt "I" --kv-quant fp8
check "flag: residual without quant" 2 "flag --kv-residual: only with --kv-quant bf16 or int8" -- "$minigpt" generate --prompt "I" --kv-residual 4
check "flag: negative residual" 2 "flag --kv-residual: -4 is negative" -- "$minigpt" generate --prompt "I" --kv-quant int8 --kv-residual -4
check "flag: residual not a power of two" 2 "flag --kv-residual: 6 is not a power of two" -- "$minigpt" logits --prompt "I" --kv-quant int8 --kv-residual 6
check "flag: residual over capacity" 2 "engine: kv residual 64 exceeds the cache capacity 32" -- "$minigpt" generate --model tiny.safetensors --prompt "I" --kv-quant int8 --kv-residual 64
check "flag: quant on the paged cache" 2 "flag --kv-quant: int8 needs the contiguous cache, not --kv-cache paged" -- "$minigpt" generate --prompt "I" --kv-cache paged --kv-quant int8
check "eval: unknown kv quant" 2 "flag --kv-quant: unknown kv cache format 'q4'" -- "$minigpt" eval --kv-quant q4
# The thread count (issue 30): the flag and the environment variable, refused before any model is read.
check "flag: zero threads" 2 "flag --threads: 0 is not a thread count \(1 to 1024\)" -- "$minigpt" generate --prompt "I" --threads 0
check "flag: threads not a number" 2 "flag --threads: 'two' is not a valid number" -- "$minigpt" generate --prompt "I" --threads two
check "serve: negative threads" 2 "flag --threads: -1 is not a thread count \(1 to 1024\)" -- "$minigpt" serve --threads -1
check "eval: too many threads" 2 "flag --threads: 5000 is not a thread count \(1 to 1024\)" -- "$minigpt" eval --threads 5000
# The sliding window (docs/sliding-window.md): a window not above its sinks, a negative value,
# sinks without a window, a window past the model's positions, the paged layout.
check "flag: window not above its sinks" 2 "flag --window: 4 must be larger than the sink count 4 \(--sinks\)" -- "$minigpt" generate --prompt "I" --window 4 --sinks 4
check "flag: negative window" 2 "flag --window: -1 is negative" -- "$minigpt" generate --prompt "I" --window -1
check "flag: negative sinks" 2 "flag --sinks: -2 is negative" -- "$minigpt" logits --prompt "I" --window 4 --sinks -2
check "flag: sinks without a window" 2 "flag --sinks: 2 sinks need a window" -- "$minigpt" eval --sinks 2
check "flag: window past max_seq_len" 2 "engine: window 2000 exceeds the model's max_seq_len 512" -- "$minigpt" generate --prompt "I" --window 2000
check "flag: window on the paged cache" 2 "engine: a sliding window needs the contiguous kv cache layout" -- "$minigpt" generate --prompt "I" --window 8 --kv-cache paged
check "props: window not above its sinks" 2 "--window 4: must be larger than the sink count 4 \(--sinks\)" -- "$props" --window 4 --sinks 4 "[p0]"
check "props: negative window" 2 "--window: '-1' is not a valid number" -- "$props" --window -1 "[p0]"
check "props: sinks without a window" 2 "--sinks 2: sinks need a window" -- "$props" --sinks 2 "[p0]"
check "props: window on the paged cache" 2 "--window 8: the sliding window needs the contiguous kv cache" -- "$props" --window 8 --kv-cache paged "[p0]"
check "env: bad MINIINFER_THREADS" 2 "MINIINFER_THREADS='abc': not a thread count \(1 to 1024\)" -- env MINIINFER_THREADS=abc "$minigpt" generate --prompt "I"
check "env: zero MINIINFER_THREADS" 2 "MINIINFER_THREADS='0': not a thread count \(1 to 1024\)" -- env MINIINFER_THREADS=0 "$minigpt" serve
# Speculative decoding (issue 31): the draft length and the draft model, refused before any token.
"$minigpt" init --seed 2 --out wide-vocab.safetensors \
  --config '{"d_model": 8, "n_head": 2, "n_layer": 1, "max_seq_len": 32, "vocab_size": 2000}' >/dev/null || exit 1
spec=("$minigpt" generate --model tiny.safetensors --prompt "yesterday I")
check "speculative: draft length 0" 2 "flag --draft-len: must be >= 1, got 0" -- "${spec[@]}" --draft ngram --draft-len 0
check "speculative: draft past the context" 2 "flag --draft-len: 40 drafts do not fit: the prompt's 2 tokens leave room for 30 of the model's 32 positions" -- "${spec[@]}" --draft ngram --draft-len 40
check "speculative: draft vocabulary size" 2 "the draft model's vocabulary \(2000 tokens\) differs from the target's \([0-9]+ tokens\)" -- "${spec[@]}" --draft model --draft-model wide-vocab.safetensors
check "speculative: draft vocabulary words" 2 "the draft model's vocabulary differs from the target's \(both [0-9]+ tokens, other words\)" -- "$minigpt" generate --model small.safetensors --prompt "yesterday I" --draft model --draft-model foreign.safetensors
check "speculative: unknown drafter" 2 "flag --draft: unknown drafter 'oracle' \(known: none, ngram, model\)" -- "${spec[@]}" --draft oracle
check "speculative: draft model missing" 2 "flag --draft model: needs --draft-model FILE" -- "${spec[@]}" --draft model
check "draft: layers out of range" 2 "flag --layers: 3 outside 1..1 \(the target's layers\)" --out draft.safetensors -- "$minigpt" draft --model tiny.safetensors --layers 3 --out draft.safetensors
check "command: unknown" 2 "unknown command 'frobnicate'" -- "$minigpt" frobnicate
check "init: output folder missing" 2 "no-dir/m\.safetensors" --out no-dir/m.safetensors -- "$minigpt" init --seed 1 --out no-dir/m.safetensors
check "init: bad --config" 2 "--config: " --out bad-config.safetensors -- "$minigpt" init --seed 1 --out bad-config.safetensors --config '{"max_seq_len": 1e12}'
check "init: unknown --preset" 2 "--preset: 'gpt3' is not a preset \(minigpt, gpt2-small\)" --out preset.safetensors -- "$minigpt" init --seed 1 --out preset.safetensors --preset gpt3
check "init: vocab_size below the grammar's" 2 "--config: vocab_size 10 is smaller than the grammar's vocabulary of [0-9]+ words" --out small-vocab.safetensors -- "$minigpt" init --seed 1 --out small-vocab.safetensors --config '{"vocab_size": 10}'
check "export-gguf: empty --out" 2 "flag --out: empty file name" -- "$minigpt" export-gguf --out ""

# ---- props -------------------------------------------------------------------------------------
check "props: weights truncated" 2 "truncated\.safetensors" -- "$props" --model truncated.safetensors
check "props: weights NaN" 2 "value 7 is nan" -- "$props" --model nan.safetensors
# A model the properties cannot run on is refused before any case, naming what is wrong.
check "props: a foreign vocabulary" 2 "foreign\.safetensors: its vocabulary lacks 1 word the grammar's prompts use \('trabajo'\)" -- "$props" --model foreign.safetensors "[p0]"
check "props: max_seq_len 1" 2 "one-position\.safetensors: max_seq_len 1 is shorter than the longest case" -- "$props" --model one-position.safetensors "[p0]"
check "props: logits that overflow" 2 "overflow\.safetensors: its logits are not finite" -- "$props" --model overflow.safetensors "[p0]"
check "props: unknown fault" 2 "unknown fault 'nope'" -- "$props" --inject nope
check "props: unknown backend" 2 "unknown backend 'gpu'" -- "$props" --backend gpu
check "props: unknown kv layout" 2 "unknown .*'blocks'" -- "$props" --kv-cache blocks "[p0]"
check "props: block size not a power of two" 2 "--block-size 3: not a power of two" -- "$props" --kv-cache paged --block-size 3 "[p0]"
check "props: block size not a number" 2 "--block-size: 'x' is not a valid number" -- "$props" --kv-cache paged --block-size x "[p0]"
check "props: block size without paged" 2 "--block-size 4: only the paged cache has blocks" -- "$props" --block-size 4 "[p0]"
check "props: pool below one sequence" 2 "cannot hold one full sequence" -- "$props" --kv-cache paged --pool-blocks 1 "[p0]"
check "props: a paged fault on the contiguous cache" 2 "--kv-cache contiguous: fault evict-stale acts on the paged cache only" -- "$props" --kv-cache contiguous --inject evict-stale "[p0]"
check "props: unknown kv quant" 2 "--kv-quant: unknown kv cache format 'fp8'" -- "$props" --kv-quant fp8 "[p0]"
check "props: residual without quant" 2 "--kv-residual 4: only a quantized cache has a residual" -- "$props" --kv-residual 4 "[p0]"
check "props: residual not a power of two" 2 "--kv-residual 6: not a power of two" -- "$props" --kv-quant int8 --kv-residual 6 "[p0]"
check "props: residual over capacity" 2 "kv residual 1024 exceeds the cache capacity" -- "$props" --kv-quant int8 --kv-residual 1024 "[p0]"
check "props: quant on the paged cache" 2 "--kv-quant int8: the quantized cache is contiguous, not --kv-cache paged" -- "$props" --kv-cache paged --kv-quant int8 "[p0]"
check "props: a quantized fault on the f32 cache" 2 "--kv-quant f32: fault scale-group acts on the quantized cache only" -- "$props" --kv-quant f32 --inject scale-group "[p0]"
check "props: unknown --rc- flag" 2 "unknown flag --rc-sed" -- "$props" --rc-sed=1
check "props: seed not a number" 2 "--rc-seed: 'abc' is not a valid number" -- "$props" --rc-seed=abc
check "props: flag without value" 2 "flag --model needs a value" -- "$props" --model
check "props: unknown flag" 2 "unknown flag --bogus" -- "$props" --bogus
check "props: report dir unwritable" 2 "--report-dir regular_file/reports: " -- "$props" --report-dir regular_file/reports "[p0]"
check "props: summary unwritable" 2 "--summary regular_file/s.json: " --out regular_file/s.json -- "$props" --summary regular_file/s.json "[p0]"
check "props: shard past N" 2 "--shard '3/2': K must be between 1 and N" -- "$props" --shard 3/2 "[p0]"
check "props: shard not K/N" 2 "--shard 'x': expected K/N" -- "$props" --shard x "[p0]"
check "props: shard of zero" 2 "--shard '0/0': K must be between 1 and N" -- "$props" --shard 0/0 "[p0]"
check "props: shard not numbers" 2 "--shard 'a/b': expected K/N with whole numbers" -- "$props" --shard a/b "[p0]"
check "props: results unwritable" 2 "--results regular_file/r.jsonl: cannot open it" --out regular_file/r.jsonl -- "$props" --results regular_file/r.jsonl "[p0]"
check "props: results is a folder" 2 "--results \.: not a regular file" -- "$props" --results . "[p0]"
printf '{"props_results":1,"seed":99}\n' >other-run.jsonl
check "props: results of another run" 2 "--results other-run\.jsonl: written by another run" -- "$props" --rc-seed=1 --results other-run.jsonl "[p0]"
printf '{"props_results":1}\nnot json\n{"batch":0}\n' >damaged.jsonl
printf '{"batch_cases":10,"max_success":100,"props_results":1,"seed":1,"shaping_flags":[],"shard":"1/1"}\n{"property":"p0","batch":"x"}\n' >odd-line.jsonl
check "props: results line of the wrong shape" 2 "--results odd-line\.jsonl: line 2 is neither a plan nor a finished batch" -- "$props" --rc-seed=1 --results odd-line.jsonl "[p0]"
check "props: results damaged mid-file" 2 "--results damaged\.jsonl: line 2 is not a JSON object" -- "$props" --results damaged.jsonl "[p0]"
echo '{"property": "p6", "prompts": [' >malformed.case.json
check "replay: malformed" 2 "replay malformed\.case\.json: not valid JSON" -- "$props" --replay malformed.case.json
check "replay: missing file" 2 "missing\.case\.json" -- "$props" --replay missing.case.json
valid_case='{"property":"p6","prompts":[{"text":"I","ids":[5]}],"params":{"seed":1,"max_new_tokens":2,"temperature":0.0,"top_k":0,"top_p":1.0},"k":0,"chunk":[],"cuts":[],"order":[],"seq":0,"twice":false,"model":"m","model_sha256":"SHA","backend":"invariant","fault":"FAULT","arch":null,"arch_seed":0}'
echo "${valid_case/SHA/0000000000000000000000000000000000000000000000000000000000000000}" | sed 's/FAULT/none/' >other-model.case.json
check "replay: from another model" 2 "replay other-model\.case\.json: saved against model sha256 0000" -- "$props" --replay other-model.case.json
echo "${valid_case/SHA/}" | sed 's/FAULT/no-such-fault/' >unknown-fault.case.json
check "replay: unknown fault" 2 "unknown fault 'no-such-fault'" -- "$props" --model small.safetensors --replay unknown-fault.case.json
echo "${valid_case/SHA/}" | sed 's/FAULT/none/; s/"property":"p6"/"property":"p5"/; s/"ids":\[5\]/"ids":[5,6,7]/; s/"cuts":\[\]/"cuts":[2,9]/' >bad-cuts.case.json
check "replay: cuts outside the prompt" 2 "replay bad-cuts\.case\.json: case: cuts must rise strictly inside the prompt's 1\.\.2, got 9 at 1" -- "$props" --replay bad-cuts.case.json
echo '{"property": 6, "prompts": []}' >wrong-type.case.json
check "replay: a field of the wrong type" 2 "replay wrong-type\.case\.json: case: " -- "$props" --replay wrong-type.case.json
echo '{"property":"p99"}' >bad-field.case.json
check "replay: missing field" 2 "replay bad-field\.case\.json: case: " -- "$props" --replay bad-field.case.json
# Numbers are read as their own type: a token id past int wraps no more, a float count is no UB.
echo "${valid_case/SHA/}" | sed 's/FAULT/none/; s/"ids":\[5\]/"ids":[4294967298]/' >wide-id.case.json
check "replay: token id past int" 2 "replay wide-id\.case\.json: case: prompts\[0\]\.ids\[0\]: 4294967298 is not an integer" -- "$props" --replay wide-id.case.json
echo "${valid_case/SHA/}" | sed 's/FAULT/none/; s/"max_new_tokens":2/"max_new_tokens":7.7e33/' >float-count.case.json
check "replay: a count that is a float" 2 "replay float-count\.case\.json: case: params\.max_new_tokens: 7\.7e\+33 is not an integer" -- "$props" --replay float-count.case.json
echo '{"property":"p11","batch":2,"capacity":12,"program":[{"kind":"truncate","seqs":[0],"tokens":[],"n":7.7e33}]}' >float-n.case.json
check "replay: a p11 command's count that is a float" 2 "replay float-n\.case\.json: case: program\[0\]\.n: 7\.7e\+33 is not an integer" -- "$props" --replay float-n.case.json
echo "${valid_case/SHA/}" | sed 's/FAULT/none/; s/"arch":null/"engine":"vllm","arch":null/' >unknown-engine.case.json
check "replay: unknown engine" 2 "replay unknown-engine\.case\.json: case: engine 'vllm' is not miniinfer, llamacpp or process" -- "$props" --model small.safetensors --replay unknown-engine.case.json
echo "${valid_case/SHA/}" | sed 's/FAULT/none/; s|"arch":null|"engine":"llamacpp","engine_settings":{"gguf":"/no/such.gguf","kv":"f16","threads":1,"flash":"off","ubatch":0},"arch":null|' >gone-gguf.case.json
check "replay: llamacpp case, GGUF gone" 2 "replay gone-gguf\.case\.json: its engine's GGUF /no/such\.gguf is not there" -- "$props" --model small.safetensors --replay gone-gguf.case.json

# ---- props: nothing lost, nothing silent (issue 32) -----------------------------------------------
for flag in --replay --results --model --gguf --inject --report-dir --summary; do
  check "props: empty $flag" 2 "^props: flag $flag: the value is empty" -- "$props" "$flag" "" "[p0]"
done
check "props: empty --results=" 2 "^props: flag --results: the value is empty" -- "$props" --results= "[p0]"
check "props: zero cases" 2 "--rc-max-success / RC_PARAMS max_success: 0 cases is no check" -- "$props" --rc-max-success=0 "[p0]"
check "props: a filter that matches nothing" 2 "no property matches the test filter \[p99\]" -- "$props" "[p99]"
"$props" --rc-seed=1 --inject decode-mask --report-dir found "[p6]" >/dev/null 2>&1
[ -f found/p6.case.json ] || { echo "could not make found/p6.case.json"; exit 1; }
check_replay_passes "replay: --inject none is honoured" -- "$props" --replay found/p6.case.json --inject none
check "replay: --shard is refused" 2 "--shard: --replay re-runs one saved case, as it was saved; it takes no --shard" -- "$props" --replay found/p6.case.json --shard 1/2
check "replay: --rc-seed is refused" 2 "--rc-seed: --replay re-runs one saved case" -- "$props" --replay found/p6.case.json --rc-seed=1
check "replay: a Catch2 filter is refused" 2 "\[p0\]: --replay re-runs one saved case; Catch2's filters" -- "$props" --replay found/p6.case.json "[p0]"
check "props: report dir under /proc" 2 "--report-dir /proc/nope: cannot (create|write in) /proc" -- "$props" --report-dir /proc/nope "[p0]"
check "props: summary under /proc" 2 "--summary /proc/s\.json: cannot write in /proc" -- "$props" --summary /proc/s.json "[p0]"
mkdir -p summary-folder
check "props: --summary names a folder" 2 "--summary summary-folder: is a folder" -- "$props" --summary summary-folder "[p0]"
check "props: results: disk full mid-run" 3 "^props: --results full\.jsonl: cannot append to it: File too large" \
  -- ./limited.sh "$props" --rc-seed=1 --rc-max-success=1000 --results full.jsonl "[p0]"
check "props: summary: disk full" 3 "^props: --summary full\.json: .*File too large" \
  -- ./limited.sh "$props" --rc-seed=1 --summary full.json "[p0],[p1],[p2]"
check "props: --rc-max-success too big" 2 "RapidCheck's parameters .*'max_success' must be a valid" -- "$props" --rc-max-success=99999999999 "[p0]"
check "props: --rc-reproduce garbage" 2 "RapidCheck's parameters .*'reproduce' string has invalid format" -- "$props" --rc-reproduce=garbage --results garbage.jsonl "[p0]"
check "props: RC_PARAMS seed=abc" 2 "RapidCheck's parameters .*'seed' must be a valid integer" -- env RC_PARAMS=seed=abc "$props" "[p0]"

# ---- props: numbers and names as given (issue 32) ----------------------------------------------
check "props: --llama-threads, 11 digits" 2 "--llama-threads: 12345678901 is outside 1\.\.256" -- "$props" --engine llamacpp --gguf regular_file --llama-threads 12345678901
check "props: --llama-ubatch, 11 digits" 2 "--llama-ubatch: 99999999999 is outside 0\.\.65536" -- "$props" --engine llamacpp --gguf regular_file --llama-ubatch 99999999999
check "props: --llama-threads 00000000002" 2 "--gguf no-such\.gguf: no such file" -- "$props" --engine llamacpp --gguf no-such.gguf --llama-threads 00000000002
check "props: shard of a million" 2 "--shard '1/1000000': N is more than 999999" -- "$props" --shard 1/1000000 "[p0]"
check "replay: unknown fault names the file" 2 "^props: replay unknown-fault\.case\.json: unknown fault 'no-such-fault'" -- "$props" --model small.safetensors --replay unknown-fault.case.json

# ---- props: engines and levels -------------------------------------------------------------------
check "props: unknown engine" 2 "--engine: 'vllm' is not an engine" -- "$props" --engine vllm
check "props: llamacpp without --gguf" 2 "--engine llamacpp needs --gguf FILE" -- "$props" --engine llamacpp
check "props: --gguf missing file" 2 "--gguf no-such\.gguf: no such file" -- "$props" --engine llamacpp --gguf no-such.gguf
check "props: --gguf without llamacpp" 2 "--gguf x\.gguf: only --engine llamacpp reads a GGUF" -- "$props" --gguf x.gguf
check "props: --llama-kv f8" 2 "--llama-kv: 'f8' is not f16, f32, q8_0 or q4_0" -- "$props" --engine llamacpp --gguf regular_file --llama-kv f8
check "props: --llama-kv q8_0 without flash" 2 "--llama-kv q8_0: llama\.cpp quantizes a V cache only with flash attention: add --llama-flash on" -- "$props" --engine llamacpp --gguf regular_file --llama-kv q8_0
check "props: --llama-threads 0" 2 "--llama-threads: 0 is outside 1\.\.256" -- "$props" --engine llamacpp --gguf regular_file --llama-threads 0
check "props: --llama-threads abc" 2 "--llama-threads: 'abc' is not a valid number" -- "$props" --llama-threads abc
check "props: --llama-flash maybe" 2 "--llama-flash: 'maybe' is not on or off" -- "$props" --engine llamacpp --gguf regular_file --llama-flash maybe
check "props: --inject on llamacpp" 2 "--inject stale-cache: faults are our engine's" -- "$props" --engine llamacpp --gguf regular_file --inject stale-cache
check "props: unknown --llama- flag" 2 "unknown flag --llama-kvv" -- "$props" --llama-kvv=f16
check "props: --llama-prefix-reuse maybe" 2 "--llama-prefix-reuse: 'maybe' is not on or off" -- "$props" --engine llamacpp --gguf regular_file --llama-prefix-reuse maybe
check "props: --llama-fragment holes" 2 "--llama-fragment: 'holes' is not off, holes:N or reorder:N \(N in 1\.\.4096\)" -- "$props" --engine llamacpp --gguf regular_file --llama-fragment holes
check "props: --llama-fragment reorder:0" 2 "--llama-fragment: 'reorder:0' is not off, holes:N or reorder:N" -- "$props" --engine llamacpp --gguf regular_file --llama-fragment reorder:0
check "props: --llama-fragment gaps:2" 2 "--llama-fragment: 'gaps:2' is not off, holes:N or reorder:N" -- "$props" --engine llamacpp --gguf regular_file --llama-fragment gaps:2
# A GGUF of another model with the shipped model's vocabulary and context: only its logits tell.
"$minigpt" init --seed 2 --out other.safetensors --config '{"d_model": 8, "n_head": 2, "n_layer": 1}' >/dev/null &&
if "$minigpt" export-gguf --model other.safetensors --out other.gguf >/dev/null 2>&1; then  # a build with llama.cpp
  check "props: --gguf not a GGUF" 2 "regular_file: llama.cpp cannot load it" -- "$props" --engine llamacpp --gguf regular_file "[p0]"
  check "props: --gguf of another model" 2 "--gguf [^ ]*other\.gguf: its logits differ from the model's by up to" -- "$props" --engine llamacpp --gguf other.gguf "[p0]"
  "$minigpt" export-gguf --model tiny.safetensors --out tiny.gguf >/dev/null
  check "props: --gguf with a short context" 2 "--gguf [^ ]*tiny\.gguf: .*capacity 512" -- "$props" --engine llamacpp --gguf tiny.gguf "[p0]"
  check "props: a ballast larger than a sequence" 2 "--llama-fragment holes:300: the ballast needs 600 cells, more than the [0-9]+ a sequence holds" -- "$props" --engine llamacpp --gguf other.gguf --llama-fragment holes:300 "[p0]"
fi
check "props: --level bogus" 2 "--level: 'bits2' is not a level" -- "$props" --level bits2
check "props: --level ulp:" 2 "--level: 'ulp:' is not a level" -- "$props" --level ulp:

echo "bad-input matrix: $cases cases, $failures failed"
[ "$failures" -eq 0 ]
