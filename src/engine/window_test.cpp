// The sliding window with attention sinks (window.h): the cached path, whose cache holds the
// sinks and a ring of recent positions, gives the bytes of full recompute under the same mask,
// through many wraps, chunks cut at every offset of the ring, truncation, fork, batched decode
// of sequences at different ring phases and any thread count; and the window's two faults part
// the paths.
#include <catch2/catch.hpp>

#include "base/error.h"
#include "engine/engine.h"
#include "engine/engine_test_util.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

const Config kConfig = make_config(41, 16, 2, 2, 24, 96);
const Model& model() {
  static const Model m = random_model(kConfig, 31);
  return m;
}

EngineOptions windowed(int window, int sinks, int batch = 1, int spare = -1) {
  EngineOptions o;
  o.window = window;
  o.sinks = sinks;
  o.batch = batch;
  o.window_spare = spare;
  return o;
}

std::span<const float> row(const std::vector<float>& logits, int i) {
  return {logits.data() + static_cast<size_t>(i) * kConfig.vocab_size, static_cast<size_t>(kConfig.vocab_size)};
}

// The held K/V rows of `seq` against full recompute's rows of `tokens` (its whole history); ""
// or a line naming the first difference. Counts the positions compared in `held`.
std::string compare_held(Engine& e, int seq, std::span<const int> tokens, int* held = nullptr) {
  KvRows ref;
  e.forward_uncached(tokens, false, &ref);
  const KvRows got = e.cache_rows(seq);
  REQUIRE(got.T == static_cast<int>(tokens.size()));
  int n = 0;
  for (int p = 0; p < got.T; ++p) {
    if (!got.holds(p)) continue;
    ++n;
    for (int l = 0; l < kConfig.n_layer; ++l)
      for (int h = 0; h < kConfig.n_head; ++h)
        if (!same_bytes(got.k_row(l, h, p), ref.k_row(l, h, p)) || !same_bytes(got.v_row(l, h, p), ref.v_row(l, h, p)))
          return fmt::format("sequence {}: K/V of layer {} head {} position {} differ", seq, l, h, p);
  }
  if (held) *held = n;
  return "";
}

// Every logits row `got` of positions first.. first + rows - 1 against full recompute's.
std::string compare_logits(Engine& e, std::span<const int> tokens, const std::vector<float>& got, int first, int rows) {
  const std::vector<float> ref = e.forward_uncached(tokens.subspan(0, static_cast<size_t>(first + rows)), true);
  for (int i = 0; i < rows; ++i)
    if (!same_bytes(row(got, i), row(ref, first + i))) return fmt::format("logits of position {} differ", first + i);
  return "";
}

}  // namespace

TEST_CASE("window: decode through many wraps equals full recompute under the same mask") {
  for (const auto& [W, S] : {std::pair{8, 2}, std::pair{8, 0}, std::pair{5, 4}, std::pair{16, 1}}) {
    for (int spare : {0, 3, -1}) {
      Engine e(model(), windowed(W, S, 1, spare));
      Rng rng(static_cast<uint64_t>(W * 100 + S * 10 + spare + 1));
      const std::vector<int> tokens = random_tokens(rng, 64, kConfig.vocab_size);
      e.forward_cached(0, std::span(tokens).subspan(0, 3), true);
      for (int p = 3; p < 64; ++p) {
        const std::vector<float> got = e.forward_cached(0, std::span(tokens).subspan(static_cast<size_t>(p), 1));
        INFO("W " << W << " S " << S << " spare " << spare << " position " << p);
        REQUIRE(compare_logits(e, tokens, got, p, 1) == "");
      }
      int held = 0;
      REQUIRE(compare_held(e, 0, tokens, &held) == "");
      CHECK(held == S + e.window().ring);  // sinks and a full ring: the rest is gone
    }
  }
}

TEST_CASE("window: a 64-token prefill in one call equals full recompute, every row") {
  Engine e(model(), windowed(8, 2));
  Rng rng(5);
  const std::vector<int> tokens = random_tokens(rng, 64, kConfig.vocab_size);
  const std::vector<float> got = e.forward_cached(0, tokens, true);
  REQUIRE(compare_logits(e, tokens, got, 0, 64) == "");
  REQUIRE(compare_held(e, 0, tokens) == "");
}

TEST_CASE("window: the mask matters (a windowed row differs from the unwindowed model's)") {
  Engine plain(model()), win(model(), windowed(8, 2));
  Rng rng(6);
  const std::vector<int> tokens = random_tokens(rng, 20, kConfig.vocab_size);
  const std::vector<float> a = plain.forward_uncached(tokens, true), b = win.forward_uncached(tokens, true);
  CHECK(same_bytes(row(a, 7), row(b, 7)));  // below W: the causal mask itself
  CHECK_FALSE(same_bytes(row(a, 19), row(b, 19)));
}

TEST_CASE("window: chunks straddling the ring's wrap at every offset") {
  const int W = 8, S = 2;
  Rng rng(7);
  const std::vector<int> tokens = random_tokens(rng, 48, kConfig.vocab_size);
  for (int spare : {0, 2, -1}) {
    Engine probe(model(), windowed(W, S, 1, spare));
    const int ring = probe.window().ring;
    for (int cut = 1; cut <= S + 2 * ring; ++cut)
      for (int len : {1, 2, ring - 1, ring, ring + 1, 2 * ring + 3}) {
        if (len < 1 || cut + len > static_cast<int>(tokens.size())) continue;
        Engine e(model(), windowed(W, S, 1, spare));
        e.forward_cached(0, std::span(tokens).subspan(0, static_cast<size_t>(cut)));
        const std::vector<float> got =
            e.forward_cached(0, std::span(tokens).subspan(static_cast<size_t>(cut), static_cast<size_t>(len)), true);
        INFO("spare " << spare << " cut " << cut << " chunk " << len);
        REQUIRE(compare_logits(e, tokens, got, cut, len) == "");
        REQUIRE(compare_held(e, 0, std::span(tokens).subspan(0, static_cast<size_t>(cut + len))) == "");
      }
  }
}

TEST_CASE("window: truncate and fork within the ring's reach, refused beyond it") {
  const int W = 8, S = 2, spare = 3;
  Engine e(model(), windowed(W, S, 2, spare));
  Rng rng(8);
  std::vector<int> tokens = random_tokens(rng, 40, kConfig.vocab_size);
  e.forward_cached(0, tokens);
  // A rollback of spare + 1 rows keeps every position the next query reads.
  e.truncate(0, 40 - (spare + 1));
  tokens.resize(40 - (spare + 1));
  const std::vector<int> more = random_tokens(rng, 10, kConfig.vocab_size);
  tokens.insert(tokens.end(), more.begin(), more.end());
  const std::vector<float> got = e.forward_cached(0, more, true);
  REQUIRE(compare_logits(e, tokens, got, 36, 10) == "");
  REQUIRE(compare_held(e, 0, tokens) == "");
  // One more row back and position 40 of 46 - (W - S) + 1 is gone.
  const int cursor = e.cursor(0);
  CHECK_THROWS_WITH(e.truncate(0, cursor - (spare + 2)), Catch::Contains("was overwritten in the window's ring"));
  CHECK(e.cursor(0) == cursor);
  CHECK_THROWS_WITH(e.fork(0, 1, cursor - (spare + 2)), Catch::Contains("was overwritten in the window's ring"));
  // Truncating into the sinks needs nothing from the ring.
  e.fork(0, 1, cursor - 1);
  std::vector<int> forked(tokens.begin(), tokens.end() - 1);
  REQUIRE(compare_held(e, 1, forked) == "");  // the fork holds what its source held, no more
  const int next[] = {3, 4, 5};
  forked.insert(forked.end(), std::begin(next), std::end(next));
  const std::vector<float> fgot = e.forward_cached(1, next, true);
  REQUIRE(compare_logits(e, forked, fgot, cursor - 1, 3) == "");
  REQUIRE(compare_held(e, 1, forked) == "");
  REQUIRE(compare_held(e, 0, tokens) == "");  // the source is untouched
  e.truncate(0, S);
  tokens.resize(S);
  const std::vector<float> again = e.forward_cached(0, next, true);
  tokens.insert(tokens.end(), std::begin(next), std::end(next));
  REQUIRE(compare_logits(e, tokens, again, S, 3) == "");
}

TEST_CASE("window: batched decode of sequences at different ring phases, on 1 and 2 threads") {
  const int W = 8, S = 2, B = 4;
  for (int threads : {1, 2}) {
    Engine e(model(), windowed(W, S, B));
    e.set_threads(threads);
    Engine ref(model(), windowed(W, S));
    ref.set_threads(3 - threads);  // cached with one count equals recompute with the other
    Rng rng(9);
    std::vector<std::vector<int>> seqs;
    for (int b = 0; b < B; ++b) {
      seqs.push_back(random_tokens(rng, 3 + 5 * b, kConfig.vocab_size));
      e.forward_cached(b, seqs.back());
    }
    std::vector<int> ids(B), next(B);
    for (int b = 0; b < B; ++b) ids[static_cast<size_t>(b)] = b;
    std::vector<float> logits(static_cast<size_t>(B) * kConfig.vocab_size);
    for (int step = 0; step < 30; ++step) {
      for (int b = 0; b < B; ++b) next[static_cast<size_t>(b)] = static_cast<int>(rng.below(kConfig.vocab_size));
      e.decode(ids, next, logits);
      for (int b = 0; b < B; ++b) {
        std::vector<int>& t = seqs[static_cast<size_t>(b)];
        t.push_back(next[static_cast<size_t>(b)]);
        const std::vector<float> want = ref.forward_uncached(t);
        INFO("threads " << threads << " step " << step << " sequence " << b);
        REQUIRE(same_bytes(row(logits, b), want));
      }
    }
    for (int b = 0; b < B; ++b) REQUIRE(compare_held(e, b, seqs[static_cast<size_t>(b)]) == "");
  }
}

TEST_CASE("window: its two faults part the paths, each its own way") {
  Rng rng(10);
  const std::vector<int> tokens = random_tokens(rng, 40, kConfig.vocab_size);
  EngineOptions wrap = windowed(8, 2, 1, 0), wide = windowed(8, 2, 1, 0);
  wrap.fault = Fault::RingWrapOffByOne;
  wide.fault = Fault::WindowMaskWide;
  Engine a(model(), wrap), b(model(), wide), good(model(), windowed(8, 2, 1, 0));
  const std::vector<float> ga = a.forward_cached(0, tokens, true), gb = b.forward_cached(0, tokens, true);
  const std::vector<float> ra = a.forward_uncached(tokens, true), rb = b.forward_uncached(tokens, true);
  const std::vector<float> model_rows = good.forward_uncached(tokens, true);
  // ring-wrap-off-by-one: the cache is wrong, full recompute right.
  CHECK(same_bytes(ra, model_rows));
  CHECK_FALSE(same_bytes(ga, ra));
  CHECK(compare_held(a, 0, tokens) != "");
  // window-mask-wide: the cache is right, full recompute wrong (from position W on only).
  CHECK(same_bytes(gb, model_rows));
  CHECK_FALSE(same_bytes(gb, rb));
  CHECK(same_bytes(std::span(gb).subspan(0, 8 * static_cast<size_t>(kConfig.vocab_size)),
                   std::span(rb).subspan(0, 8 * static_cast<size_t>(kConfig.vocab_size))));
  // Without a window they have nothing to act on.
  Engine plain(model());
  CHECK_THROWS_WITH(plain.set_fault(Fault::RingWrapOffByOne), Catch::Contains("acts on the sliding window"));
}

TEST_CASE("window: bad settings are refused with one line naming them") {
  CHECK_THROWS_WITH(Engine(model(), windowed(-1, 0)), Catch::Contains("window -1 must not be negative"));
  CHECK_THROWS_WITH(Engine(model(), windowed(8, -2)), Catch::Contains("sinks -2 must not be negative"));
  CHECK_THROWS_WITH(Engine(model(), windowed(0, 2)), Catch::Contains("2 sinks need a window"));
  CHECK_THROWS_WITH(Engine(model(), windowed(4, 4)), Catch::Contains("window 4 must be larger than the sink count 4"));
  CHECK_THROWS_WITH(Engine(model(), windowed(97, 1)), Catch::Contains("exceeds the model's max_seq_len"));
  EngineOptions paged = windowed(8, 2);
  paged.layout = KvLayout::Paged;
  CHECK_THROWS_WITH(Engine(model(), paged), Catch::Contains("needs the contiguous kv cache layout"));
}
