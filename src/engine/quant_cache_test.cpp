// The quantized cache (quant_cache.h): the quantizers at their edges, and the engine's claim in
// every format and residual: cached logits and K/V rows byte-identical to full recompute for
// chunkings that cut before, on and after every flush boundary, on any thread count; and the
// two quantized-cache faults each break it, differently.
#include "engine/quant_cache.h"

#include <bit>
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "engine/engine.h"
#include "engine/engine_test_util.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

struct Mode {
  KvQuant format;
  int residual;
};

const Mode kModes[] = {{KvQuant::Bf16, 0}, {KvQuant::Int8, 0}, {KvQuant::Int8, 1},
                       {KvQuant::Int8, 4}, {KvQuant::Bf16, 4}, {KvQuant::Int8, 8}};

EngineOptions options(Mode m, Fault fault = Fault::None, int threads = 1) {
  EngineOptions o;
  o.fault = fault;
  o.threads = threads;
  o.kv_quant = m.format;
  o.kv_residual = m.residual;
  return o;
}

// `tokens` through the cached path in chunks of the given sizes, then `decode` more one at a
// time; every row's logits and, at the end, every K/V row against full recompute. "" or the first
// difference.
std::string cached_vs_recompute(Engine& engine, const std::vector<int>& tokens, const std::vector<int>& chunks) {
  const int V = engine.vocab_size();
  std::vector<float> cached;
  int at = 0;
  for (int n : chunks) {
    const std::vector<float> l = engine.forward_cached(0, std::span(tokens).subspan(at, n), true);
    cached.insert(cached.end(), l.begin(), l.end());
    at += n;
  }
  REQUIRE(at == static_cast<int>(tokens.size()));
  KvRows kv;
  const std::vector<float> full = engine.forward_uncached(tokens, true, &kv);
  if (auto d = first_byte_difference(cached, full))
    return fmt::format("logits differ at position {} element {}", *d / V, *d % V);
  const KvRows rows = engine.cache_rows(0);
  if (auto d = first_byte_difference(rows.k, kv.k)) return fmt::format("K rows differ at float {}", *d);
  if (auto d = first_byte_difference(rows.v, kv.v)) return fmt::format("V rows differ at float {}", *d);
  return "";
}

// Chunkings of 13 tokens whose cuts fall before, on and after the boundaries of groups of 4 and 8.
const std::vector<std::vector<int>> kChunkings = {
    {13}, {1, 12}, {3, 1, 9}, {4, 4, 5}, {5, 3, 5}, {7, 1, 1, 4}, {8, 5}, {9, 4}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}};

}  // namespace

TEST_CASE("bf16 rounds to nearest even on the bits, keeps NaN a NaN and infinities infinite") {
  CHECK(bf16_from_float(1.0f) == 0x3f80);
  CHECK(bf16_from_float(std::bit_cast<float>(0x3f808000u)) == 0x3f80);  // tie, even kept part: down
  CHECK(bf16_from_float(std::bit_cast<float>(0x3f818000u)) == 0x3f82);  // tie, odd kept part: up
  CHECK(bf16_from_float(std::bit_cast<float>(0x3f808001u)) == 0x3f81);  // above the tie: up
  CHECK(bf16_from_float(std::bit_cast<float>(0x7f7fffffu)) == 0x7f80);  // max float rounds to inf
  CHECK(bf16_from_float(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(bf16_from_float(-0.0f) == 0x8000);
  CHECK(std::isnan(float_from_bf16(bf16_from_float(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(float_from_bf16(bf16_from_float(std::bit_cast<float>(0x7f800001u)))));  // NaN low bits only
  CHECK(float_from_bf16(0x3fc0) == 1.5f);
}

TEST_CASE("int8 rounding is half to even, and the scale is absmax / 127 (0 for a zero row, NaN for a non-finite one)") {
  CHECK(round_half_even(0.5f) == 0);
  CHECK(round_half_even(1.5f) == 2);
  CHECK(round_half_even(2.5f) == 2);
  CHECK(round_half_even(-0.5f) == 0);
  CHECK(round_half_even(-1.5f) == -2);
  CHECK(round_half_even(-2.5f) == -2);
  CHECK(round_half_even(2.4999998f) == 2);
  CHECK(round_half_even(-2.6f) == -3);
  CHECK(round_half_even(126.5f) == 126);
  int8_t codes[4];
  const float zero[4] = {0.0f, -0.0f, 0.0f, 0.0f};
  CHECK(quantize_int8(zero, 4, codes) == 0.0f);
  CHECK((codes[0] == 0 && codes[3] == 0));
  const float row[4] = {-2.0f, 1.0f, 0.5f, 2.0f};
  const float scale = quantize_int8(row, 4, codes);
  CHECK(scale == 2.0f / 127.0f);
  CHECK((codes[0] == -127 && codes[3] == 127 && codes[1] == 64 && codes[2] == 32));  // 63.5 -> 64, 31.75 -> 32
  float back[4];
  dequantize_int8(codes, scale, 4, back);
  CHECK(back[3] == 127.0f * scale);
  const float bad[2] = {1.0f, std::numeric_limits<float>::infinity()};
  CHECK(std::isnan(quantize_int8(bad, 2, codes)));
  const float tiny[2] = {1e-45f, 0.0f};  // absmax / 127 underflows to 0: codes 0
  CHECK(quantize_int8(tiny, 2, codes) == 0.0f);
}

TEST_CASE("a quantized cache equals full recompute bit for bit, for chunkings across every flush boundary") {
  const Config c = make_config(61, 32, 2, 4, 48, 32);  // d_head 8
  const Model model = random_model(c, 3);
  Rng rng(17);
  const std::vector<int> tokens = random_tokens(rng, 13, c.vocab_size);
  Engine f32(model);
  const std::vector<float> exact = f32.forward_uncached(tokens, true);
  for (const Mode m : kModes) {
    Engine quantized(model, options(m));
    INFO(to_string(m.format) << " residual " << m.residual);
    CHECK(!same_bytes(quantized.forward_uncached(tokens, true), exact));  // the format is in force
  }
  for (const Mode m : kModes)
    for (const std::vector<int>& chunks : kChunkings) {
      Engine engine(model, options(m));
      INFO(to_string(m.format) << " residual " << m.residual << ", chunks of " << fmt::format("{}", fmt::join(chunks, ",")));
      CHECK(cached_vs_recompute(engine, tokens, chunks) == "");
    }
}

TEST_CASE("the quantized cache's bytes hold on any thread count: cached on 2 threads equals recompute on 1") {
  const Config c = make_config(61, 32, 2, 4, 48, 32);
  const Model model = random_model(c, 5);
  Rng rng(23);
  const std::vector<int> tokens = random_tokens(rng, 21, c.vocab_size);
  for (const Mode m : kModes) {
    Engine cached(model, options(m));
    Engine full(model, options(m));
    cached.set_threads(2);
    std::vector<float> logits;
    int at = 0;
    for (int n : {5, 3, 3, 4, 1, 1, 4}) {
      const std::vector<float> l = cached.forward_cached(0, std::span(tokens).subspan(at, n), true);
      logits.insert(logits.end(), l.begin(), l.end());
      at += n;
    }
    INFO(to_string(m.format) << " residual " << m.residual);
    CHECK(same_bytes(logits, full.forward_uncached(tokens, true)));
  }
}

TEST_CASE("flush-chunking and scale-group each break the quantized cache, and not in the same way") {
  const Config c = make_config(61, 32, 2, 4, 48, 32);
  const Model model = random_model(c, 7);
  Rng rng(29);
  const std::vector<int> tokens = random_tokens(rng, 13, c.vocab_size);
  const Mode m{KvQuant::Int8, 4};
  std::vector<std::vector<float>> logits;
  for (Fault f : {Fault::None, Fault::FlushChunking, Fault::ScaleGroup}) {
    Engine engine(model, options(m, f));
    std::vector<float> all;
    for (auto [at, n] : {std::pair{0, 3}, std::pair{3, 3}, std::pair{6, 7}}) {
      const std::vector<float> l = engine.forward_cached(0, std::span(tokens).subspan(at, n), true);
      all.insert(all.end(), l.begin(), l.end());
    }
    INFO("fault " << to_string(f));
    CHECK(same_bytes(all, engine.forward_uncached(tokens, true)) == (f == Fault::None));
    logits.push_back(all);
  }
  CHECK(!same_bytes(logits[1], logits[2]));
  // flush-chunking deviates only when a call ends inside a group: one chunk of 12 is exact.
  Engine whole(model, options(m, Fault::FlushChunking));
  CHECK(same_bytes(whole.forward_cached(0, std::span(tokens).first(12), true),
                   whole.forward_uncached(std::span(tokens).first(12), true)));
}

TEST_CASE("the quantized cache refuses bad settings and cuts through flushed rows with one line each") {
  const Config c = make_config(61, 32, 2, 4, 48, 32);
  const Model model = random_model(c, 1);
  const auto make = [&](KvQuant q, int r, KvLayout layout = KvLayout::Contiguous) {
    EngineOptions o;
    o.kv_quant = q;
    o.kv_residual = r;
    o.layout = layout;
    Engine e(model, o);
  };
  CHECK_THROWS_WITH(make(KvQuant::Int8, 64), "engine: kv residual 64 exceeds the cache capacity 32");
  CHECK_THROWS_WITH(make(KvQuant::Int8, -4), "engine: kv residual -4 is negative");
  CHECK_THROWS_WITH(make(KvQuant::Int8, 6), "engine: kv residual 6 is not a power of two");
  CHECK_THROWS_WITH(make(KvQuant::F32, 4), "engine: kv residual 4 needs a quantized cache (kv quant bf16 or int8, not f32)");
  CHECK_THROWS_WITH(make(KvQuant::Bf16, 0, KvLayout::Paged), "engine: the bf16 kv cache needs the contiguous layout, not paged");
  CHECK_THROWS_WITH(kv_quant_from_name("fp8"), "unknown kv cache format 'fp8' (known: f32, bf16, int8)");

  QuantKvCache cache(1, 1, 1, 2, 16, KvQuant::Int8, 4);
  cache.advance(0, 10);  // slots 0..7 flushed
  CHECK(cache.recompute_from(0, 6) == 4);
  CHECK(cache.recompute_from(0, 9) == 9);
  CHECK_THROWS_WITH(cache.truncate(0, 6),
                    "sequence 0: cannot truncate to 6 tokens: slots 4..5 are stored int8 (residual 4), their float rows are gone");
  cache.truncate(0, 9);  // inside the float rows
  cache.truncate(0, 4);  // on a boundary: nothing below it is read in float
  CHECK(cache.cursor(0) == 4);
}

TEST_CASE("truncate and fork anywhere keep a quantized cache equal to recompute (inside a flushed group: recomputed)") {
  const Config c = make_config(61, 32, 2, 4, 48, 32);
  const Model model = random_model(c, 11);
  Rng rng(31);
  const std::vector<int> tokens = random_tokens(rng, 14, c.vocab_size);
  EngineOptions o = options({KvQuant::Int8, 4});
  o.batch = 2;
  Engine engine(model, o);
  for (auto [cut, prefix] : {std::pair{8, 8}, std::pair{7, 6}, std::pair{9, 5}, std::pair{10, 2}}) {
    engine.reset();
    std::vector<int> wrong(tokens.begin(), tokens.begin() + 12);
    for (size_t i = static_cast<size_t>(cut); i < wrong.size(); ++i) wrong[i] = (wrong[i] + 1) % c.vocab_size;
    engine.forward_cached(0, wrong);  // slots 0..11 flushed, from `cut` on with other tokens
    engine.truncate(0, cut);
    engine.forward_cached(0, std::span(tokens).subspan(static_cast<size_t>(cut), 14 - static_cast<size_t>(cut)));
    engine.fork(0, 1, prefix);
    engine.forward_cached(1, std::span(tokens).subspan(static_cast<size_t>(prefix), 14 - static_cast<size_t>(prefix)));
    KvRows kv;
    engine.forward_uncached(tokens, false, &kv);
    INFO("cut at " << cut << ", fork of " << prefix);
    for (int seq : {0, 1}) {
      const KvRows rows = engine.cache_rows(seq);
      CHECK(same_bytes(rows.k, kv.k));
      CHECK(same_bytes(rows.v, kv.v));
    }
  }
}

TEST_CASE("the quantized cache stores codes: int8 takes about a quarter of the float cache's bytes") {
  const Config c = make_config(61, 64, 4, 4, 48, 512);
  const Model model = random_model(c, 1);
  const size_t f32 = 2ull * c.n_layer * c.max_seq_len * c.d_model * sizeof(float);
  Engine int8(model, options({KvQuant::Int8, 0}));
  Engine bf16(model, options({KvQuant::Bf16, 0}));
  Engine resid(model, options({KvQuant::Int8, 64}));
  CHECK(int8.quantized()->storage_bytes() == f32 / 4 + 2ull * c.n_layer * c.max_seq_len * c.n_head * sizeof(float));
  CHECK(bf16.quantized()->storage_bytes() == f32 / 2);
  CHECK(resid.quantized()->storage_bytes() == int8.quantized()->storage_bytes() + 2ull * c.n_layer * 64 * c.d_model * 4);
  CHECK(int8.quantized()->working_bytes() == 2ull * (c.max_seq_len + 1) * c.d_model * sizeof(float));
  CHECK(resid.quantized()->working_bytes() == 2ull * (2 * c.max_seq_len + 1) * c.d_model * sizeof(float));
}
