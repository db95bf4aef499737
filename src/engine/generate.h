// Generation: prompts in, tokens out, with or without the KV cache. With the cache, the
// prompts are prefilled in one pass and each step decodes one token per sequence; without
// it, every step recomputes each whole sequence so far in one forward. Both draw exactly one
// coin per generated token from the sequence's own stream Rng::stream(seed, index).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/engine.h"
#include "engine/sampling.h"
#include "engine/speculative.h"

namespace miniinfer {

// Where each draw's coin comes from. Both loops call it for every token, with the step, the
// sequence, the logits the token is drawn from and the stream's coin, and draw with the coin it
// returns: a property can put coins next to the sampler's edges (sample_edges).
using CoinSource = std::function<float(int step, size_t seq, std::span<const float> logits, float coin)>;

struct GenerateOptions {
  int max_new_tokens = 64;
  bool cache = true;
  uint64_t seed = 0;
  uint64_t first_stream = 0;  // prompt i draws from Rng::stream(seed, first_stream + i), so a
                              // batch's sequence i can be rerun alone with the same coins
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  Backend backend = Backend::Invariant;
  bool return_logits = false;
  Trace* trace = nullptr;    // null = off; records get step = the generation step
  Fault fault = Fault::None;
  CoinSource coins;          // empty: the stream's coin, as is
  KvLayout layout = KvLayout::Contiguous;  // the cache of the engine generate(model, ...) builds
  PagedOptions paged;                      // its block size and pool, when paged
  int threads = 0;                         // its worker threads; 0 = EngineOptions' default
  int window = 0, sinks = 0;               // its sliding window (EngineOptions); 0 = none
  KvQuant kv_quant = KvQuant::F32;         // its K/V format and residual (EngineOptions)
  int kv_residual = 0;
  // Speculative decoding (speculative.h, docs/speculative.md): with a drafter, the cached loop
  // verifies its drafts k at a time; tokens and logits are plain decoding's when greedy.
  SpeculativeOptions speculative;
};

struct GenerateResult {
  std::vector<std::vector<int>> tokens;    // per sequence: max_new_tokens generated ids
  std::vector<std::vector<float>> logits;  // per sequence, if return_logits: (max_new_tokens, V),
                                           // the logits each token was drawn from
  SpeculativeStats speculative;            // with a drafter: verify calls, drafts, accepted
};

// Builds an engine (batch = prompts.size(), capacity = max_seq_len) for this call.
GenerateResult generate(const Model& model, const std::vector<std::vector<int>>& prompts,
                        const GenerateOptions& options);
// Reuses `engine` (the checker's hot loop): sets its backend, fault and trace from `options`
// for this call (and restores the engine's own when it returns or throws), and starts a new
// request on every sequence first (Engine::start_request: a reset, so a reused engine behaves
// like a fresh one). Needs prompts.size() <= engine.batch(); prompt i uses sequence i.
// Throws Error, naming the step and sequence, when a step's logits hold a NaN or an infinity.
GenerateResult generate(Engine& engine, const std::vector<std::vector<int>>& prompts,
                        const GenerateOptions& options);

}  // namespace miniinfer
