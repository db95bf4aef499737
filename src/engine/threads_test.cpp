// Thread-count invariance (docs/invariance.md): the pool splits only independent outputs, so
// the cached path on one thread count gives the bytes of full recompute on another, over
// prefill, decode and ragged batches, on both cache layouts. The work threshold is set to 0 so
// that even these small models have every product, row and head shared out.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <optional>
#include <string>

#include "base/thread_pool.h"
#include "engine/engine.h"
#include "engine/engine_test_util.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

// Sets the pool's work threshold for one scope.
struct Threshold {
  explicit Threshold(long long work) { set_min_parallel_work(work); }
  ~Threshold() { set_min_parallel_work(-1); }
};

std::vector<Config> thread_configs() {
  return {
      make_config(900, 64, 4, 4, 256),  // the shipped shape (V 900, as the speed programs time it)
      make_config(1000, 144, 2, 12,
                  200),  // 12 heads of d_head 12 (not a multiple of 8); OC 144, 200, 1000 off 64
      make_config(77, 288, 1, 12, 300),  // 12 heads of d_head 24 (a multiple of 8, not of 16)
  };
}

EngineOptions options(int threads, KvLayout layout) {
  EngineOptions o;
  o.batch = 4;
  o.layout = layout;
  o.paged.block_size = 4;
  o.threads = threads;
  return o;
}

// "" if `got` has the bytes of the last row (or, with all_rows, every row) of recompute on `ref`,
// else a line naming the first difference.
std::string against_recompute(Engine& ref, const std::vector<int>& tokens, std::span<const float> got,
                              bool all_rows, const std::string& what) {
  const std::vector<float> want = ref.forward_uncached(tokens, all_rows);
  if (const auto d = first_byte_difference(got, want))
    return fmt::format("{}: logits differ at row {} id {}", what, *d / ref.vocab_size(),
                       *d % ref.vocab_size());
  return "";
}

std::string rows_against_recompute(Engine& engine, Engine& ref, int seq, const std::vector<int>& tokens) {
  KvRows want;
  ref.forward_uncached(tokens, false, &want);
  const KvRows got = engine.cache_rows(seq);
  if (const auto d = first_byte_difference(got.k, want.k))
    return fmt::format("seq {}: K differs at float {}", seq, *d);
  if (const auto d = first_byte_difference(got.v, want.v))
    return fmt::format("seq {}: V differs at float {}", seq, *d);
  return "";
}

// Prefill (a causal block), single-sequence decode (runs of heads), a ragged batch of a block,
// a short chunk and one token, then a batched decode of all four: each result against
// recompute on `ref_threads`. Returns "" or the first difference.
std::string cached_vs_recompute(const Model& model, int threads, int ref_threads, KvLayout layout,
                                uint64_t seed) {
  Engine engine(model, options(threads, layout));
  Engine ref(model, options(ref_threads, KvLayout::Contiguous));
  const int V = model.config.vocab_size;
  Rng rng(seed);
  std::vector<std::vector<int>> seqs(4);
  seqs[0] = random_tokens(rng, 11, V);
  std::string diff =
      against_recompute(ref, seqs[0], engine.forward_cached(0, seqs[0], true), true, "prefill");
  for (int step = 0; step < 5 && diff.empty(); ++step) {
    const int t = random_tokens(rng, 1, V)[0];
    seqs[0].push_back(t);
    diff = against_recompute(ref, seqs[0], engine.forward_cached(0, std::vector<int>{t}), false, "decode");
  }
  for (int s = 1; s < 4; ++s)
    seqs[static_cast<size_t>(s)] = random_tokens(rng, s == 1 ? 9 : (s == 2 ? 3 : 1), V);
  const std::vector<Chunk> chunks = {{1, seqs[1]}, {2, seqs[2]}, {3, seqs[3]}};
  std::vector<float> logits(4 * static_cast<size_t>(V));
  engine.forward_batch(chunks, logits);
  for (size_t i = 0; i < 3 && diff.empty(); ++i)
    diff = against_recompute(ref, seqs[i + 1], std::span(logits).subspan(i * V, V), false, "ragged batch");
  const std::vector<int> ids = {0, 1, 2, 3}, next = random_tokens(rng, 4, V);
  engine.decode(ids, next, logits);
  for (size_t i = 0; i < 4; ++i) seqs[i].push_back(next[i]);
  for (size_t i = 0; i < 4 && diff.empty(); ++i)
    diff = against_recompute(ref, seqs[i], std::span(logits).subspan(i * V, V), false, "batched decode");
  for (int s = 0; s < 4 && diff.empty(); ++s)
    diff = rows_against_recompute(engine, ref, s, seqs[static_cast<size_t>(s)]);
  return diff;
}

}  // namespace

TEST_CASE("cached on N threads equals recompute on M threads, bitwise, on both layouts") {
  const Threshold all_split(0);
  for (const Config& c : thread_configs()) {
    const Model model = random_model(c, 3);
    for (auto [threads, ref] : {std::pair{2, 1}, {3, 1}, {4, 2}, {1, 3}})
      for (KvLayout layout : {KvLayout::Contiguous, KvLayout::Paged}) {
        INFO(describe(c) << ": cached on " << threads << " threads, recompute on " << ref << ", "
                         << to_string(layout));
        CHECK(cached_vs_recompute(model, threads, ref, layout, 11) == "");
      }
  }
}

TEST_CASE("at the default work threshold the bytes are the same too") {
  const Model model = random_model(make_config(3000, 256, 1, 8, 1024), 5);  // a head worth sharing
  for (auto [threads, ref] : {std::pair{2, 1}, {3, 1}}) {
    INFO("cached on " << threads << " threads, recompute on " << ref);
    CHECK(cached_vs_recompute(model, threads, ref, KvLayout::Contiguous, 12) == "");
  }
}

TEST_CASE("the matmul on a pool of 2 to 4 threads gives the one-thread bytes") {
  const Threshold all_split(0);
  Rng rng(17);
  for (int threads = 2; threads <= 4; ++threads) {
    ThreadPool pool(threads);
    for (int T : {1, 3, 8, 17, 70})
      for (int C : {1, 64, 77})
        for (int OC : {1, 63, 65, 130, 900}) {
          std::vector<float> x(static_cast<size_t>(T) * C), w(static_cast<size_t>(OC) * C),
              b(static_cast<size_t>(OC));
          for (auto* v : {&x, &w, &b})
            for (float& f : *v) f = rng.normal();
          const kernels::PackedWeight packed = kernels::pack_weight(w, C, OC);
          std::vector<float> one(static_cast<size_t>(T) * OC), many(one.size());
          kernels::matmul_forward(one.data(), x.data(), packed.data(), b.data(), T, C, OC);
          kernels::matmul_forward(many.data(), x.data(), packed.data(), b.data(), T, C, OC, &pool);
          INFO(threads << " threads, T " << T << " C " << C << " OC " << OC);
          CHECK(same_bytes(one, many));
        }
  }
}

TEST_CASE("set_threads between calls keeps the bytes") {
  const Threshold all_split(0);
  const Model model = random_model(thread_configs()[1], 4);
  Engine engine(model, options(1, KvLayout::Contiguous));
  Engine ref(model, options(1, KvLayout::Contiguous));
  Rng rng(8);
  std::vector<int> tokens = random_tokens(rng, 10, model.config.vocab_size);
  engine.forward_cached(0, tokens);
  for (int threads : {3, 2, 1, 4}) {
    engine.set_threads(threads);
    CHECK(engine.threads() == threads);
    const int t = random_tokens(rng, 1, model.config.vocab_size)[0];
    tokens.push_back(t);
    INFO("decode on " << threads << " threads");
    CHECK(against_recompute(ref, tokens, engine.forward_cached(0, std::vector<int>{t}), false, "decode") ==
          "");
  }
}

TEST_CASE("a negative thread count and a bad MINIINFER_THREADS are refused in one line") {
  const Model model = random_model(thread_configs()[0], 1);
  Engine engine(model, options(1, KvLayout::Contiguous));
  CHECK_THROWS_WITH(engine.set_threads(-2),
                    "threads: -2 is not a thread count (0 = the default, or 1 and up)");
  const char* before = std::getenv("MINIINFER_THREADS");
  const std::optional<std::string> saved = before ? std::optional<std::string>(before) : std::nullopt;
  for (const char* bad : {"two", "0", "-1", "3x", ""}) {
    setenv("MINIINFER_THREADS", bad, 1);
    CHECK_THROWS_WITH(Engine(model, options(0, KvLayout::Contiguous)),
                      fmt::format("MINIINFER_THREADS='{}': not a thread count (1 to 1024)", bad));
  }
  setenv("MINIINFER_THREADS", "3", 1);
  CHECK(Engine(model, options(0, KvLayout::Contiguous)).threads() == 3);
  CHECK(Engine(model, options(2, KvLayout::Contiguous)).threads() == 2);  // a request wins over the variable
  if (saved)
    setenv("MINIINFER_THREADS", saved->c_str(), 1);
  else
    unsetenv("MINIINFER_THREADS");
}
