// Speculative decoding is exact by construction: greedy speculative generation emits plain
// cached decode's tokens with bitwise the same logits at every position (and full recompute's),
// for both drafters, many draft lengths, random prompts and batches; with sampling, the tokens
// are a pure function of the seed, prompt and drafter, every emitted position's logits are full
// recompute's, and a draft equal to the target emits plain sampling's tokens. Each of the two
// speculative faults breaks these comparisons.
#include "engine/speculative.h"

#include <catch2/catch.hpp>

#include "base/error.h"
#include "engine/engine_test_util.h"
#include "engine/generate.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

// A prompt with a repeated stretch, so prompt lookup has something to find.
std::vector<int> repetitive_prompt(Rng& rng, int V) {
  std::vector<int> head = random_tokens(rng, 4, V), p = random_tokens(rng, 3, V);
  p.insert(p.end(), head.begin(), head.end());
  p.push_back(static_cast<int>(rng.below(static_cast<uint32_t>(V))));
  p.insert(p.end(), head.begin(), head.end());
  return p;
}

GenerateOptions base_options(int max_new, float temperature) {
  GenerateOptions o;
  o.max_new_tokens = max_new;
  o.seed = 11;
  o.temperature = temperature;
  o.return_logits = true;
  return o;
}

GenerateOptions with_drafter(GenerateOptions o, Drafter d, int k, const Model* draft) {
  o.speculative.drafter = d;
  o.speculative.draft_len = k;
  o.speculative.draft_model = draft;
  return o;
}

// "" or the first way `got` differs from `want`: a token or a logit byte.
std::string differs(const GenerateResult& got, const GenerateResult& want, int V) {
  for (size_t b = 0; b < want.tokens.size(); ++b) {
    if (got.tokens[b] != want.tokens[b]) return fmt::format("tokens of sequence {}", b);
    if (auto d = first_byte_difference(got.logits[b], want.logits[b]))
      return fmt::format("logit bytes of sequence {} at position {}", b, *d / static_cast<size_t>(V));
  }
  return "";
}

// Full recompute of every emitted position's context (prompt and tokens so far), in one pass.
std::string differs_from_recompute(Engine& e, const std::vector<int>& prompt, const GenerateResult& r, size_t b) {
  std::vector<int> all = prompt;
  all.insert(all.end(), r.tokens[b].begin(), r.tokens[b].end() - 1);
  const std::vector<float> full = e.forward_uncached(all, true);
  const size_t V = static_cast<size_t>(e.vocab_size());
  const std::span<const float> tail = std::span(full).subspan((prompt.size() - 1) * V);
  if (auto d = first_byte_difference(r.logits[b], tail)) return fmt::format("position {}", *d / V);
  return "";
}

}  // namespace

TEST_CASE("prompt lookup proposes what followed the latest earlier occurrence of the longest suffix") {
  const std::vector<int> ctx = {1, 2, 3, 9, 1, 2, 3, 7, 5, 2, 3};
  CHECK(ngram_draft(ctx, 3, 4) == std::vector<int>{7, 5, 2, 3});    // "2 3" last seen before 7
  CHECK(ngram_draft(ctx, 3, 2) == std::vector<int>{7, 5});
  CHECK(ngram_draft(ctx, 1, 1) == std::vector<int>{7});             // "3" last seen before 7
  CHECK(ngram_draft(std::vector<int>{4, 4}, 3, 3) == std::vector<int>{4});  // runs into the suffix
  CHECK(ngram_draft(std::vector<int>{1, 2, 3}, 3, 3).empty());
  CHECK(ngram_draft(std::vector<int>{5}, 3, 3).empty());
}

TEST_CASE("the coins are indexed by position: draw coins are plain generation's, acceptance coins another stream") {
  Rng stream = Rng::stream(11, 3);
  const Rng fixed = stream;
  for (int s = 0; s < 20; ++s) CHECK(draw_coin(fixed, s) == stream.uniform());
  CHECK(accept_stream(11, 3).uniform_at(0) != fixed.uniform_at(0));
}

TEST_CASE("greedy speculative generation is plain cached decode and full recompute, bitwise, for both drafters") {
  for (const Config& c : {make_config(37, 8, 2, 4, 13, 96), make_config(101, 64, 3, 8, 256, 96)}) {
    const Model model = random_model(c, 3);
    const Model one_layer = first_layers_model(model, 1);
    Engine engine(model, {Backend::Invariant, 2, 0, Fault::None, KvLayout::Contiguous, {}, 2});
    Rng rng(5);
    for (int trial = 0; trial < 3; ++trial) {
      const std::vector<std::vector<int>> prompts = {repetitive_prompt(rng, c.vocab_size),
                                                     random_tokens(rng, 1 + trial, c.vocab_size)};
      const GenerateOptions plain = base_options(24, 0.0f);
      const GenerateResult want = generate(engine, prompts, plain);
      for (Drafter d : {Drafter::Ngram, Drafter::Model})
        for (const Model* draft : {&one_layer, &model})
          for (int k : {1, 2, 3, 4, 8}) {
            if (d == Drafter::Ngram && draft != &model) continue;
            const GenerateResult got = generate(engine, prompts, with_drafter(plain, d, k, draft));
            INFO(describe(c) << " drafter " << to_string(d) << " layers " << draft->config.n_layer << " k " << k);
            CHECK(differs(got, want, c.vocab_size) == "");
            for (size_t b = 0; b < prompts.size(); ++b) CHECK(differs_from_recompute(engine, prompts[b], got, b) == "");
            CHECK(got.speculative.accepted <= got.speculative.drafted);
            if (draft == &model && d == Drafter::Model) CHECK(got.speculative.accepted == got.speculative.drafted);
          }
    }
  }
}

TEST_CASE("a batch's speculative sequences equal each sequence run alone, on both cache layouts") {
  const Config c = make_config(50, 24, 2, 3, 40, 64);
  const Model model = random_model(c, 8), draft = first_layers_model(model, 1);
  Rng rng(9);
  const std::vector<std::vector<int>> prompts = {repetitive_prompt(rng, 50), random_tokens(rng, 6, 50),
                                                 random_tokens(rng, 2, 50)};
  for (KvLayout layout : {KvLayout::Contiguous, KvLayout::Paged}) {
    GenerateOptions o = with_drafter(base_options(16, 0.9f), Drafter::Model, 3, &draft);
    o.layout = layout;
    o.paged.block_size = 4;
    const GenerateResult all = generate(model, prompts, o);
    for (size_t b = 0; b < prompts.size(); ++b) {
      o.first_stream = b;
      const GenerateResult alone = generate(model, {prompts[b]}, o);
      INFO("layout " << to_string(layout) << " sequence " << b);
      CHECK(alone.tokens[0] == all.tokens[b]);
      CHECK(same_bytes(alone.logits[0], all.logits[b]));
    }
  }
}

TEST_CASE("speculative sampling: a pure function of seed, prompt and drafter, at full recompute's logits") {
  const Config c = make_config(37, 8, 2, 4, 13, 96);
  const Model model = random_model(c, 4), draft = first_layers_model(model, 1);
  Rng rng(6);
  const std::vector<int> prompt = repetitive_prompt(rng, c.vocab_size);
  for (Drafter d : {Drafter::Ngram, Drafter::Model})
    for (int k : {1, 3, 6}) {
      GenerateOptions o = with_drafter(base_options(30, 0.8f), d, k, &draft);
      o.top_k = 20;
      o.threads = 1;
      const GenerateResult one = generate(model, {prompt}, o);
      o.threads = 3;
      const GenerateResult three = generate(model, {prompt}, o);
      Engine engine(model);
      INFO("drafter " << to_string(d) << " k " << k);
      CHECK(differs(three, one, c.vocab_size) == "");
      CHECK(differs_from_recompute(engine, prompt, one, 0) == "");
      o.seed = 12;
      CHECK(generate(model, {prompt}, o).tokens != one.tokens);  // the seed matters
    }
}

TEST_CASE("a draft equal to the target accepts every draft and emits plain sampling's tokens") {
  const Config c = make_config(65, 48, 2, 2, 17, 96);
  const Model model = random_model(c, 7);
  Rng rng(2);
  const std::vector<int> prompt = random_tokens(rng, 5, c.vocab_size);
  GenerateOptions plain = base_options(40, 1.0f);
  plain.top_p = 0.9f;
  const GenerateResult want = generate(model, {prompt}, plain);
  for (int k : {1, 4, 8}) {
    const GenerateResult got = generate(model, {prompt}, with_drafter(plain, Drafter::Model, k, &model));
    INFO("k " << k);
    CHECK(differs(got, want, c.vocab_size) == "");
    CHECK(got.speculative.accepted == got.speculative.drafted);
  }
}

TEST_CASE("speculative rejection sampling draws from p whatever q is") {
  // p and q on four tokens; the draft drawn from q with one coin, then decided with two more.
  const std::vector<float> p = {0.1f, 0.4f, 0.3f, 0.2f}, q = {0.4f, 0.1f, 0.1f, 0.4f};
  const SamplerOptions so{1.0f, 0, 1.0f};
  std::vector<float> logits_q(4);
  for (size_t i = 0; i < 4; ++i) logits_q[i] = std::log(q[i]);
  Rng rng(13);
  std::vector<int> counts(4, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const int x = sample(logits_q, so, rng.uniform());
    const float a = rng.uniform(), u = rng.uniform();
    counts[static_cast<size_t>(speculative_decide(p, q, x, a, u).token)] += 1;
  }
  for (size_t i = 0; i < 4; ++i) {
    INFO("token " << i << " drawn " << counts[i] << " times of " << n);
    CHECK(std::abs(static_cast<double>(counts[i]) / n - p[i]) < 0.005);  // ~5 standard errors
  }
}

TEST_CASE("the speculative faults break greedy speculative generation's equality with plain decode") {
  const Config c = make_config(101, 64, 3, 8, 256, 96);
  const Model model = random_model(c, 3), draft = first_layers_model(model, 1);
  Rng rng(5);
  const std::vector<std::vector<int>> prompts = {repetitive_prompt(rng, c.vocab_size)};
  // (Short enough that rollback-cursor's unrolled rows stay within the cache's 96 slots.)
  const GenerateResult want = generate(model, prompts, base_options(12, 0.0f));
  for (Fault f : {Fault::VerifyPositionShift, Fault::RollbackCursor}) {
    GenerateOptions o = with_drafter(base_options(12, 0.0f), Drafter::Model, 3, &draft);
    o.fault = f;
    const GenerateResult got = generate(model, prompts, o);
    INFO("fault " << to_string(f));
    CHECK(got.speculative.accepted < got.speculative.drafted);  // a rollback happened
    CHECK(differs(got, want, c.vocab_size) != "");
  }
}

TEST_CASE("the first-layers draft with every layer is the target; a bad layer count is refused") {
  const Config c = make_config(37, 8, 2, 4, 13, 32);
  const Model model = random_model(c, 1);
  Rng rng(1);
  const auto tokens = random_tokens(rng, 7, c.vocab_size);
  Engine a(model), b(first_layers_model(model, 2));
  CHECK(same_bytes(a.forward_uncached(tokens, true), b.forward_uncached(tokens, true)));
  Engine one(first_layers_model(model, 1));
  CHECK(one.config().n_layer == 1);
  CHECK_THROWS_WITH(first_layers_model(model, 0), "draft model: 0 layers outside 1..2 (the target's layers)");
  CHECK_THROWS_WITH(first_layers_model(model, 3), "draft model: 3 layers outside 1..2 (the target's layers)");
}

TEST_CASE("bad speculative settings are one-line errors naming the problem") {
  const Config c = make_config(37, 8, 2, 4, 13, 32);
  const Model model = random_model(c, 1), other = random_model(make_config(38, 8, 1, 4, 13, 32), 1);
  const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}};
  const GenerateOptions o = base_options(4, 0.0f);
  CHECK_THROWS_WITH(generate(model, prompts, with_drafter(o, Drafter::Ngram, 0, nullptr)),
                    "generate: draft length must be >= 1, got 0");
  CHECK_THROWS_WITH(generate(model, prompts, with_drafter(o, Drafter::Ngram, 23, nullptr)),
                    "generate: a draft length of 23 does not fit: prompt 0 of 10 tokens leaves room for 22 of 32 positions");
  CHECK_THROWS_WITH(generate(model, prompts, with_drafter(o, Drafter::Model, 2, &other)),
                    "generate: the draft model's vocabulary (38 tokens) differs from the target's (37 tokens)");
  CHECK_THROWS_WITH(generate(model, prompts, with_drafter(o, Drafter::Model, 2, nullptr)),
                    "generate: the model drafter needs a draft model");
  GenerateOptions uncached = with_drafter(o, Drafter::Ngram, 2, nullptr);
  uncached.cache = false;
  CHECK_THROWS_WITH(generate(model, prompts, uncached), "generate: speculative decoding needs the cache");
  CHECK_THROWS_WITH(drafter_from_name("lookup"), "unknown drafter 'lookup' (known: none, ngram, model)");
}

TEST_CASE("a verify call is its own pass: traced as verify, and rollback keeps exactly the rows asked for") {
  const Config c = make_config(37, 8, 2, 4, 13, 32);
  const Model model = random_model(c, 1);
  Rng rng(3);
  const auto tokens = random_tokens(rng, 9, c.vocab_size);
  Engine engine(model);
  engine.forward_cached(0, std::span(tokens).first(4));
  Trace trace;
  engine.set_trace(&trace);
  engine.verify(0, std::span(tokens).subspan(4, 5));
  engine.set_trace(nullptr);
  REQUIRE(!trace.records.empty());
  for (const TraceRecord& r : trace.records) CHECK(r.pass == Pass::Verify);
  CHECK(std::string(to_string(Pass::Verify)) == "verify");
  CHECK(engine.cursor(0) == 9);
  engine.rollback(0, 6);
  CHECK(engine.cursor(0) == 6);
  CHECK_THROWS_WITH(engine.rollback(0, 7), "sequence 0: cannot truncate to 7 tokens, it holds 6");
}
