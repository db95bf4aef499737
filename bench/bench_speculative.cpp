// Speculative decoding against plain cached greedy decode, in one run, on the shipped model over
// the lab's 50 prompts (experiments/22-cache-correctness): each iteration generates 64 greedy
// tokens for every prompt, one prompt at a time (batch 1). Drafters: none (the baseline), prompt
// lookup (ngram) and the shipped model's first 1 or 2 layers (model:1, model:2), at draft
// lengths 1, 2, 4 and 8. Counters: generated tokens/s and the acceptance rate; the speed-up is
// the ratio of tokens/s to the baseline's in the same run (docs/benchmarks.md, "Speculative
// decoding"). Every variant emits the baseline's tokens (greedy is exact: speculative_test).
// BM_gpt2_greedy: the same comparison at GPT-2 small's shape, with prompt lookup.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "engine/generate.h"
#include "engine/speculative.h"
#include "model/model_file.h"
#include "shipped_shape.h"
#include "benchmark_main.h"

namespace {

using namespace miniinfer;

constexpr int kNewTokens = 64;

const Model& shipped() {
  static const Model model = read_model(std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors");
  return model;
}

const std::vector<std::vector<int>>& lab_prompts() {
  static const std::vector<std::vector<int>> prompts = [] {
    const auto results = nlohmann::json::parse(
        read_file(std::string(MINIINFER_SOURCE_DIR) + "/experiments/22-cache-correctness/results.json"));
    std::vector<std::vector<int>> p;
    for (const auto& r : results.at("prompts")) p.push_back(r.at("prompt_ids").get<std::vector<int>>());
    return p;
  }();
  return prompts;
}

// The draft of `layers` layers (0: none), made once.
const Model* draft_of(int layers) {
  static const Model one = first_layers_model(shipped(), 1), two = first_layers_model(shipped(), 2);
  return layers == 1 ? &one : layers == 2 ? &two : nullptr;
}

// range(0): 0 none, 1 ngram, 2 model of 1 layer, 3 model of 2 layers; range(1): the draft length.
void BM_greedy(benchmark::State& state) {
  const int drafter = static_cast<int>(state.range(0));
  GenerateOptions o;
  o.max_new_tokens = kNewTokens;
  o.threads = 1;
  o.speculative.drafter = drafter == 0 ? Drafter::None : drafter == 1 ? Drafter::Ngram : Drafter::Model;
  o.speculative.draft_len = static_cast<int>(state.range(1));
  o.speculative.draft_model = draft_of(drafter - 1);
  Engine engine(shipped(), EngineOptions{Backend::Invariant, 1, 0, Fault::None, KvLayout::Contiguous, {}, 1});
  SpeculativeStats total;
  long long tokens = 0;
  for (auto _ : state) {
    for (const auto& prompt : lab_prompts()) {
      const GenerateResult r = generate(engine, {prompt}, o);
      benchmark::DoNotOptimize(r.tokens.data());
      total.rounds += r.speculative.rounds;
      total.drafted += r.speculative.drafted;
      total.accepted += r.speculative.accepted;
      tokens += kNewTokens;
    }
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["accept"] = total.acceptance();
  state.counters["tokens/verify"] = total.rounds ? static_cast<double>(tokens) / static_cast<double>(total.rounds) : 1.0;
}

void drafts(benchmark::internal::Benchmark* b) {
  b->ArgNames({"drafter", "k"});
  b->Args({0, 0});
  for (int d : {1, 2, 3})
    for (int k : {1, 2, 4, 8}) b->Args({d, k});
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_greedy)->Apply(drafts);

// GPT-2 small's shape (random weights, bench/shipped_shape.h), where a decode step streams every
// weight from memory: one prompt that repeats a 4-token phrase, 32 greedy tokens, plain against
// prompt lookup at k = 4 (range(0): 0 or 4). The random model echoes the phrase, so this times
// what a verify of k + 1 rows costs against k + 1 decode steps when drafts are accepted.
void BM_gpt2_greedy(benchmark::State& state) {
  static const Model model = gpt2_small_shape_model();
  const std::vector<int> phrase = random_tokens(4, model.config.vocab_size, 7);
  std::vector<int> prompt;
  for (int i = 0; i < 3; ++i) prompt.insert(prompt.end(), phrase.begin(), phrase.end());
  GenerateOptions o;
  o.max_new_tokens = 32;
  o.threads = 1;
  o.speculative.drafter = state.range(0) ? Drafter::Ngram : Drafter::None;
  o.speculative.draft_len = static_cast<int>(state.range(0));
  Engine engine(model, EngineOptions{Backend::Invariant, 1, 64, Fault::None, KvLayout::Contiguous, {}, 1});
  GenerateResult r;
  for (auto _ : state) {
    r = generate(engine, {prompt}, o);
    benchmark::DoNotOptimize(r.tokens.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * o.max_new_tokens,
                                                  benchmark::Counter::kIsRate);
  state.counters["accept"] = r.speculative.acceptance();
}

BENCHMARK(BM_gpt2_greedy)->ArgName("k")->Arg(0)->Arg(4)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) { return miniinfer::bench::benchmark_main(argc, argv); }
