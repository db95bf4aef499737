// generate()'s speculative loop, over any engine with Engine's calls vocab_size(),
// forward_cached(seq, tokens, all_rows), verify(seq, tokens) and rollback(seq, keep): our Engine
// (generate.cpp) or an outside engine behind props' EngineUnderTest. One round per verify call:
//   the target's cache holds the prompt and the emitted tokens but the last (the pending token);
//   the drafter proposes k tokens; verify appends [pending, drafts] in one cached call and
//   returns k + 1 logits rows; row j decides generated position s + j; the loop keeps drafts
//   while they are accepted, emits the first correction (or, all accepted, the bonus token
//   from row k), and rolls the target (and the draft engine) back to what it accepted.
// Sequences of a batch run one after another, each on its own cache sequence.
#pragma once
#include <algorithm>
#include <optional>
#include <span>
#include <vector>

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/speculative.h"

namespace miniinfer::detail {

// The row buffers through the span overloads when the engine has them (no allocation per call).
template <class E>
void verify_rows(E& e, int seq, std::span<const int> tokens, std::vector<float>& out) {
  out.resize(tokens.size() * static_cast<size_t>(e.vocab_size()));
  if constexpr (requires { e.verify(seq, tokens, std::span<float>(out)); })
    e.verify(seq, tokens, std::span<float>(out));
  else
    out = e.verify(seq, tokens);
}

// The drafter's side of a round: its proposal and, for the model drafter, q per draft.
struct Drafts {
  std::vector<int> tokens;
  std::vector<float> q;  // (tokens.size(), V): probabilities; point masses for prompt lookup
};

// The draft model on its own cached engine: it catches up on the tokens it has not seen (the
// pending one at least) in one chunk, then decodes its own drafts one by one. Its coins are the
// target's draw coins at the same positions, so a draft equal to the target drafts what plain
// sampling would emit.
class ModelDrafter {
 public:
  ModelDrafter(const Model& model, int batch, int threads)
      : engine_(model, EngineOptions{Backend::Invariant, batch, 0, Fault::None, KvLayout::Contiguous, {}, threads}),
        V_(static_cast<size_t>(model.config.vocab_size)) {}

  void start(int seq) { engine_.start_request(seq); }
  void propose(int seq, std::span<const int> context, int k, int position, const Rng& coins,
               const SamplerOptions& so, Drafts& d) {
    d.tokens.clear();
    d.q.assign(static_cast<size_t>(k) * V_, 0.0f);
    row_.resize(V_);
    std::span<const int> feed = context.subspan(static_cast<size_t>(engine_.cursor(seq)));
    for (int i = 0; i < k; ++i) {
      engine_.forward_cached(seq, feed, row_);
      const int x = sample(row_, so, draw_coin(coins, position + i), scratch_);
      probabilities(row_, so, std::span(d.q).subspan(static_cast<size_t>(i) * V_, V_), scratch_);
      d.tokens.push_back(x);
      feed = std::span<const int>(&d.tokens.back(), 1);
    }
  }
  // Keep at most `keep` tokens (what the target accepted; drafts past it go).
  void rollback(int seq, int keep) {
    if (engine_.cursor(seq) > keep) engine_.rollback(seq, keep);
  }

 private:
  Engine engine_;
  size_t V_;
  std::vector<float> row_;
  SamplerScratch scratch_;
};

// Prompt lookup's q: a point mass at each draft.
inline void point_masses(Drafts& d, size_t V) {
  d.q.assign(d.tokens.size() * V, 0.0f);
  for (size_t i = 0; i < d.tokens.size(); ++i) d.q[i * V + static_cast<size_t>(d.tokens[i])] = 1.0f;
}

template <class E>
void speculate_sequence(E& target, ModelDrafter* drafter, size_t b, const std::vector<int>& prompt,
                        const GenerateOptions& o, GenerateResult& result) {
  const int seq = static_cast<int>(b), P = static_cast<int>(prompt.size());
  const size_t V = static_cast<size_t>(target.vocab_size());
  const SpeculativeOptions& so = o.speculative;
  const SamplerOptions sampler{o.temperature, o.top_k, o.top_p};
  const Rng coins = Rng::stream(o.seed, o.first_stream + b), accepts = accept_stream(o.seed, o.first_stream + b);
  std::vector<int> context(prompt), call;
  std::vector<float> rows, p(V);
  SamplerScratch scratch;
  Drafts d;
  if (o.trace) o.trace->step = 0;
  if (P > 1) target.forward_cached(seq, std::span(prompt).first(static_cast<size_t>(P - 1)), false);
  if (drafter) drafter->start(seq);
  auto emit = [&](int token, std::span<const float> row) {
    context.push_back(token);
    result.tokens[b].push_back(token);
    if (o.return_logits) result.logits[b].insert(result.logits[b].end(), row.begin(), row.end());
  };
  for (int s = 0; s < o.max_new_tokens;) {
    const int k = std::min(so.draft_len, o.max_new_tokens - s - 1);
    if (drafter) {
      drafter->propose(seq, context, k, s, coins, sampler, d);
    } else {
      d.tokens = k > 0 ? ngram_draft(context, so.ngram_max, k) : std::vector<int>{};
      point_masses(d, V);
    }
    const int n = static_cast<int>(d.tokens.size());
    call.assign(1, context.back());
    call.insert(call.end(), d.tokens.begin(), d.tokens.end());
    if (o.trace) o.trace->step = s;
    verify_rows(target, seq, call, rows);
    int j = 0;
    for (; j <= n; ++j) {
      const std::span<const float> row(rows.data() + static_cast<size_t>(j) * V, V);
      if (j == n) {  // every draft accepted: the bonus token, drawn as plain sampling draws it
        emit(sample(row, sampler, draw_coin(coins, s + j), scratch), row);
        break;
      }
      probabilities(row, sampler, p, scratch);
      const Decision dec = speculative_decide(p, std::span(d.q).subspan(static_cast<size_t>(j) * V, V), d.tokens[j],
                                              accepts.uniform_at(static_cast<uint64_t>(s + j)), draw_coin(coins, s + j));
      emit(dec.token, row);
      if (!dec.accepted) break;
    }
    const int accepted = std::min(j, n), keep = P + s + accepted;
    result.speculative.rounds += 1;
    result.speculative.drafted += n;
    result.speculative.accepted += accepted;
    if (accepted < n) target.rollback(seq, keep);
    if (drafter) drafter->rollback(seq, keep);
    s += accepted + 1;
  }
}

// Every sequence's speculative generation, one after another.
template <class E>
void generate_speculative(E& target, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o,
                          GenerateResult& result) {
  std::optional<ModelDrafter> drafter;
  if (o.speculative.drafter == Drafter::Model)
    drafter.emplace(*o.speculative.draft_model, static_cast<int>(prompts.size()), o.threads);
  for (size_t b = 0; b < prompts.size(); ++b)
    speculate_sequence(target, drafter ? &*drafter : nullptr, b, prompts[b], o, result);
}

}  // namespace miniinfer::detail
