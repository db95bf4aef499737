// LlamaCpp's operations, checked against llama.cpp itself (the cached path, truncate, fork,
// reset and batches against full recompute) and its per-layer trace against our engine.
// llama.cpp is not batch-invariant, so "agrees" here means within self_tolerance (tolerance.h:
// F32 reassociation only, the same F16 roundings); each test prints the largest difference.
#include "llamacpp/llamacpp_engine.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "base/atomic_file.h"
#include "base/error.h"
#include "engine/engine.h"
#include "llamacpp/llamacpp_test_util.h"
#include "llamacpp/tolerance.h"

namespace miniinfer {
namespace {

using testing::max_abs_diff;
using testing::shipped_gguf;
using testing::shipped_model;

const std::vector<int> kPrompt = {542, 778, 731, 1, 381,
                                  64,  777, 12,  40};  // "normalmente ustedes tienen . ..."

std::vector<float> rows(const std::vector<float>& logits, size_t first, size_t n, int V) {
  return {logits.begin() + static_cast<ptrdiff_t>(first * V),
          logits.begin() + static_cast<ptrdiff_t>((first + n) * V)};
}

double tol() { return self_tolerance(shipped_model(), shipped_model().config.max_seq_len).tol; }

void report(const char* what, double d) {
  std::printf("  %-58s max|d| %.3g (tolerance %.3g)\n", what, d, tol());
}

TEST_CASE("llama.cpp loads the exported GGUF with our vocabulary size and context length", "[llamacpp]") {
  LlamaCpp llama(shipped_gguf());
  CHECK(llama.vocab_size() == shipped_model().config.vocab_size);
  CHECK(llama.capacity() == shipped_model().config.max_seq_len);
  CHECK(llama.cursor(0) == 0);
}

TEST_CASE("loading a missing or non-GGUF file is an error naming it", "[llamacpp]") {
  CHECK_THROWS_WITH(LlamaCpp("/nonexistent/model.gguf"), Catch::Contains("/nonexistent/model.gguf"));
  TempDir dir("llamacpp_bad");
  const std::string bad = dir.file("bad.gguf");
  write_file_atomic(bad, "this is not a gguf file");
  CHECK_THROWS_WITH(LlamaCpp(bad), Catch::Contains(bad));
}

TEST_CASE("cached prefill plus decode steps agree with full recompute of every row", "[llamacpp]") {
  LlamaCpp llama(shipped_gguf());
  const int V = llama.vocab_size();
  const std::vector<float> full = llama.forward_uncached(kPrompt, true);
  const std::vector<float> prefill = llama.forward_cached(0, std::span(kPrompt).first(4), true);
  double d = max_abs_diff(prefill, rows(full, 0, 4, V));
  for (size_t i = 4; i < kPrompt.size(); ++i)
    d = std::max(
        d, max_abs_diff(llama.forward_cached(0, std::span(kPrompt).subspan(i, 1)), rows(full, i, 1, V)));
  CHECK(llama.cursor(0) == static_cast<int>(kPrompt.size()));
  report("cached (prefill 4 + 5 decode steps) vs recompute", d);
  CHECK(d <= tol());
}

TEST_CASE("truncate then append equals a sequence that never held the removed tokens", "[llamacpp]") {
  LlamaCpp llama(shipped_gguf());
  const std::vector<int> other = {3, 5, 8, 13};
  llama.forward_cached(0, std::span(kPrompt).first(5));
  llama.forward_cached(0, other);  // positions 5..8, to be removed
  llama.truncate(0, 5);
  CHECK(llama.cursor(0) == 5);
  const std::vector<float> after = llama.forward_cached(0, std::span(kPrompt).subspan(5), true);
  const std::vector<float> full = llama.forward_uncached(kPrompt, true);
  const double d = max_abs_diff(after, rows(full, 5, kPrompt.size() - 5, llama.vocab_size()));
  report("append after truncate vs recompute", d);
  CHECK(d <= tol());
  CHECK_THROWS_WITH(llama.truncate(0, 10), Catch::Contains("outside 0..9"));
}

TEST_CASE("fork gives the destination the source's prefix; both then continue on their own", "[llamacpp]") {
  LlamaCpp llama(shipped_gguf(), {.n_seq = 3});
  llama.forward_cached(0, kPrompt);
  llama.forward_cached(2, std::vector<int>{7, 7, 7});  // dst's old content must go
  llama.fork(0, 2, 6);
  CHECK(llama.cursor(2) == 6);
  const std::vector<int> tail = {100, 200, 300};
  const std::vector<float> forked = llama.forward_cached(2, tail, true);
  std::vector<int> expect(kPrompt.begin(), kPrompt.begin() + 6);
  expect.insert(expect.end(), tail.begin(), tail.end());
  const std::vector<float> full = llama.forward_uncached(expect, true);
  double d = max_abs_diff(forked, rows(full, 6, 3, llama.vocab_size()));
  // The source is untouched by the fork and by what the destination appended.
  const std::vector<float> src_next = llama.forward_cached(0, std::vector<int>{5});
  std::vector<int> src_all = kPrompt;
  src_all.push_back(5);
  d = std::max(d, max_abs_diff(src_next, llama.forward_uncached(src_all)));
  report("forked and source sequences vs recompute", d);
  CHECK(d <= tol());
  // A fork onto itself is refused, and changes nothing (p11's model: ours refuses it too).
  CHECK_THROWS_WITH(llama.fork(2, 2, 1), Catch::Contains("both sequence 2"));
  CHECK(llama.cursor(2) == 9);
}

TEST_CASE("a reset engine gives the same logits as a fresh one, bit for bit", "[llamacpp]") {
  LlamaCpp fresh(shipped_gguf());
  const std::vector<float> first = fresh.forward_cached(0, kPrompt, true);
  LlamaCpp used(shipped_gguf());
  used.forward_cached(0, std::vector<int>{1, 2, 3, 4, 5, 6});
  used.reset();
  CHECK(used.cursor(0) == 0);
  CHECK(used.forward_cached(0, kPrompt, true) == first);
}

TEST_CASE("several sequences in one batch agree with each sequence alone", "[llamacpp]") {
  LlamaCpp llama(shipped_gguf(), {.n_seq = 3});
  const std::vector<int> a = {542, 778}, b = {12, 40, 731, 1, 381}, c = {64};
  const std::vector<Chunk> chunks = {{0, a}, {1, b}, {2, c}};
  const int V = llama.vocab_size();
  std::vector<float> logits(3 * static_cast<size_t>(V));
  llama.forward_batch(chunks, logits);
  double d = 0.0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const std::vector<int> toks(chunks[i].tokens.begin(), chunks[i].tokens.end());
    d = std::max(d, max_abs_diff(rows(logits, i, 1, V), llama.forward_uncached(toks)));
  }
  // Batched decode: one token per sequence.
  const std::vector<int> seqs = {0, 1, 2}, next = {9, 10, 11};
  llama.decode(seqs, next, logits);
  const std::vector<std::vector<int>> whole = {{542, 778, 9}, {12, 40, 731, 1, 381, 10}, {64, 11}};
  for (size_t i = 0; i < whole.size(); ++i)
    d = std::max(d, max_abs_diff(rows(logits, i, 1, V), llama.forward_uncached(whole[i])));
  report("ragged batch of 3 + batched decode vs each alone", d);
  CHECK(d <= tol());
  const std::vector<Chunk> twice = {{0, a}, {0, c}};
  CHECK_THROWS_WITH(llama.forward_batch(twice, logits), Catch::Contains("appears twice"));
}

TEST_CASE("bad input is an error naming it, and leaves the sequence as it was", "[llamacpp]") {
  LlamaCpp llama(shipped_gguf(), {.n_seq = 2, .capacity = 8});
  const int V = shipped_model().config.vocab_size;  // one past the last token id
  CHECK_THROWS_WITH(llama.forward_cached(0, std::vector<int>{V}),
                    Catch::Contains("token id " + std::to_string(V)));
  CHECK_THROWS_WITH(llama.forward_cached(2, std::vector<int>{1}), Catch::Contains("sequence 2"));
  CHECK_THROWS_WITH(llama.forward_cached(1, std::vector<int>(9, 1)), Catch::Contains("capacity 8"));
  CHECK(llama.cursor(0) == 0);
  CHECK(llama.cursor(1) == 0);
  CHECK_THROWS_WITH(LlamaCpp(shipped_gguf(), {.capacity = 100000}), Catch::Contains("capacity 100000"));
}

TEST_CASE("the trace holds Qcur, Kcur, Vcur, kq_soft_max, kqv_out and l_out of every layer", "[llamacpp]") {
  const Config& c = shipped_model().config;
  LlamaCpp llama(shipped_gguf());
  LlamaTrace trace;
  llama.set_trace(&trace);
  llama.forward_uncached(kPrompt, true);
  const int64_t T = static_cast<int64_t>(kPrompt.size());
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string s = "-" + std::to_string(l);
    INFO("layer " << l);
    for (const char* n : {"Qcur", "Kcur", "Vcur"}) {
      const LayerTensor* t = trace.last(n + s);
      REQUIRE(t != nullptr);
      CHECK(t->ne == std::array<int64_t, 4>{c.d_head(), c.n_head, T, 1});
    }
    const LayerTensor* p = trace.last("kq_soft_max" + s);
    REQUIRE(p != nullptr);  // (n_kv >= T, T, H): rows of attention probabilities
    CHECK(p->ne[1] == T);
    CHECK(p->ne[2] == c.n_head);
    REQUIRE(trace.last("kqv_out" + s) != nullptr);
    REQUIRE(trace.last("l_out" + s) != nullptr);
    CHECK(trace.last("l_out" + s)->ne[0] == c.d_model);
  }
  // Only the named tensors, not ggml's views of them ("Qcur-0 (reshaped)").
  for (const LayerTensor& t : trace.tensors) CHECK(t.name.find(' ') == std::string::npos);
  // Each softmax row sums to 1 over the keys.
  const LayerTensor& p = *trace.last("kq_soft_max-0");
  for (int64_t r = 0; r < p.ne[1] * p.ne[2]; ++r) {
    double sum = 0.0;
    for (int64_t j = 0; j < p.ne[0]; ++j) sum += p.data[static_cast<size_t>(r * p.ne[0] + j)];
    CHECK(std::fabs(sum - 1.0) < 1e-5);
  }
}

TEST_CASE("layer 0's K after RoPE is our engine's K, up to F32 rounding and RoPE angles", "[llamacpp]") {
  // Before the cache, layer 0's K is F32 throughout in both engines: LayerNorm, a 64-term dot
  // product (relative error <= 64 * 2^-24 ~ 4e-6 of sum |a b|), RoPE. ggml forms the angle
  // pos * theta^(-2i/d) in float (about 1e-7 relative, up to 1e-5 rad at position 100), we in
  // double. 1e-4 of the row's largest |K| bounds both with room; a wrong theta, rotation
  // convention or bias is off by O(1).
  const Model& model = shipped_model();
  const Config& c = model.config;
  Engine ours(model);
  KvRows kv;
  ours.forward_uncached(kPrompt, false, &kv);
  LlamaCpp llama(shipped_gguf());
  LlamaTrace trace;
  llama.set_trace(&trace);
  llama.forward_uncached(kPrompt);
  const LayerTensor& k = *trace.last("Kcur-0");
  double worst = 0.0;
  for (int t = 0; t < static_cast<int>(kPrompt.size()); ++t)
    for (int h = 0; h < c.n_head; ++h) {
      const auto row = kv.k_row(0, h, t);
      double scale = 0.0, d = 0.0;
      for (int i = 0; i < c.d_head(); ++i) {
        const float theirs = k.data[(static_cast<size_t>(t) * c.n_head + h) * c.d_head() + i];
        scale = std::max(scale, std::fabs(static_cast<double>(row[i])));
        d = std::max(d, std::fabs(static_cast<double>(row[i]) - theirs));
      }
      worst = std::max(worst, d / scale);
      CHECK(d <= 1e-4 * scale);
    }
  std::printf("  layer-0 K after RoPE vs ours: max |d| / max|K| of a row %.3g (bound 1e-4)\n", worst);
}

}  // namespace
}  // namespace miniinfer

namespace miniinfer {
namespace {

TEST_CASE("threads, our sleeping threadpool and the KV type change speed and rounding, not the model",
          "[llamacpp]") {
  LlamaCpp base(shipped_gguf());
  const std::vector<float> want = base.forward_uncached(kPrompt, true);
  LlamaCpp pooled(shipped_gguf(), {.threads = 2, .poll = 0});
  double d = max_abs_diff(pooled.forward_uncached(kPrompt, true), want);
  pooled.set_threads(1);  // re-creates our threadpool
  d = std::max(d, max_abs_diff(pooled.forward_cached(0, kPrompt, true), want));
  LlamaCpp f32(shipped_gguf(), {.kv_type = KvType::F32, .n_batch = 8, .n_ubatch = 4});
  std::vector<float> got = f32.forward_cached(0, std::span(kPrompt).first(8), true);
  const std::vector<float> last = f32.forward_cached(0, std::span(kPrompt).subspan(8), true);
  got.insert(got.end(), last.begin(), last.end());
  d = std::max(d, max_abs_diff(got, want));
  // Each is within its bound of the exact model, so of each other within the sum of the bounds.
  const double both =
      logit_tolerance(shipped_model(), KvType::F16).tol + logit_tolerance(shipped_model(), KvType::F32).tol;
  std::printf("  %-58s max|d| %.3g (tolerance %.3g)\n",
              "2 threads poll 0, 1 thread, F32 KV with ubatch 4 vs default", d, both);
  CHECK(d <= both);
  CHECK_THROWS_WITH(f32.forward_cached(0, std::vector<int>(9, 1)), Catch::Contains("n_batch 8"));
  LlamaCpp untraced(shipped_gguf(), {.eval_callback = false});
  LlamaTrace trace;
  CHECK_THROWS_WITH(untraced.set_trace(&trace), Catch::Contains("eval callback"));
  CHECK_THROWS_WITH(LlamaCpp(shipped_gguf(), {.poll = 101}), Catch::Contains("poll 101"));
}

}  // namespace
}  // namespace miniinfer
