// The sliced run (props --shard K/N, props --results FILE): each property's cases are cut into
// batches of kBatchCases, each checked by its own RapidCheck run from a batch seed derived
// from (run seed, property id, batch index). Shard K of N runs a contiguous range of every
// property's batches, so N shards together run exactly the batches of one --shard 1/1 run.
// With --results, every finished batch is one fsync'd JSON line, and a restart skips them.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace miniinfer::props {

// Ten cases a batch: RapidCheck spreads a check's sizes over 0..max_size, so ten cases cover
// the sizes 0, 11, ..., 100 like a whole run does; a kill loses at most one batch of work.
constexpr int kBatchCases = 10;

struct ShardSpec {
  int k = 1, n = 1;  // the k-th (1-based) of n slices
};
// Parses "K/N" with 1 <= K <= N. Throws Error naming the flag and the text.
ShardSpec parse_shard(const std::string& text);

struct Batch {
  int index = 0;
  uint64_t seed = 0;  // RapidCheck's seed for this batch: the "case seed" of its lines
  int cases = 0;
};
// Every batch of a property with `total` cases whose seed is `property_seed`, in order.
std::vector<Batch> batches_of(uint64_t property_seed, int total);
// The half-open range [first, end) of batch indices shard `spec` runs out of `count`.
struct BatchRange {
  int first = 0, end = 0;
};
BatchRange shard_range(int count, ShardSpec spec);

// Turns the sliced run on. `results` may be empty (no results file). Opens and checks the
// results file (resuming from it); throws Error naming it if it cannot be used.
void start_sliced_run(ShardSpec spec, const std::string& results);
bool sliced_run();
// How many properties this process will run (Catch2's filters applied), for the progress ETA.
void set_property_count(int n);

// check_property's sliced path: runs this shard's batches of property `id` (`total` cases
// from `property_seed`), skipping those the results file holds, and prints and records the
// property's outcome. Returns true when every batch passed.
bool check_sliced(const std::string& id, const std::string& sentence, uint64_t property_seed, int total,
                  const std::function<void()>& body);

}  // namespace miniinfer::props
