// The engine on 1 and 2 threads at GPT-2 small's shape (V=50257, D=768, L=12, H=12, F=3072,
// context 1024; random weights): batch-1 cached decode at contexts 64 and 512, and the uncached
// step (a full recompute of the last position's logits) at 512. The pool splits only rows,
// column groups and heads, so both counts compute the same bytes; this program times them.
// Times are real (wall-clock); the CPU column is the whole process's, every thread's time, so
// CPU(2 threads) / CPU(1 thread) is the pool's overhead even where no core is free.
#include <benchmark/benchmark.h>

#include "benchmark_main.h"
#include "decode_rounds.h"
#include "engine/engine.h"

namespace {

using namespace miniinfer;

// Built once, on first use (about 0.5 GB of weights).
const Model& gpt2_small_shape() {
  static const Model model = gpt2_small_shape_model();
  return model;
}

EngineOptions on_threads(int threads) {
  EngineOptions o;
  o.threads = threads;
  return o;
}

// A prompt of `context` tokens, then 16 decode steps, truncated back between rounds.
void BM_gpt2_decode(benchmark::State& state) {
  Engine engine(gpt2_small_shape(), on_threads(static_cast<int>(state.range(1))));
  time_decode_rounds(state, engine, static_cast<int>(state.range(0)), 16);
}

void BM_gpt2_uncached_step(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  Engine engine(gpt2_small_shape(), on_threads(static_cast<int>(state.range(1))));
  const std::vector<int> t = random_tokens(T, 50257, 7);
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
