#!/usr/bin/env bash
# props --shard K/N partitions the cases (CTest props_shards): three shards together run
# exactly the batches of one --shard 1/1 run (same property, batch, seed and case count), none
# twice and none missing, and the 1/1 run checks as many cases per property as a plain run.
# usage: shard_test.sh PROPS WORKDIR
set -uo pipefail
props=$1 work=$2
# (WORKDIR must lie inside the current folder, where CTest runs this: only that is ever removed.)
"$(dirname "$0")/../scripts/remove-inside" . "$work" && mkdir -p "$work" && cd "$work" || exit 1
flags=(--rc-seed=7 --rc-max-success=20)
failures=0
check() {  # check WHAT CONDITION-STATUS DETAIL
  if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1: $3"; failures=$((failures + 1)); fi
}
# One "property batch case_seed cases" line per finished batch (the writer sorts the keys).
keys() {
  sed -nE 's/^\{"batch":([0-9]+),"case_seed":([0-9]+),"cases":([0-9]+),"property":"([a-z0-9]+)".*/\4 \1 \2 \3/p' "$@"
}

"$props" "${flags[@]}" >plain.log 2>&1 || { echo "FAIL  the plain run failed"; cat plain.log; exit 1; }
"$props" "${flags[@]}" --shard 1/1 --results all.jsonl >all.log 2>&1 || { echo "FAIL  the 1/1 run failed"; exit 1; }
for k in 1 2 3; do
  "$props" "${flags[@]}" --shard $k/3 --results shard-$k.jsonl >shard-$k.log 2>&1 ||
    { echo "FAIL  shard $k/3 failed"; cat shard-$k.log; exit 1; }
done

keys all.jsonl | sort >all.keys
keys shard-1.jsonl shard-2.jsonl shard-3.jsonl | sort >shards.keys
batches=$(wc -l <all.keys)
check "the 1/1 run finished $batches batches" "$([ "$batches" -ge 20 ]; echo $?)" "expected at least 20"
bad=$(cat all.jsonl shard-*.jsonl | grep -cvE '^\{"(batch|batches|batch_cases)":')
check "every results line is the header, a plan or a batch" "$bad" \
  "$(cat all.jsonl shard-*.jsonl | grep -vE '^\{"(batch|batches|batch_cases)":' | head -3)"
dups=$(uniq -d shards.keys | wc -l)
check "no batch runs in two shards" "$dups" "$(uniq -d shards.keys | head -5)"
gaps=$(comm -23 all.keys shards.keys | wc -l)
check "no batch of the 1/1 run is missing from the shards" "$gaps" "$(comm -23 all.keys shards.keys | head -5)"
extra=$(comm -13 all.keys shards.keys | wc -l)
check "the shards run no batch the 1/1 run does not" "$extra" "$(comm -13 all.keys shards.keys | head -5)"
# Per property, the 1/1 run's cases equal the plain run's (the "ok" lines' counts).
cases_of() { sed -nE 's/^ok +(p[0-9]+) .* ([0-9]+) cases +[0-9.]+ s$/\1 \2/p' "$1" | sort; }
cases_of plain.log >plain.cases
cases_of all.log >all.cases
check "each property checks as many cases sliced as plain ($(wc -l <plain.cases) properties)" \
  "$(cmp -s plain.cases all.cases && [ -s plain.cases ]; echo $?)" "$(diff plain.cases all.cases | head -6)"
echo "shards: $batches batches, $dups duplicates, $gaps missing, $extra extra"
[ "$failures" -eq 0 ]
