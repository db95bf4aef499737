// The engine's central claim, tested at its three levels on random models of several shapes:
// with the cache, generated tokens, the logits of every step and every cached K/V row are
// byte-identical to full recompute; and the same for chunked prefill, resume, truncate, fork
// and ragged batches.
#include "engine/engine.h"

#include <limits>
#include <type_traits>

#include <catch2/catch.hpp>

#include "engine/engine_test_util.h"
#include "engine/generate.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

// Every (layer, head, slot) row of sequence `seq` in the cache against the K/V rows a full
// recompute of `tokens` computes. Returns "" or a line naming the first differing row.
std::string compare_cache_rows(Engine& engine, int seq, const std::vector<int>& tokens) {
  KvRows kv;
  engine.forward_uncached(tokens, false, &kv);
  const Config& c = engine.config();
  REQUIRE(engine.cursor(seq) == static_cast<int>(tokens.size()));
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h)
      for (int slot = 0; slot < static_cast<int>(tokens.size()); ++slot) {
        if (auto d = first_byte_difference(engine.cache().k_row(l, seq, h, slot), kv.k_row(l, h, slot)))
          return fmt::format("K differs at layer {} head {} slot {} element {}", l, h, slot, *d);
        if (auto d = first_byte_difference(engine.cache().v_row(l, seq, h, slot), kv.v_row(l, h, slot)))
          return fmt::format("V differs at layer {} head {} slot {} element {}", l, h, slot, *d);
      }
  return "";
}

std::vector<int> concat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("cached generation equals full recompute: tokens, every step's logit bytes, every K/V row") {
  for (const Config& c : test_configs()) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      const Model model = random_model(c, seed);
      Rng rng(seed * 7919);
      const int prompt_len = 1 + static_cast<int>(rng.below(12));
      const std::vector<int> prompt = random_tokens(rng, prompt_len, c.vocab_size);
      GenerateOptions o;
      o.max_new_tokens = 20;
      o.seed = seed;
      o.temperature = seed % 2 ? 0.0f : 0.9f;
      o.return_logits = true;
      Engine engine(model);
      o.cache = true;
      const GenerateResult cached = generate(engine, {prompt}, o);
      const std::string rows = compare_cache_rows(engine, 0, concat(prompt, {cached.tokens[0].begin(), cached.tokens[0].end() - 1}));
      o.cache = false;
      const GenerateResult uncached = generate(model, {prompt}, o);
      INFO(describe(c) << " seed " << seed << " prompt length " << prompt_len << " temperature " << o.temperature);
      CHECK(cached.tokens == uncached.tokens);
      const auto diff = first_byte_difference(cached.logits[0], uncached.logits[0]);
      if (diff) FAIL_CHECK("logits differ at step " << *diff / c.vocab_size << " id " << *diff % c.vocab_size);
      CHECK(rows == "");
    }
  }
}

TEST_CASE("prefill in random chunks (resume) gives the bytes of a one-shot prefill") {
  for (const Config& c : test_configs()) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      const Model model = random_model(c, seed);
      Rng rng(seed * 104729);
      const int T = 2 + static_cast<int>(rng.below(40));
      const std::vector<int> tokens = random_tokens(rng, T, c.vocab_size);
      Engine engine(model);
      const std::vector<float> full = engine.forward_uncached(tokens, true);
      std::vector<float> chunked;
      std::string chunks;
      for (int at = 0; at < T;) {
        const int n = std::min(T - at, 1 + static_cast<int>(rng.below(9)));
        const auto part = engine.forward_cached(0, std::span(tokens).subspan(static_cast<size_t>(at), static_cast<size_t>(n)), true);
        chunked.insert(chunked.end(), part.begin(), part.end());
        chunks += fmt::format("{} ", n);
        at += n;
      }
      INFO(describe(c) << " seed " << seed << " chunks " << chunks);
      const auto diff = first_byte_difference(chunked, full);
      if (diff) FAIL_CHECK("logits differ at position " << *diff / c.vocab_size);
      CHECK(compare_cache_rows(engine, 0, tokens) == "");
    }
  }
}

TEST_CASE("truncate then regenerate equals a fresh run, and fork continues like the original") {
  for (const Config& c : test_configs()) {
    const Model model = random_model(c, 11);
    Rng rng(c.d_model * 31 + c.n_layer);
    const std::vector<int> a = random_tokens(rng, 30, c.vocab_size);
    const std::vector<int> b = random_tokens(rng, 9, c.vocab_size);
    Engine engine(model, {Backend::Invariant, 3, 0, Fault::None, KvLayout::Contiguous, {}});
    INFO(describe(c));
    engine.forward_cached(0, a);
    // Truncate to 17, append b: must equal the uncached forward of a[:17] + b.
    engine.truncate(0, 17);
    const std::vector<int> expected_tokens = concat({a.begin(), a.begin() + 17}, b);
    const auto after_truncate = engine.forward_cached(0, b, true);
    const auto expected = engine.forward_uncached(expected_tokens, true);
    CHECK(same_bytes(after_truncate, std::span(expected).subspan(17 * static_cast<size_t>(c.vocab_size))));
    CHECK(compare_cache_rows(engine, 0, expected_tokens) == "");
    // Fork the first 20 tokens into sequence 2, decode there: equals full recompute of the prefix + token.
    engine.fork(0, 2, 20);
    const int next = b[0];
    const auto forked = engine.forward_cached(2, std::span(&next, 1));
    const std::vector<int> fork_tokens = concat({expected_tokens.begin(), expected_tokens.begin() + 20}, {next});
    CHECK(same_bytes(forked, engine.forward_uncached(fork_tokens)));
    CHECK(compare_cache_rows(engine, 2, fork_tokens) == "");
    CHECK(engine.cursor(0) == 26);  // the source is untouched
    CHECK(compare_cache_rows(engine, 0, expected_tokens) == "");
  }
}

TEST_CASE("a batch of 4 ragged prompts gives each sequence its solo run's bytes, both paths") {
  for (const Config& c : test_configs()) {
    const Model model = random_model(c, 5);
    Rng rng(static_cast<uint64_t>(c.vocab_size));
    std::vector<std::vector<int>> prompts;
    for (int len : {1, 7, 3, 12}) prompts.push_back(random_tokens(rng, len, c.vocab_size));
    GenerateOptions o;
    o.max_new_tokens = 12;
    o.seed = 99;
    o.temperature = 1.0f;
    o.top_k = 10;
    o.return_logits = true;
    for (bool cache : {true, false}) {
      o.cache = cache;
      const GenerateResult batch = generate(model, prompts, o);
      for (size_t i = 0; i < prompts.size(); ++i) {
        // Solo run of prompt i, drawing from the batch's stream for sequence i.
        GenerateOptions solo = o;
        solo.first_stream = i;
        const GenerateResult alone = generate(model, {prompts[i]}, solo);
        INFO(describe(c) << (cache ? " cached" : " uncached") << " sequence " << i);
        CHECK(batch.tokens[i] == alone.tokens[0]);
        CHECK(same_bytes(batch.logits[i], alone.logits[0]));
      }
    }
  }
}

TEST_CASE("full recompute keeps nothing between calls, and a reset engine behaves like a fresh one") {
  const Config c = test_configs()[2];
  const Model model = random_model(c, 3);
  Rng rng(17);
  const auto a = random_tokens(rng, 40, c.vocab_size), b = random_tokens(rng, 13, c.vocab_size);
  Engine fresh(model), used(model);
  used.forward_uncached(a, true);
  CHECK(same_bytes(used.forward_uncached(b, true), fresh.forward_uncached(b, true)));
  used.forward_cached(0, a);
  used.reset();
  CHECK(same_bytes(used.forward_cached(0, b, true), fresh.forward_cached(0, b, true)));
}

TEST_CASE("decode never reads a slot at or past the cursor") {
  const Config c = test_configs()[1];
  const Model model = random_model(c, 8);
  Rng rng(3);
  const auto prompt = random_tokens(rng, 10, c.vocab_size);
  Engine engine(model);
  engine.forward_cached(0, prompt);
  engine.cache().poison_unused(0);  // NaN in every unused slot
  const int next = 4;
  const auto logits = engine.forward_cached(0, std::span(&next, 1));
  CHECK(same_bytes(logits, engine.forward_uncached(concat(prompt, {next}))));
}

TEST_CASE("capacity and max_seq_len errors name the sequence and the limit") {
  const Config c = make_config(20, 8, 1, 2, 16, 32);
  const Model model = random_model(c, 1);
  Engine engine(model, {Backend::Invariant, 3, 16, Fault::None, KvLayout::Contiguous, {}});
  const std::vector<int> sixteen(16, 1), one(1, 2);
  engine.forward_cached(2, sixteen);
  CHECK_THROWS_WITH(engine.forward_cached(2, one), "sequence 2: position 16 exceeds the cache capacity 16 (slots 0..15)");
  CHECK(engine.cursor(2) == 16);  // a refused call changes nothing
  CHECK_THROWS_WITH(engine.forward_uncached(std::vector<int>(33, 1)), "forward: 33 tokens exceed the model's max_seq_len 32");
  CHECK_THROWS_WITH(engine.forward_cached(0, std::vector<int>{1, 20}), "forward: token id 20 out of range (vocab size 20)");
  CHECK_THROWS_WITH(Engine(model, {Backend::Invariant, 1, 33, Fault::None, KvLayout::Contiguous, {}}),
                    "engine: capacity 33 must lie in 1..max_seq_len (32)");
  GenerateOptions o;
  o.max_new_tokens = 20;
  CHECK_THROWS_WITH(generate(model, {std::vector<int>(14, 1)}, o),
                    "generate: prompt 0 has 14 tokens; with 20 new tokens it needs 33 positions, more than 32");
  CHECK(engine.cache().guards_intact());
}

TEST_CASE("a full cache leaves every guard region intact") {
  for (const Config& c : test_configs()) {
    const Model model = random_model(c, 2);
    Engine engine(model, {Backend::Invariant, 2, 0, Fault::None, KvLayout::Contiguous, {}});
    Rng rng(1);
    GenerateOptions o;
    o.max_new_tokens = c.max_seq_len - 5;
    generate(engine, {random_tokens(rng, 6, c.vocab_size), random_tokens(rng, 1, c.vocab_size)}, o);
    INFO(describe(c));
    CHECK(engine.cursor(0) == c.max_seq_len);
    CHECK(engine.cache().guards_intact());
  }
}

TEST_CASE("the eigen backend agrees within tolerance but is not byte-identical (printed, not asserted)") {
  const Config c = test_configs()[5];
  const Model model = random_model(c, 4);
  Rng rng(5);
  const auto tokens = random_tokens(rng, 48, c.vocab_size);
  Engine inv(model), eig(model, {Backend::Eigen, 1, 0, Fault::None, KvLayout::Contiguous, {}});
  const auto a = inv.forward_uncached(tokens, true), b = eig.forward_uncached(tokens, true);
  double max_rel = 0.0;
  size_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_rel = std::max(max_rel, std::abs(static_cast<double>(a[i]) - b[i]) / (std::abs(static_cast<double>(a[i])) + 1.0));
    differing += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  }
  // Eigen's products change summation order (and use FMA): relative to max(|logit|, 1), the
  // drift through 4 layers stays far below 1e-4.
  CHECK(max_rel < 1e-4);
  // Cached vs uncached under eigen: decode runs Eigen's GEMV, prefill its GEMM.
  std::vector<int> prefix(tokens.begin(), tokens.end() - 1);
  eig.forward_cached(0, prefix);
  const auto decoded = eig.forward_cached(0, std::span(tokens).last(1));
  const auto recomputed = eig.forward_uncached(tokens);
  size_t decode_diff = 0;
  for (size_t i = 0; i < decoded.size(); ++i) decode_diff += std::memcmp(&decoded[i], &recomputed[i], 4) != 0;
  WARN("eigen vs invariant (" << describe(c) << ", 48 positions): " << differing << " of " << a.size()
       << " logits differ in bytes, max relative difference " << max_rel << "; eigen decode vs eigen recompute: "
       << decode_diff << " of " << decoded.size() << " logits differ");
}

// ---- hardening: what a user's input can reach is checked in Release, never an assert -----------

TEST_CASE("an engine refuses a model whose tensors do not fit its config, or hold NaN, naming the tensor") {
  const Config c = make_config(20, 8, 2, 2, 16, 32);
  Model model = random_model(c, 1);
  model.weights.layers[1].w2.resize(10);  // fc_out: (D, F) needs 128 floats
  CHECK_THROWS_WITH(Engine(model), "engine: tensor blocks.1.mlp.fc_out.weight: 10 values, but its shape needs 128");
  model = random_model(c, 1);
  model.weights.layers.pop_back();
  CHECK_THROWS_WITH(Engine(model), "engine: weights: 1 layers, but the config has n_layer = 2");
  model = random_model(c, 1);
  model.weights.layers[0].bq[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(Engine(model), "engine: tensor blocks.0.attn.q_proj.bias: value 3 is nan");
}

TEST_CASE("engines and caches cannot be copied (they point into their own buffers)") {
  STATIC_REQUIRE(!std::is_copy_constructible_v<Engine>);
  STATIC_REQUIRE(!std::is_copy_assignable_v<Engine>);
  STATIC_REQUIRE(!std::is_copy_constructible_v<KvCache>);
  STATIC_REQUIRE(!std::is_copy_assignable_v<KvCache>);
  // A moved cache keeps its rows where its pointers say.
  KvCache a(1, 1, 1, 2, 4);
  a.k_slab(0, 0)[0] = 5.0f;
  a.advance(0, 1);
  KvCache b(std::move(a));
  CHECK(b.k_row(0, 0, 0, 0)[0] == 5.0f);
  CHECK(b.guards_intact());
}

TEST_CASE("a batched call that fails in a later group leaves every cursor where it was") {
  // max_seq_len 16 and two chunks of 10 rows: forward_batch runs them as two groups.
  const Config c = make_config(20, 8, 1, 2, 16, 16);
  const Model model = random_model(c, 4);
  Engine engine(model, {Backend::Invariant, 3, 0, Fault::None, KvLayout::Contiguous, {}});
  engine.forward_cached(2, std::vector<int>{1, 2, 3});
  const std::vector<int> ten(10, 1), bad{1, 2, 3, 4, 5, 6, 7, 8, 9, 20};
  std::vector<float> logits(3 * 20);
  const Chunk chunks[] = {{0, ten}, {1, bad}};
  CHECK_THROWS_WITH(engine.forward_batch(chunks, logits), "forward: token id 20 out of range (vocab size 20)");
  CHECK(engine.cursor(0) == 0);
  CHECK(engine.cursor(1) == 0);
  CHECK(engine.cursor(2) == 3);
  const Chunk over[] = {{0, ten}, {2, ten}};  // sequence 2 would need 13 slots of 16: fits
  const Chunk twice[] = {{0, ten}, {2, std::span(ten).first(5)}, {0, std::span(ten).first(1)}};
  CHECK_THROWS_WITH(engine.forward_batch(twice, logits), "forward: sequence 0 appears twice in one batch");
  CHECK(engine.cursor(0) == 0);
  CHECK(engine.cursor(2) == 3);
  engine.forward_batch(over, logits);
  CHECK(engine.cursor(0) == 10);
  CHECK(engine.cursor(2) == 13);
}

TEST_CASE("decode checks its sizes before it touches the logits buffer") {
  const Config c = make_config(20, 8, 1, 2, 16, 16);
  const Model model = random_model(c, 4);
  Engine engine(model, {Backend::Invariant, 2, 0, Fault::None, KvLayout::Contiguous, {}});
  std::vector<float> logits(2 * 20);
  const std::vector<int> seqs(70, 0), tokens(70, 1);
  CHECK_THROWS_WITH(engine.decode(seqs, tokens, logits), "decode: 70 sequences for a batch of 2 sequences");
  const std::vector<int> two{0, 1};
  std::vector<float> short_logits(20);
  engine.forward_cached(0, two);
  engine.forward_cached(1, two);
  CHECK_THROWS_WITH(engine.decode(two, two, short_logits), "forward: logits buffer holds 20 floats, needs 40");
  CHECK(engine.cursor(0) == 2);
  CHECK_THROWS_WITH(engine.cache().k_row(0, 0, 0, 2), "kv cache: sequence 0 holds 2 tokens, slot 2 is not one of them");
  CHECK_THROWS_WITH(engine.cache().v_row(0, 0, 5, 0), "kv cache: head 5 out of range (0..1)");
}

TEST_CASE("generate restores the engine's backend and fault, and stops on NaN logits naming the step") {
  const Config c = make_config(20, 8, 1, 2, 16, 16);
  Model model = random_model(c, 4);
  Engine engine(model, {Backend::Invariant, 1, 0, Fault::None, KvLayout::Contiguous, {}});
  GenerateOptions o;
  o.max_new_tokens = 3;
  o.backend = Backend::Eigen;
  o.fault = Fault::CursorOffByOne;
  generate(engine, {{1, 2}}, o);
  CHECK(engine.backend() == Backend::Invariant);
  CHECK(engine.fault() == Fault::None);
  // Finite weights whose activations overflow: the LayerNorm's mean of 3e38s is inf, then NaN.
  for (float& x : model.weights.tok_emb) x = 3e38f;
  Engine overflowing(model);
  o = GenerateOptions{};
  o.max_new_tokens = 2;
  for (bool cache : {true, false}) {
    o.cache = cache;
    CHECK_THROWS_WITH(generate(overflowing, {{1, 2}}, o),
                      Catch::StartsWith("generate: step 0, sequence 0: the logit of token 0 is "));
  }
}
