// Speculative decoding (docs/speculative.md): a drafter proposes k tokens, the target checks
// them all in one cached call (Engine::verify) and keeps the longest prefix it agrees with,
// then rolls the rest back (Engine::rollback). Exact by construction: every logits row the loop
// decides from is a cached row, which equals full recompute's bitwise, and greedy acceptance
// keeps a draft only where it IS the target's argmax, so greedy speculative generation emits
// plain decode's tokens. Sampling uses standard speculative rejection sampling, with each coin
// indexed by the position it decides (no coin depends on how many drafts were rejected).
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/rng.h"
#include "engine/sampling.h"
#include "model/model.h"

namespace miniinfer {

// none: plain decoding. ngram: prompt lookup in the prompt and the tokens so far. model: a
// smaller MiniGPT with the target's vocabulary, on its own cached engine.
enum class Drafter { None, Ngram, Model };
const char* to_string(Drafter drafter);
Drafter drafter_from_name(std::string_view name);  // throws Error naming the known ones

struct SpeculativeOptions {
  Drafter drafter = Drafter::None;
  int draft_len = 4;                   // k: the drafts one verify call checks (fewer near the end)
  int ngram_max = 3;                   // prompt lookup tries suffixes of ngram_max tokens down to 1
  const Model* draft_model = nullptr;  // Drafter::Model: the draft (same vocabulary as the target)
};

// Totals over a generate() call: verify calls, drafts proposed, drafts accepted.
struct SpeculativeStats {
  long long rounds = 0, drafted = 0, accepted = 0;
  double acceptance() const { return drafted ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0; }
};

// Prompt lookup: the up to k tokens that followed the latest earlier occurrence of the last n
// tokens of `context`, for n from n_max down to 1 (the first n that occurs wins); empty if none
// does. The continuation may run into the suffix itself (a repeated token drafts itself).
std::vector<int> ngram_draft(std::span<const int> context, int n_max, int k);

// The coins of sequence stream `stream` (Rng::stream(seed, first_stream + b)): the draw coin of
// generated position s is the stream's s-th uniform, the very coin plain generation draws step
// s with; the acceptance coin of position s is the s-th uniform of accept_stream(stream).
inline float draw_coin(const Rng& stream, int position) { return stream.uniform_at(static_cast<uint64_t>(position)); }
Rng accept_stream(uint64_t seed, uint64_t index);

// Speculative rejection sampling at one position. p: the target's probabilities, q: the
// drafter's (probabilities(), or a point mass at the draft for prompt lookup); both (V).
// Accepts `draft` iff accept_coin < min(1, p[draft] / q[draft]); on rejection the token is
// drawn from norm(max(0, p - q)) with draw_coin (running sum in id order, as sample() does).
struct Decision {
  bool accepted = false;
  int token = 0;
};
Decision speculative_decide(std::span<const float> p, std::span<const float> q, int draft, float accept_coin,
                            float draw_coin);

// The simplest honest draft model: the target's first `layers` blocks with its final LayerNorm
// and tied head (`minigpt draft`). Throws Error unless 1 <= layers <= the target's n_layer.
Model first_layers_model(const Model& target, int layers);

// The request's speculative settings, checked before anything runs (generate's check_request
// and run_loops, for every engine); each throws Error naming the problem. The draft length:
// >= 1 and within the room each prompt leaves in `limit` positions (and the n-gram length >= 1).
void check_draft_len(const SpeculativeOptions& s, const std::vector<std::vector<int>>& prompts, int limit);
// The draft model, for Drafter::Model: given, with the target's vocabulary (its size, and its
// words when `target_vocab` is known), and room for every prompt and its new tokens.
void check_draft_model(const SpeculativeOptions& s, int target_vocab_size, const std::vector<std::string>* target_vocab,
                       const std::vector<std::vector<int>>& prompts, int max_new_tokens);

}  // namespace miniinfer
