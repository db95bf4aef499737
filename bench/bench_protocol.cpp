// What one call over the engine protocol costs: props' process engine (props/engine_process.cpp)
// talking to `minigpt serve` in a child process, against the same call on our engine
// in-process, on the shipped model. A small op (reset: a round trip and no work) and full
// recompute of T tokens with its logits (one row, or all T rows). The difference between the two
// columns is the protocol's cost per call: JSON, base64, the pipe, two context switches.
// minigpt is looked for next to this program and one folder up (build/minigpt), or set MINIGPT.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "base/error.h"
#include "model/model_file.h"
#include "props/engine_registry.h"
#include "benchmark_main.h"

namespace {

using namespace miniinfer;
using namespace miniinfer::props;

const Model& shipped_model() {
  static const Model model =
      read_model(std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors");
  return model;
}

std::string minigpt_path() {
  if (const char* env = std::getenv("MINIGPT")) return env;
  const auto here = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  for (const auto& p : {here / "minigpt", here.parent_path() / "minigpt"})
    if (std::filesystem::exists(p)) return p.string();
  fail("bench_protocol: no minigpt next to {} or one folder up; set MINIGPT", here.string());
}

// Started once and kept, as props keeps its engine for a whole run.
EngineUnderTest& engine(bool process) {
  static std::unique_ptr<EngineUnderTest> in, out;
  auto& e = process ? out : in;
  if (!e) {
    const Model& m = shipped_model();
    e = process ? kProcess.make({{"cmd", minigpt_path() + " serve"}, {"timeout", 60.0}}, m, 4,
                                m.config.max_seq_len)
                : kMiniInfer.make({{"backend", "invariant"}, {"fault", "none"}}, m, 4, m.config.max_seq_len);
  }
  return *e;
}

std::vector<int> tokens(int n) {
  std::vector<int> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = 2 + (i * 37) % 900;  // any ids of the vocabulary
  return t;
}

void BM_reset(benchmark::State& state) {
  EngineUnderTest& e = engine(state.range(0) != 0);
  for (auto _ : state) e.reset();
}

// Full recompute of T tokens: the last row's logits (all_rows = 0) or all T rows.
void BM_forward_uncached(benchmark::State& state) {
  EngineUnderTest& e = engine(state.range(0) != 0);
  const std::vector<int> t = tokens(static_cast<int>(state.range(1)));
  const bool all_rows = state.range(2) != 0;
  for (auto _ : state) benchmark::DoNotOptimize(e.forward_uncached(t, all_rows));
}

// One decode step on sequence 0 after a prompt of 16, truncated back every 64 steps.
void BM_decode(benchmark::State& state) {
  EngineUnderTest& e = engine(state.range(0) != 0);
  const std::vector<int> prompt = tokens(16), seq = {0}, next = {5};
  std::vector<float> logits(static_cast<size_t>(e.vocab_size()));
  e.reset();
  e.forward_cached(0, prompt, false);
  int step = 0;
  for (auto _ : state) {
    e.decode(seq, next, logits);
    if (++step == 64) {
      state.PauseTiming();
      e.truncate(0, 16);
      step = 0;
      state.ResumeTiming();
    }
  }
}

// Args: {process (0: in-process, 1: over the protocol), ...}
BENCHMARK(BM_reset)->ArgNames({"process"})->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_decode)->ArgNames({"process"})->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward_uncached)
    ->ArgNames({"process", "T", "all_rows"})
    ->ArgsProduct({{0, 1}, {8, 32, 128}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) { return miniinfer::bench::benchmark_main(argc, argv); }
