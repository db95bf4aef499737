// End-to-end engine speed on a random model of the shipped shape (V=900, D=64, L=4, H=4,
// F=256), on one thread unless a benchmark has a `threads` argument: cached decode tokens/s at
// batch 1 and 4 (prompt of 16, then 64 decode steps per round, truncated back between rounds),
// and the cost of one uncached step (a full recompute of the last-position logits) against
// context length 16..512.
#include <benchmark/benchmark.h>

#include <cstring>

#include "base/rng.h"
#include "engine/engine.h"
#include "engine/kernels.h"
#include "decode_rounds.h"
#include "shipped_shape.h"
#include "benchmark_main.h"

namespace {

using namespace miniinfer;

// Built once: every benchmark below times the same weights.
const Model& model_of_shipped_shape() {
  static const Model model = shipped_shape_model();
  return model;
}

std::vector<int> tokens(int n, uint64_t seed) { return random_tokens(n, 900, seed); }

void BM_cached_decode(benchmark::State& state) {
  const int B = static_cast<int>(state.range(0)), prompt = 16, steps = 64;
  const Model& model = model_of_shipped_shape();
  Engine engine(model, {Backend::Invariant, B, 0, Fault::None, KvLayout::Contiguous, {}, static_cast<int>(state.range(1))});
  std::vector<int> seqs(static_cast<size_t>(B)), next(static_cast<size_t>(B));
  std::vector<float> logits(static_cast<size_t>(B) * 900);
  for (int b = 0; b < B; ++b) {
    seqs[static_cast<size_t>(b)] = b;
    engine.forward_cached(b, tokens(prompt, static_cast<uint64_t>(b)));
  }
  const std::vector<int> feed = tokens(steps, 99);
  int step = 0;
  for (auto _ : state) {
    std::fill(next.begin(), next.end(), feed[static_cast<size_t>(step)]);
    engine.decode(seqs, next, logits);
    benchmark::DoNotOptimize(logits.data());
    if (++step == steps) {  // back to the prompt: contexts stay in 17..80
      state.PauseTiming();
      for (int b = 0; b < B; ++b) engine.truncate(b, prompt);
      step = 0;
      state.ResumeTiming();
    }
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * B, benchmark::Counter::kIsRate);
}

// Decode at a long context (prompt of `context`, then 32 steps, truncated back), where attention
// reads the most rows: arg 0 = contiguous cache, 1 = paged (blocks of 16, rows reached through
// the block table); the two give the same bytes, and should cost the same.
void BM_long_decode(benchmark::State& state) {
  const int context = static_cast<int>(state.range(1)), steps = 32;
  EngineOptions o;
  o.layout = state.range(0) ? KvLayout::Paged : KvLayout::Contiguous;
  o.paged.placement_seed = 5;  // blocks scattered over the pool
  o.threads = 1;
  Engine engine(model_of_shipped_shape(), o);
  time_decode_rounds(state, engine, context, steps);
}

// The same with the matmul held to its 8-lane tiles (on a CPU with AVX-512F the others run 16).
void BM_cached_decode_8lanes(benchmark::State& state) {
  kernels::set_matmul_width(8);
  BM_cached_decode(state);
  kernels::set_matmul_width(0);
}

void BM_uncached_step(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  EngineOptions o;
  o.threads = static_cast<int>(state.range(1));
  Engine engine(model_of_shipped_shape(), o);
  const std::vector<int> t = tokens(T, 7);
  std::vector<float> logits(900);
  for (auto _ : state) {
    engine.forward_uncached(t, logits);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * T, benchmark::Counter::kIsRate);
}

void BM_prefill(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  EngineOptions o;
  o.threads = 1;
  Engine engine(model_of_shipped_shape(), o);
  const std::vector<int> t = tokens(T, 7);
  std::vector<float> logits(900);
  for (auto _ : state) {
    engine.reset();
    engine.forward_cached(0, t, logits);
    benchmark::DoNotOptimize(logits.data());
  }
}

// A floor under a batch-1 decode step's products, not an engine timing: the time to read, once,
// as many bytes as the step's weights (per layer Wq, Wk, Wv, Wo, W1, W2, then the head; each
// C x OC floats, rounded up to a whole 256 bytes, in the same order, on 64-byte boundaries),
// with vector adds into 8 independent sums and no multiplies. Any kernel that reads each weight
// once per token takes at least this long on this machine; docs/benchmarks.md compares the
// decode step's matmul time with it.
void BM_weight_stream_floor(benchmark::State& state) {
  const Config& c = model_of_shipped_shape().config;
  const int D = c.d_model, F = c.d_ff, V = c.vocab_size;
  std::vector<kernels::PackedWeight> weights;
  size_t bytes = 0;
  auto add = [&](int C, int OC) {
    const size_t n = (static_cast<size_t>(C) * OC + 63) / 64 * 64;
    weights.emplace_back(n, 1.0f);
    bytes += n * sizeof(float);
  };
  for (int l = 0; l < c.n_layer; ++l) {
    for (int i = 0; i < 4; ++i) add(D, D);
    add(D, F);
    add(F, D);
  }
  add(D, V);
  typedef float v8 __attribute__((vector_size(32)));
  for (auto _ : state) {
    v8 acc[8] = {};
    for (const kernels::PackedWeight& w : weights) {
      const float* p = w.data();
      for (size_t i = 0; i + 64 <= w.size(); i += 64)
        for (int j = 0; j < 8; ++j) {
          v8 x;
          std::memcpy(&x, p + i + 8 * j, sizeof x);
          acc[j] += x;
        }
    }
    benchmark::DoNotOptimize(acc);
  }
  state.counters["KiB"] = static_cast<double>(bytes) / 1024.0;
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(bytes),
                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK(BM_cached_decode)->ArgsProduct({{1, 4}, {1, 2}})->ArgNames({"batch", "threads"});
BENCHMARK(BM_cached_decode_8lanes)->Args({1, 1})->Args({4, 1})->ArgNames({"batch", "threads"});
BENCHMARK(BM_long_decode)->Args({0, 448})->Args({1, 448})->ArgNames({"paged", "context"});
BENCHMARK(BM_weight_stream_floor);
BENCHMARK(BM_uncached_step)
    ->ArgsProduct({{16, 32, 64, 128, 256, 512}, {1, 2}})
    ->ArgNames({"context", "threads"})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_prefill)->Arg(16)->Arg(64)->ArgName("prompt")->Unit(benchmark::kMicrosecond);
int main(int argc, char** argv) { return miniinfer::bench::benchmark_main(argc, argv); }
