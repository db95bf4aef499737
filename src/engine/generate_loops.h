// generate()'s two loops, over any engine with Engine's calls: vocab_size(), forward_batch(chunks,
// logits), decode(seqs, tokens, logits) and forward_uncached(tokens, logits). generate.cpp runs
// them on our Engine; props runs them on an outside engine (props/engines.h), so both
// engines are driven by the very same loops and sampler.
#pragma once
#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "engine/generate.h"
#include "engine/speculative_loop.h"

namespace miniinfer {

namespace detail {

// generate()'s checks of a request, before anything runs: sampler options, prompt count
// against the engine's `batch`, each prompt's length plus new tokens against `limit` positions.
inline void check_request(const std::vector<std::vector<int>>& prompts, const GenerateOptions& o, int batch,
                          int limit) {
  validate(SamplerOptions{o.temperature, o.top_k, o.top_p});
  if (o.max_new_tokens < 0) fail("generate: max_new_tokens must be >= 0, got {}", o.max_new_tokens);
  if (o.speculative.drafter != Drafter::None && !o.cache) fail("generate: speculative decoding needs the cache");
  if (o.speculative.drafter != Drafter::None && o.coins)
    fail("generate: speculative decoding draws its own coins (no coin source)");
  if (prompts.empty()) fail("generate: no prompts");
  if (prompts.size() > static_cast<size_t>(batch))
    fail("generate: {} prompts for an engine of batch size {}", prompts.size(), batch);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const int len = static_cast<int>(prompts[b].size());
    if (len == 0) fail("generate: prompt {} is empty", b);
    const int needed = len + std::max(o.max_new_tokens - 1, 0);
    if (needed > limit)
      fail("generate: prompt {} has {} tokens; with {} new tokens it needs {} positions, more than {}", b, len,
           o.max_new_tokens, needed, limit);
  }
  check_draft_len(o.speculative, prompts, limit);
}

struct Sampling {
  SamplerOptions options;
  std::vector<Rng> streams;  // one per sequence
  SamplerScratch scratch;
  const CoinSource* source = nullptr;
  bool stale_coin = false;    // the stale-coin fault (cached loop only): step s draws with s-1's coin
  std::vector<float> last;    // per sequence: the previous draw's coin (stale_coin only)
  // The only way either loop turns logits into a token. One coin per generated token, greedy
  // or not, so both paths consume streams identically.
  int draw(int step, size_t seq, std::span<const float> logits) {
    float coin = streams[seq].uniform();
    for (size_t i = 0; i < logits.size(); ++i)
      if (!std::isfinite(logits[i]))
        fail("generate: step {}, sequence {}: the logit of token {} is {} (no token can be drawn)", step, seq, i,
             logits[i]);
    if (source && *source) coin = (*source)(step, seq, logits, coin);
    if (stale_coin) {
      if (last.size() <= seq) last.resize(seq + 1, 0.0f);
      coin = stale_coin_draw(coin, last[seq], step == 0);
    }
    return sample(logits, options, coin, scratch);
  }
};

inline void keep_logits(GenerateResult& result, size_t seq, std::span<const float> row, bool wanted) {
  if (wanted) result.logits[seq].insert(result.logits[seq].end(), row.begin(), row.end());
}

template <class E>
void generate_cached(E& engine, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o,
                     Sampling& sampling, GenerateResult& result) {
  const size_t B = prompts.size(), V = static_cast<size_t>(engine.vocab_size());
  std::vector<float> logits(B * V);
  std::vector<Chunk> chunks(B);
  std::vector<int> seqs(B), last(B);
  for (size_t b = 0; b < B; ++b) {
    chunks[b] = Chunk{static_cast<int>(b), prompts[b]};
    seqs[b] = static_cast<int>(b);
  }
  sampling.stale_coin = variation(o.fault).stale_coin();
  if (o.trace) o.trace->step = 0;
  engine.forward_batch(chunks, logits);
  for (int step = 0; step < o.max_new_tokens; ++step) {
    if (step > 0) {
      if (o.trace) o.trace->step = step;
      engine.decode(seqs, last, logits);
    }
    for (size_t b = 0; b < B; ++b) {
      const std::span<const float> row(logits.data() + b * V, V);
      last[b] = sampling.draw(step, b, row);
      result.tokens[b].push_back(last[b]);
      keep_logits(result, b, row, o.return_logits);
    }
  }
}

template <class E>
void generate_uncached(E& engine, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o,
                       Sampling& sampling, GenerateResult& result) {
  const size_t B = prompts.size(), V = static_cast<size_t>(engine.vocab_size());
  std::vector<float> logits(V);
  std::vector<std::vector<int>> sequences(prompts);
  for (auto& s : sequences) s.reserve(s.size() + static_cast<size_t>(o.max_new_tokens));
  for (int step = 0; step < o.max_new_tokens; ++step) {
    for (size_t b = 0; b < B; ++b) {
      if (o.trace) {
        o.trace->step = step;
        o.trace->seq = static_cast<int>(b);
      }
      engine.forward_uncached(sequences[b], logits);  // the whole sequence so far, from scratch
      const int token = sampling.draw(step, b, logits);
      sequences[b].push_back(token);
      result.tokens[b].push_back(token);
      keep_logits(result, b, logits, o.return_logits);
    }
  }
}

// The result's buffers, one coin stream per prompt (Rng::stream(seed, first_stream + i)), and
// the cached or the uncached loop: what generate() does once the engine is set up and reset.
template <class E>
GenerateResult run_loops(E& engine, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) {
  GenerateResult result;
  result.tokens.resize(prompts.size());
  for (auto& t : result.tokens) t.reserve(static_cast<size_t>(o.max_new_tokens));
  if (o.return_logits) {
    result.logits.resize(prompts.size());
    for (auto& l : result.logits) l.reserve(static_cast<size_t>(o.max_new_tokens) * engine.vocab_size());
  }
  Sampling sampling{{o.temperature, o.top_k, o.top_p}, {}, {}, &o.coins, false, {}};
  for (size_t b = 0; b < prompts.size(); ++b) sampling.streams.push_back(Rng::stream(o.seed, o.first_stream + b));
  check_draft_model(o.speculative, engine.vocab_size(), nullptr, prompts, o.max_new_tokens);
  if (o.max_new_tokens > 0) {
    if (o.speculative.drafter != Drafter::None)
      generate_speculative(engine, prompts, o, result);
    else if (o.cache)
      generate_cached(engine, prompts, o, sampling, result);
    else
      generate_uncached(engine, prompts, o, sampling, result);
  }
  return result;
}

}  // namespace detail

}  // namespace miniinfer
