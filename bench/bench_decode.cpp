// End-to-end engine speed on a random model of the shipped shape (V=900, D=64, L=4, H=4,
// F=256): cached decode tokens/s at batch 1 and 4 (prompt of 16, then 64 decode steps per
// round, truncated back between rounds), and the cost of one uncached step (a full recompute
// of the last-position logits) against context length 16..512.
#include <benchmark/benchmark.h>

#include "base/rng.h"
#include "engine/engine.h"
#include "shipped_shape.h"

namespace {

using namespace miniinfer;

// Built once: every benchmark below times the same weights.
const Model& model_of_shipped_shape() {
  static const Model model = shipped_shape_model();
  return model;
}

std::vector<int> tokens(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(900));
  return t;
}

void BM_cached_decode(benchmark::State& state) {
  const int B = static_cast<int>(state.range(0)), prompt = 16, steps = 64;
  const Model& model = model_of_shipped_shape();
  Engine engine(model, {Backend::Invariant, B, 0, Fault::None});
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

void BM_uncached_step(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  Engine engine(model_of_shipped_shape());
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
  Engine engine(model_of_shipped_shape());
  const std::vector<int> t = tokens(T, 7);
  std::vector<float> logits(900);
  for (auto _ : state) {
    engine.reset();
    engine.forward_cached(0, t, logits);
    benchmark::DoNotOptimize(logits.data());
  }
}

}  // namespace

BENCHMARK(BM_cached_decode)->Arg(1)->Arg(4)->ArgName("batch");
BENCHMARK(BM_uncached_step)->RangeMultiplier(2)->Range(16, 512)->ArgName("context")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_prefill)->Arg(16)->Arg(64)->ArgName("prompt")->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
