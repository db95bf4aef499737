// The tokenize engine's translation (props/engine_tokenized.h) over ours: words of one to three
// engine tokens, every word position translated, the logits of a word end picked at each word's
// first token. Ours is exact, so every cached path through the translation equals full
// recompute bit for bit, and a word's logits are the engine row's bytes at word ends.
#include "props/engine_tokenized.h"

#include <catch2/catch.hpp>
#include <cstring>

#include "base/error.h"
#include "engine/engine_test_util.h"
#include "props/engine_registry.h"

using namespace miniinfer;
using namespace miniinfer::props;

namespace {

Model small_model() {
  return init_model(testing::make_config(16, 32, 2, 2, 64, 32), testing::made_up_vocab(16), 7);
}

// Four words over the model's 16 tokens: 1, 2 and 3 tokens long.
const std::vector<std::vector<int>> kWords = {{1}, {2, 3}, {4, 5, 6}, {7, 3}};

std::vector<int> tokens_of(const std::vector<int>& words) {
  std::vector<int> out;
  for (int w : words)
    out.insert(out.end(), kWords[static_cast<size_t>(w)].begin(), kWords[static_cast<size_t>(w)].end());
  return out;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("a tokenize engine: words translate to the engine's tokens and positions, bit for bit",
          "[engines]") {
  const Model model = small_model();
  const nlohmann::json settings = {{"backend", "invariant"}, {"fault", "none"}};
  auto inner = find_engine("miniinfer")->make(settings, model, 4, 32);
  EngineUnderTest* raw = inner.get();
  Config words_config = model.config;
  words_config.vocab_size = static_cast<int>(kWords.size());
  words_config.max_seq_len = 10;
  const auto e = tokenized_engine(std::move(inner), kWords, words_config, 10);
  CHECK(e->vocab_size() == 4);
  CHECK(e->max_seq_len() == 10);  // 32 engine positions / 3 tokens at most a word, and the model's 10
  CHECK_FALSE(e->has(Capability::KvRows));
  CHECK_FALSE(e->has(Capability::Trace));

  const std::vector<int> A = {0, 2, 1, 3, 2}, B = {3, 1};
  SECTION("a word's logit is the engine's logit of its first token, at the word's last token") {
    const std::vector<float> words = e->forward_uncached(A, true);
    const std::vector<float> rows = raw->forward_uncached(tokens_of(A), true);
    size_t end = 0;
    for (size_t i = 0; i < A.size(); ++i) {
      end += kWords[static_cast<size_t>(A[i])].size();
      for (size_t w = 0; w < kWords.size(); ++w)
        CHECK(words[i * 4 + w] == rows[(end - 1) * 16 + static_cast<size_t>(kWords[w][0])]);
    }
  }
  SECTION("cached words equal recompute; cursors count words") {
    e->reset();
    CHECK(same_bytes(e->forward_cached(0, A, true), e->forward_uncached(A, true)));
    CHECK(e->cursor(0) == 5);
    CHECK(raw->cursor(0) == static_cast<int>(tokens_of(A).size()));
    std::vector<float> out(4);
    e->decode(std::vector<int>{0}, std::vector<int>{2}, out);  // a word of three tokens
    std::vector<int> A2 = A;
    A2.push_back(2);
    CHECK(same_bytes(out, e->forward_uncached(A2, false)));
  }
  SECTION("truncate and fork take word positions") {
    e->reset();
    e->forward_cached(0, A);
    e->truncate(0, 2);
    CHECK(raw->cursor(0) == 4);  // words 0 and 2: 1 + 3 tokens
    std::vector<int> AB = {A[0], A[1], B[0], B[1]};
    CHECK(same_bytes(e->forward_cached(0, B), e->forward_uncached(AB, false)));
    e->forward_cached(1, B);  // older rows the fork replaces
    e->fork(0, 1, 3);
    CHECK(e->cursor(1) == 3);
    std::vector<float> two(8);
    e->decode(std::vector<int>{1, 0}, std::vector<int>{1, 3}, two);
    CHECK(same_bytes(std::vector<float>(two.begin(), two.begin() + 4),
                     e->forward_uncached(std::vector<int>{A[0], A[1], B[0], 1}, false)));
    CHECK(same_bytes(std::vector<float>(two.begin() + 4, two.end()),
                     e->forward_uncached(std::vector<int>{A[0], A[1], B[0], B[1], 3}, false)));
    CHECK_THROWS_AS(e->truncate(0, 6), Error);
    CHECK_THROWS_AS(e->fork(0, 2, 6), Error);
  }
  SECTION("generate runs the same loops, and cached equals uncached") {
    GenerateOptions o;
    o.max_new_tokens = 6;
    o.return_logits = true;
    o.cache = true;
    const GenerateResult cached = e->generate({A, B}, o);
    o.cache = false;
    const GenerateResult uncached = e->generate({A, B}, o);
    CHECK(cached.tokens == uncached.tokens);
    CHECK(cached.logits == uncached.logits);
  }
}
