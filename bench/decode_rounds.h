// The cached-decode loop the Google Benchmark programs share (bench_decode, bench_threads).
#pragma once
#include <benchmark/benchmark.h>

#include <span>
#include <vector>

#include "engine/engine.h"
#include "shipped_shape.h"

namespace miniinfer {

// Batch-1 cached decode on sequence 0 at a context: a prompt of `context` tokens, then `steps`
// decode steps per round, truncated back to the prompt between rounds (untimed), so every
// timed step reads context + 1 .. context + steps slots. Counts tokens/s.
inline void time_decode_rounds(benchmark::State& state, Engine& engine, int context, int steps) {
  const int V = engine.vocab_size();
  engine.forward_cached(0, random_tokens(context, V, 3));
  const std::vector<int> feed = random_tokens(steps, V, 98), seqs = {0};
  std::vector<float> logits(static_cast<size_t>(V));
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
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace miniinfer
