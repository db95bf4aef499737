// generate(): the two paths as two separate loops. They share the sampler and the per-sequence
// coin streams, never a forward: the cached loop calls prefill/decode, the uncached loop calls a
// full recompute of each sequence at every step.
#include "engine/generate.h"

#include <cmath>

#include "base/error.h"
#include "base/rng.h"

namespace miniinfer {

namespace {

struct Sampling {
  SamplerOptions options;
  std::vector<Rng> streams;  // one per sequence
  SamplerScratch scratch;
  const CoinSource* source = nullptr;
  // The only way either loop turns logits into a token. One coin per generated token, greedy
  // or not, so both paths consume streams identically.
  int draw(int step, size_t seq, std::span<const float> logits) {
    float coin = streams[seq].uniform();
    for (size_t i = 0; i < logits.size(); ++i)
      if (!std::isfinite(logits[i]))
        fail("generate: step {}, sequence {}: the logit of token {} is {} (no token can be drawn)", step, seq, i,
             logits[i]);
    if (source && *source) coin = (*source)(step, seq, logits, coin);
    return sample(logits, options, coin, scratch);
  }
};

void keep_logits(GenerateResult& result, size_t seq, std::span<const float> row, bool wanted) {
  if (wanted) result.logits[seq].insert(result.logits[seq].end(), row.begin(), row.end());
}

void generate_cached(Engine& engine, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o,
                     Sampling& sampling, GenerateResult& result) {
  const size_t B = prompts.size(), V = static_cast<size_t>(engine.vocab_size());
  std::vector<float> logits(B * V);
  std::vector<Chunk> chunks(B);
  std::vector<int> seqs(B), last(B);
  for (size_t b = 0; b < B; ++b) {
    chunks[b] = Chunk{static_cast<int>(b), prompts[b]};
    seqs[b] = static_cast<int>(b);
  }
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

void generate_uncached(Engine& engine, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o,
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

}  // namespace

GenerateResult generate(Engine& engine, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) {
  const SamplerOptions sampler{o.temperature, o.top_k, o.top_p};
  validate(sampler);
  if (o.max_new_tokens < 0) fail("generate: max_new_tokens must be >= 0, got {}", o.max_new_tokens);
  if (prompts.empty()) fail("generate: no prompts");
  if (prompts.size() > static_cast<size_t>(engine.batch()))
    fail("generate: {} prompts for an engine of batch size {}", prompts.size(), engine.batch());
  const int limit = o.cache ? engine.capacity() : engine.config().max_seq_len;
  for (size_t b = 0; b < prompts.size(); ++b) {
    const int len = static_cast<int>(prompts[b].size());
    if (len == 0) fail("generate: prompt {} is empty", b);
    const int needed = len + std::max(o.max_new_tokens - 1, 0);
    if (needed > limit)
      fail("generate: prompt {} has {} tokens; with {} new tokens it needs {} positions, more than {}", b, len,
           o.max_new_tokens, needed, limit);
  }

  // The backend, fault and trace belong to this call only: however it ends, the engine gets
  // back the ones it had.
  struct Restore {
    Engine& e;
    Backend backend;
    Fault fault;
    Trace* trace;
    ~Restore() {
      e.set_backend(backend);
      e.set_fault(fault);
      e.set_trace(trace);
    }
  } restore{engine, engine.backend(), engine.fault(), engine.trace()};
  engine.set_backend(o.backend);
  engine.set_fault(o.fault);
  engine.set_trace(o.trace);
  if (o.fault != Fault::StaleCache) engine.reset();  // fault: stale-cache skips this reset

  GenerateResult result;
  result.tokens.resize(prompts.size());
  for (auto& t : result.tokens) t.reserve(static_cast<size_t>(o.max_new_tokens));
  if (o.return_logits) {
    result.logits.resize(prompts.size());
    for (auto& l : result.logits) l.reserve(static_cast<size_t>(o.max_new_tokens) * engine.vocab_size());
  }
  Sampling sampling{sampler, {}, {}, &o.coins};
  for (size_t b = 0; b < prompts.size(); ++b) sampling.streams.push_back(Rng::stream(o.seed, o.first_stream + b));

  if (o.max_new_tokens > 0) {
    if (o.cache)
      generate_cached(engine, prompts, o, sampling, result);
    else
      generate_uncached(engine, prompts, o, sampling, result);
  }
  return result;
}

GenerateResult generate(const Model& model, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) {
  EngineOptions eo;
  eo.backend = o.backend;
  eo.batch = std::max<int>(1, static_cast<int>(prompts.size()));
  eo.fault = o.fault;
  Engine engine(model, eo);
  return generate(engine, prompts, o);
}

}  // namespace miniinfer
