// The engine on 1 and 2 threads at GPT-2 small's shape (V=50257, D=768, L=12, H=12, F=3072,
// context 1024; random weights): batch-1 cached decode at contexts 64 and 512, and the uncached
// step (a full recompute of the last position's logits) at 512. The pool splits only rows,
// column groups and heads, so both counts compute the same bytes; this program times them.
// Times are real (wall-clock); the CPU column is the whole process's, every thread's time, so
// CPU(2 threads) / CPU(1 thread) is the pool's overhead even where no core is free.
#include <benchmark/benchmark.h>

#include "base/rng.h"
#include "benchmark_main.h"
#include "engine/engine.h"

namespace {

using namespace miniinfer;

// Built once, on first use (about 0.5 GB of weights): init_model's seed 1.
const Model& gpt2_small_shape() {
  static const Model model = [] {
    Config c;
    c.vocab_size = 50257;
    c.d_model = 768;
    c.n_layer = 12;
    c.n_head = 12;
    c.d_ff = 3072;
    c.max_seq_len = 1024;
    std::vector<std::string> vocab;
    for (int i = 0; i < c.vocab_size; ++i) vocab.push_back("w" + std::to_string(i));
    return init_model(c, vocab, 1);
  }();
  return model;
}

std::vector<int> tokens(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(50257));
  return t;
}

EngineOptions on_threads(int threads) {
  EngineOptions o;
  o.threads = threads;
  return o;
}

// A prompt of `context` tokens, then 16 decode steps, truncated back between rounds.
void BM_gpt2_decode(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0)), steps = 16;
  Engine engine(gpt2_small_shape(), on_threads(static_cast<int>(state.range(1))));
  engine.forward_cached(0, tokens(context, 3));
  const std::vector<int> feed = tokens(steps, 98), seqs = {0};
  std::vector<float> logits(50257);
  int step = 0;
  for (auto _ : state) {
    engine.decode(seqs, std::span(feed).subspan(static_cast<size_t>(step), 1), logits);
    benchmark::DoNotOptimize(logits.data());
    if (++step == steps) {
      state.PauseTiming();
      engine.truncate(0, context);
      step = 0;
      state.ResumeTiming();
    }
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_gpt2_uncached_step(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  Engine engine(gpt2_small_shape(), on_threads(static_cast<int>(state.range(1))));
  const std::vector<int> t = tokens(T, 7);
  std::vector<float> logits(50257);
  for (auto _ : state) {
    engine.forward_uncached(t, logits);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * T, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_gpt2_decode)
    ->ArgsProduct({{64, 512}, {1, 2}})
    ->ArgNames({"context", "threads"})
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gpt2_uncached_step)
    ->ArgsProduct({{512}, {1, 2}})
    ->ArgNames({"context", "threads"})
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);
int main(int argc, char** argv) { return miniinfer::bench::benchmark_main(argc, argv); }
