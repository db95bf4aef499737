// The paged cache against the contiguous one, in one run on a random model of the shipped shape
// (bench/shipped_shape.h): cached decode at contexts 64 and 448 for batches 1 and 4, prefill of
// 128 and 512 tokens, the time to the first token of a 512-token prompt with a 90 % prefix hit
// against a miss, and the pool's use for a batch of mixed lengths. Ratios are read off one run
// (docs/benchmarks.md, "The paged cache").
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>

#include "base/rng.h"
#include "engine/engine.h"
#include "shipped_shape.h"
#include "benchmark_main.h"

namespace {

using namespace miniinfer;

constexpr int kV = 900, kBlock = 16;

const Model& model_of_shipped_shape() {
  static const Model model = shipped_shape_model();
  return model;
}

std::vector<int> tokens(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(kV));
  return t;
}

EngineOptions options(KvLayout layout, int batch) {
  EngineOptions o;
  o.batch = batch;
  o.layout = layout;
  o.paged.block_size = kBlock;
  return o;
}

KvLayout layout_of(const benchmark::State& state) {
  return state.range(0) == 0 ? KvLayout::Contiguous : KvLayout::Paged;
}

// Decode at a context of `ctx` tokens: B sequences hold a prompt of ctx tokens, then 32 decode
// steps, truncated back to the prompt between rounds (contexts ctx + 1 .. ctx + 32).
void BM_decode(benchmark::State& state) {
  const int B = static_cast<int>(state.range(1)), ctx = static_cast<int>(state.range(2)), steps = 32;
  Engine engine(model_of_shipped_shape(), options(layout_of(state), B));
  std::vector<int> seqs(static_cast<size_t>(B)), next(static_cast<size_t>(B));
  std::vector<float> logits(static_cast<size_t>(B) * kV);
  for (int b = 0; b < B; ++b) {
    seqs[static_cast<size_t>(b)] = b;
    engine.forward_cached(b, tokens(ctx, static_cast<uint64_t>(b)));
  }
  const std::vector<int> feed = tokens(steps, 99);
  int step = 0;
  for (auto _ : state) {
    std::fill(next.begin(), next.end(), feed[static_cast<size_t>(step)]);
    engine.decode(seqs, next, logits);
    benchmark::DoNotOptimize(logits.data());
    if (++step == steps) {
      state.PauseTiming();
      for (int b = 0; b < B; ++b) engine.truncate(b, ctx);
      step = 0;
      state.ResumeTiming();
    }
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * B, benchmark::Counter::kIsRate);
}

// Prefill of T tokens on an empty sequence (a new request each time, distinct tokens, so the
// paged cache's prefix cache never hits: this times the cache layout alone).
void BM_prefill(benchmark::State& state) {
  const int T = static_cast<int>(state.range(1));
  Engine engine(model_of_shipped_shape(), options(layout_of(state), 1));
  std::vector<float> logits(kV);
  uint64_t seed = 1000;
  for (auto _ : state) {
    state.PauseTiming();
    const std::vector<int> t = tokens(T, ++seed);
    engine.reset(0);
    state.ResumeTiming();
    engine.forward_cached(0, t, logits);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * T, benchmark::Counter::kIsRate);
}

// Time to the first token of a 512-token prompt on the paged cache. hit: sequence 0 holds a
// prompt whose first 464 tokens (29 blocks, 90.6 %) the new prompt shares; each iteration
// submits the shared part and a fresh 48-token tail on sequence 1. miss: the same on an engine
// whose prefix cache holds nothing the prompt starts with (a fresh prompt every time).
void BM_first_token(benchmark::State& state) {
  const bool hit = state.range(0) == 1;
  const int T = 512, shared = 464;
  Engine engine(model_of_shipped_shape(), options(KvLayout::Paged, 2));
  std::vector<float> logits(kV);
  const std::vector<int> first = tokens(T, 5);
  engine.submit(0, first, logits);
  uint64_t seed = 2000;
  int reused = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<int> prompt = tokens(T, ++seed);
    if (hit) std::copy_n(first.begin(), shared, prompt.begin());
    engine.free(1);
    state.ResumeTiming();
    reused = engine.submit(1, prompt, logits);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["reused"] = reused;
  state.counters["prompt"] = T;
}

// The pool's use for 8 sequences of mixed lengths: the contiguous cache reserves the capacity
// (512 slots) for each; the paged one holds ceil(length / 16) blocks each.
void BM_pool_use(benchmark::State& state) {
  const std::vector<int> lengths = {5, 16, 30, 40, 70, 100, 250, 512};
  const int B = static_cast<int>(lengths.size());
  Engine engine(model_of_shipped_shape(), options(KvLayout::Paged, B));
  for (int b = 0; b < B; ++b) engine.forward_cached(b, tokens(lengths[static_cast<size_t>(b)], static_cast<uint64_t>(b)));
  for (auto _ : state) benchmark::DoNotOptimize(engine.paged()->stats());
  const Config& c = engine.config();
  const double slot_bytes = 2.0 * c.n_layer * c.d_model * sizeof(float);  // K and V, every layer
  int tokens_held = 0;
  for (int n : lengths) tokens_held += n;
  state.counters["tokens"] = tokens_held;
  state.counters["paged_KiB"] = engine.paged()->stats().blocks_in_use * kBlock * slot_bytes / 1024;
  state.counters["contiguous_KiB"] = B * c.max_seq_len * slot_bytes / 1024;
  state.counters["exact_KiB"] = tokens_held * slot_bytes / 1024;
}

}  // namespace

BENCHMARK(BM_decode)->ArgNames({"paged", "B", "ctx"})->ArgsProduct({{0, 1}, {1, 4}, {64, 448}});
BENCHMARK(BM_prefill)->ArgNames({"paged", "T"})->ArgsProduct({{0, 1}, {128, 512}});
BENCHMARK(BM_first_token)->ArgNames({"hit"})->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_pool_use)->Iterations(1);

int main(int argc, char** argv) { return miniinfer::bench::benchmark_main(argc, argv); }
