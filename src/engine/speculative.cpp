// Speculative decoding's pieces that need no engine: prompt lookup, the coins, the acceptance
// decision, the first-layers draft model and the request checks (the loop: speculative_loop.h).
#include "engine/speculative.h"

#include <algorithm>

#include "base/error.h"

namespace miniinfer {

const char* to_string(Drafter drafter) {
  switch (drafter) {
    case Drafter::None: return "none";
    case Drafter::Ngram: return "ngram";
    case Drafter::Model: return "model";
  }
  return "?";
}

Drafter drafter_from_name(std::string_view name) {
  for (Drafter d : {Drafter::None, Drafter::Ngram, Drafter::Model})
    if (name == to_string(d)) return d;
  fail("unknown drafter '{}' (known: none, ngram, model)", name);
}

std::vector<int> ngram_draft(std::span<const int> context, int n_max, int k) {
  const int len = static_cast<int>(context.size());
  for (int n = std::min(n_max, len - 1); n >= 1; --n) {
    const std::span<const int> suffix = context.last(static_cast<size_t>(n));
    for (int i = len - n - 1; i >= 0; --i) {
      if (!std::equal(suffix.begin(), suffix.end(), context.begin() + i)) continue;
      const int from = i + n, to = std::min(len, from + k);
      return {context.begin() + from, context.begin() + to};
    }
  }
  return {};
}

// A stream apart from the draw coins' Rng::stream(seed, index): the same index, another seed.
Rng accept_stream(uint64_t seed, uint64_t index) { return Rng::stream(seed ^ 0xacce97acce97acceULL, index); }

Decision speculative_decide(std::span<const float> p, std::span<const float> q, int draft, float accept_coin,
                            float draw_coin) {
  const size_t x = static_cast<size_t>(draft);
  if (accept_coin < std::min(1.0f, p[x] / q[x])) return {true, draft};
  float total = 0.0f;
  for (size_t i = 0; i < p.size(); ++i) total += std::max(0.0f, p[i] - q[i]);
  const float target = draw_coin * total;
  float running = 0.0f;
  int last = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    const float r = std::max(0.0f, p[i] - q[i]);
    if (r <= 0.0f) continue;
    running += r;
    last = static_cast<int>(i);
    if (running > target) return {false, last};
  }
  // Rejection means p[draft] < q[draft], so some p[i] > q[i]: `last` is set unless rounding
  // flattened every difference, and then the target's own most likely token is the draw.
  if (last >= 0) return {false, last};
  return {false, static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin())};
}

Model first_layers_model(const Model& target, int layers) {
  if (layers < 1 || layers > target.config.n_layer)
    fail("draft model: {} layers outside 1..{} (the target's layers)", layers, target.config.n_layer);
  Model draft;
  draft.config = target.config;
  draft.config.n_layer = layers;
  draft.vocab = target.vocab;
  draft.weights.tok_emb = target.weights.tok_emb;
  draft.weights.layers.assign(target.weights.layers.begin(), target.weights.layers.begin() + layers);
  draft.weights.lnf_w = target.weights.lnf_w;
  draft.weights.lnf_b = target.weights.lnf_b;
  return draft;
}

void check_draft_len(const SpeculativeOptions& s, const std::vector<std::vector<int>>& prompts, int limit) {
  if (s.drafter == Drafter::None) return;
  if (s.draft_len < 1) fail("generate: draft length must be >= 1, got {}", s.draft_len);
  if (s.ngram_max < 1) fail("generate: the n-gram drafter's longest suffix must be >= 1, got {}", s.ngram_max);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const int room = limit - static_cast<int>(prompts[b].size());
    if (s.draft_len > room)
      fail("generate: a draft length of {} does not fit: prompt {} of {} tokens leaves room for {} of {} positions",
           s.draft_len, b, prompts[b].size(), room, limit);
  }
}

void check_draft_model(const SpeculativeOptions& s, int target_vocab_size, const std::vector<std::string>* target_vocab,
                       const std::vector<std::vector<int>>& prompts, int max_new_tokens) {
  if (s.drafter != Drafter::Model) return;
  if (!s.draft_model) fail("generate: the model drafter needs a draft model");
  const Model& d = *s.draft_model;
  if (d.config.vocab_size != target_vocab_size)
    fail("generate: the draft model's vocabulary ({} tokens) differs from the target's ({} tokens)",
         d.config.vocab_size, target_vocab_size);
  if (target_vocab && d.vocab != *target_vocab)
    fail("generate: the draft model's vocabulary differs from the target's (both {} tokens, other words)",
         target_vocab_size);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const int needed = static_cast<int>(prompts[b].size()) + std::max(max_new_tokens - 1, 0);
    if (needed > d.config.max_seq_len)
      fail("generate: prompt {} needs {} positions, more than the draft model's max_seq_len {}", b, needed,
           d.config.max_seq_len);
  }
}

}  // namespace miniinfer
