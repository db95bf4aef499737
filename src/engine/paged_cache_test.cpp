// The paged KV cache: bad input refused in one line, the freed state, prefix hits, copy-on-write,
// eviction and preemption, and the claim the layout rests on: random histories give every
// call's logits and every cache row byte for byte as full recompute (and as the contiguous
// cache) whatever the block size, the placement of blocks and the size of the pool.
#include "engine/paged_cache.h"

#include <catch2/catch.hpp>

#include "base/error.h"
#include "engine/engine.h"
#include "engine/engine_replay.h"
#include "engine/engine_test_util.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

const Config kConfig = make_config(40, 16, 2, 2, 24, 32);

EngineOptions paged(int batch, int capacity, int block, int pool, uint64_t seed = 0) {
  EngineOptions o;
  o.batch = batch;
  o.capacity = capacity;
  o.layout = KvLayout::Paged;
  o.paged.block_size = block;
  o.paged.pool_blocks = pool;
  o.paged.placement_seed = seed;
  return o;
}

std::vector<int> iota_tokens(int n, int from = 1) {
  std::vector<int> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (from + i) % kConfig.vocab_size;
  return t;
}

}  // namespace

TEST_CASE("a bad block size or a pool too small for one sequence is refused in one line") {
  const Model model = random_model(kConfig, 1);
  CHECK_THROWS_WITH(Engine(model, paged(2, 16, 3, 0)), "paged cache: block size 3 is not a power of two");
  CHECK_THROWS_WITH(Engine(model, paged(2, 16, 0, 0)), "paged cache: block size 0 is not a power of two");
  CHECK_THROWS_WITH(Engine(model, paged(2, 16, 32, 0)),
                    "paged cache: block size 32 does not divide the capacity 16");
  CHECK_THROWS_WITH(Engine(model, paged(2, 24, 16, 0)),
                    "paged cache: block size 16 does not divide the capacity 24");
  CHECK_THROWS_WITH(
      Engine(model, paged(2, 16, 4, 3)),
      "paged cache: a pool of 3 blocks of 4 slots cannot hold one full sequence of 16 slots (it needs 4)");
  CHECK_NOTHROW(Engine(model, paged(2, 16, 4, 4)));
  CHECK_THROWS_WITH(Engine(model, paged(2, 16, 4, 4)).cache(),
                    "the paged KV cache has no contiguous slabs: use paged(), cache_rows or poison_unused");
  CHECK_THROWS_WITH(layout_from_name("blocked"),
                    "unknown kv cache layout 'blocked' (known: contiguous, paged)");
  CHECK(layout_from_name("paged") == KvLayout::Paged);
  CHECK(std::string(to_string(KvLayout::Contiguous)) == "contiguous");
}

TEST_CASE(
    "a freed sequence refuses every operation but submit, reset and being forked into, on both layouts") {
  const Model model = random_model(kConfig, 2);
  for (KvLayout layout : {KvLayout::Contiguous, KvLayout::Paged}) {
    EngineOptions o = paged(3, 16, 4, 0);
    o.layout = layout;
    Engine e(model, o);
    INFO("layout " << to_string(layout));
    e.forward_cached(0, iota_tokens(5));
    e.forward_cached(1, iota_tokens(3));
    e.free(1);
    CHECK(e.freed(1));
    CHECK(!e.freed(0));
    CHECK(e.cursor(1) == 0);
    const std::string msg = "sequence 1 is freed: submit a prompt or reset it first";
    const std::vector<int> one = {3};
    std::vector<float> logits(2 * static_cast<size_t>(kConfig.vocab_size));
    CHECK_THROWS_WITH(e.forward_cached(1, one), msg);
    CHECK_THROWS_WITH(e.truncate(1, 0), msg);
    CHECK_THROWS_WITH(e.fork(1, 2, 0), msg);
    CHECK_THROWS_WITH(e.cache_rows(1), msg);
    const int seqs[] = {0, 1}, toks[] = {4, 5};
    CHECK_THROWS_WITH(e.decode(seqs, toks, logits), msg);
    CHECK(e.cursor(0) == 5);  // the refused decode changed nothing
    if (e.paged()) CHECK(e.paged()->check() == "");
    e.fork(0, 1, 2);  // a fork destination lives again
    CHECK(!e.freed(1));
    CHECK(e.cursor(1) == 2);
    e.free(1);
    e.reset(1);
    CHECK(!e.freed(1));
    e.free(2);
    CHECK(e.submit(2, iota_tokens(4), logits) == 0);
    CHECK(!e.freed(2));
    e.free(0);
    e.reset();
    CHECK(!e.freed(0));
  }
}

TEST_CASE("a call the pool cannot hold throws naming the pool and changes nothing") {
  const Model model = random_model(kConfig, 3);
  Engine e(model, paged(2, 16, 4, 4));
  e.forward_cached(0, iota_tokens(2));
  const auto before = e.cache_rows(0);
  const auto a = iota_tokens(9, 5), b = iota_tokens(7, 9);
  const Chunk chunks[] = {{0, a}, {1, b}};
  std::vector<float> logits(2 * static_cast<size_t>(kConfig.vocab_size));
  CHECK_THROWS_WITH(e.forward_batch(chunks, logits),
                    "pool of 4 blocks of 4 slots cannot hold this call: it needs 5");
  CHECK(e.cursor(0) == 2);
  CHECK(e.cursor(1) == 0);
  CHECK(e.paged()->check() == "");
  CHECK(e.paged()->stats().preemptions == 0);
  const auto after = e.cache_rows(0);
  CHECK(same_bytes(after.k, before.k));
  CHECK(same_bytes(after.v, before.v));
}

TEST_CASE(
    "submit reuses the full blocks of a cached prefix, never the last position, and says how many tokens") {
  const Model model = random_model(kConfig, 4);
  Engine e(model, paged(3, 32, 4, 0));
  Replay r(e);
  const auto A = iota_tokens(14, 3);
  CHECK(r.submit(0, A) == 0);
  auto B = A;
  B[13] = 0;
  CHECK(r.submit(1, B) == 12);  // three full blocks; the partial fourth is computed
  CHECK(r.submit(2, std::vector<int>(A.begin(), A.begin() + 8)) ==
        4);  // not 8: the last position is computed
  auto C = A;
  C[5] = 0;  // differs inside block 1: only block 0 is reused
  CHECK(r.submit(2, C) == 4);
  r.check_all_rows();
  CHECK(r.first() == "");
  const PagedStats st = e.paged()->stats();
  CHECK(st.hits == 3);
  CHECK(st.hit_tokens == 20);
  CHECK(e.paged()->table(0)[0] == e.paged()->table(1)[0]);
  CHECK(e.paged()->refs(e.paged()->table(0)[0]) == 3);
  CHECK(e.paged()->locate(1, 5).physical == e.paged()->table(0)[1]);
  CHECK(e.paged()->locate(1, 5).offset == 1);
  CHECK(e.paged()->locate(1, 5).registered);
  CHECK(e.paged()->check() == "");
  // The contiguous layout never reuses: submit is start_request and a cached forward.
  Engine flat(model, EngineOptions{Backend::Invariant, 3, 32, Fault::None, KvLayout::Contiguous, {}});
  Replay rf(flat);
  CHECK(rf.submit(0, A) == 0);
  CHECK(rf.submit(1, B) == 0);
  CHECK(rf.first() == "");
}

TEST_CASE(
    "copy-on-write: a fork's shared blocks are copied at the first write, and a registered block is never "
    "written") {
  const Model model = random_model(kConfig, 5);
  Engine e(model, paged(3, 32, 4, 0));
  Replay r(e);
  r.submit(0, iota_tokens(10, 2));
  r.fork(0, 1, 9);
  CHECK(e.paged()->refs(e.paged()->table(0)[2]) == 2);
  r.append(1, iota_tokens(3, 20));  // writes into the shared partial block: copied
  CHECK(e.paged()->stats().copies == 1);
  CHECK(e.paged()->table(0)[2] != e.paged()->table(1)[2]);
  r.truncate(0, 6);                 // into a registered block
  r.append(0, iota_tokens(2, 30));  // rewrites slots 6, 7: the registered block is copied first
  CHECK(e.paged()->stats().copies == 2);
  r.check_all_rows();
  CHECK(r.first() == "");
  CHECK(e.paged()->check() == "");
}

TEST_CASE("preemption: a sequence outside the call gives up its blocks and is recomputed on its next use") {
  const Model model = random_model(kConfig, 6);
  Engine e(model, paged(3, 16, 4, 4));
  Replay r(e);
  r.submit(0, iota_tokens(11, 1));  // 3 blocks
  r.submit(1, iota_tokens(8, 20));  // 2 blocks: the pool has 1 free, so sequence 0 goes
  CHECK(e.paged()->preempted(0));
  CHECK(e.paged()->table(0).empty());
  CHECK(e.paged()->stats().preemptions == 1);
  CHECK(e.cursor(0) == 11);
  CHECK(e.paged()->check() == "");
  const int seqs[] = {0}, toks[] = {7};
  r.decode(seqs, toks);  // recomputed first, preempting sequence 1 in turn
  CHECK(!e.paged()->preempted(0));
  CHECK(e.paged()->preempted(1));
  CHECK(e.paged()->stats().recomputes == 1);
  r.check_all_rows();  // cache_rows recomputes sequence 1
  CHECK(e.paged()->stats().recomputes == 2);
  CHECK(r.first() == "");
  CHECK(e.paged()->check() == "");
}

TEST_CASE("reset restores a fresh pool: nothing cached, the initial free list, stats zero") {
  const Model model = random_model(kConfig, 7);
  Engine fresh(model, paged(2, 16, 4, 5, 9));
  Engine used(model, paged(2, 16, 4, 5, 9));
  std::vector<float> l1(static_cast<size_t>(kConfig.vocab_size)), l2(l1.size());
  used.submit(0, iota_tokens(9), l1);
  used.submit(1, iota_tokens(12, 4), l1);
  used.free(0);
  used.reset();
  CHECK(used.paged()->stats().hits == 0);
  CHECK(used.paged()->stats().blocks_free == 5);
  CHECK(used.submit(0, iota_tokens(9), l1) == 0);  // the prefix cache was emptied
  fresh.submit(0, iota_tokens(9), l2);
  CHECK(same_bytes(l1, l2));
  const auto t1 = used.paged()->table(0), t2 = fresh.paged()->table(0);
  CHECK(std::vector<int>(t1.begin(), t1.end()) == std::vector<int>(t2.begin(), t2.end()));
}

TEST_CASE("check() finds what the paged faults break in the bookkeeping") {
  const Model model = random_model(kConfig, 8);
  EngineOptions o = paged(3, 16, 4, 0);
  o.fault = Fault::RefcountShort;
  Engine e(model, o);
  std::vector<float> logits(static_cast<size_t>(kConfig.vocab_size));
  e.submit(0, iota_tokens(10), logits);
  CHECK(e.paged()->check() == "");
  e.fork(0, 1, 9);
  CHECK(e.paged()->check().starts_with("block "));
  CHECK(e.paged()->check().find("refcount 1 but 2 tables hold it") != std::string::npos);
  WARN("refcount-short after a fork: " << e.paged()->check());
}

TEST_CASE(
    "random histories give every call's logits and every cache row as full recompute, on every layout") {
  const Model model = random_model(kConfig, 11);
  const int B = 3, cap = 32;
  struct Variant {
    std::string name;
    EngineOptions options;
  };
  std::vector<Variant> variants = {
      {"contiguous", EngineOptions{Backend::Invariant, B, cap, Fault::None, KvLayout::Contiguous, {}}}};
  for (int block : {1, 4, 16})
    for (uint64_t seed : {0, 7}) {
      // A pool of two sequences and a block, for three: eviction and preemption happen.
      const int pool = 2 * cap / block + 1;
      variants.push_back({fmt::format("paged block {} seed {} pool {}", block, seed, pool),
                          paged(B, cap, block, pool, seed)});
    }
  int64_t total_hits = 0;
  std::vector<PagedStats> totals(variants.size());
  for (uint64_t history = 1; history <= 12; ++history) {
    std::vector<std::unique_ptr<Engine>> engines;
    std::vector<Replay> replays;
    for (const Variant& v : variants) engines.push_back(std::make_unique<Engine>(model, v.options));
    for (auto& e : engines) replays.emplace_back(*e);
    Rng rng(history);
    const auto base = random_tokens(rng, 24, kConfig.vocab_size);
    std::vector<int> hits(variants.size(), 0);
    std::string log;
    for (int op = 0; op < 40; ++op) {
      const int seq = static_cast<int>(rng.below(B));
      const int held = static_cast<int>(replays[0].held(seq).size());
      const bool live = !engines[0]->freed(seq);
      const uint32_t kind = rng.below(10);
      std::function<void(Replay&, size_t)> step;
      if (kind < 3 || !live || held == 0) {  // submit a prompt sharing a prefix of the base
        // Half share a prefix of the base (prefix hits), half are fresh (the pool fills up).
        const long shared = 12 + static_cast<long>(rng.below(12));
        auto prompt = rng.below(2) ? std::vector<int>(base.begin(), base.begin() + shared)
                                   : random_tokens(rng, static_cast<int>(shared), kConfig.vocab_size);
        const auto tail = random_tokens(rng, 1 + static_cast<int>(rng.below(6)), kConfig.vocab_size);
        prompt.insert(prompt.end(), tail.begin(), tail.end());
        log += fmt::format(" submit({}, {})", seq, prompt.size());
        step = [prompt, seq, &hits](Replay& r, size_t i) { hits[i] += r.submit(seq, prompt); };
      } else if (kind < 5 && held < cap) {  // append a chunk
        const auto chunk = random_tokens(
            rng, 1 + static_cast<int>(rng.below(static_cast<uint32_t>(std::min(9, cap - held)))),
            kConfig.vocab_size);
        log += fmt::format(" append({}, {})", seq, chunk.size());
        step = [chunk, seq](Replay& r, size_t) { r.append(seq, chunk); };
      } else if (kind < 7) {  // batched decode of two live sequences with room (the pool holds two)
        std::vector<int> seqs, toks;
        for (int s = seq; s < seq + B && seqs.size() < 2; ++s) {
          const int h = static_cast<int>(replays[0].held(s % B).size());
          if (!engines[0]->freed(s % B) && h > 0 && h < cap) {
            seqs.push_back(s % B);
            toks.push_back(static_cast<int>(rng.below(static_cast<uint32_t>(kConfig.vocab_size))));
          }
        }
        if (seqs.empty()) continue;
        log += fmt::format(" decode({})", seqs.size());
        step = [seqs, toks](Replay& r, size_t) { r.decode(seqs, toks); };
      } else if (kind == 7) {
        const int p = static_cast<int>(rng.below(static_cast<uint32_t>(held + 1)));
        log += fmt::format(" truncate({}, {})", seq, p);
        step = [seq, p](Replay& r, size_t) { r.truncate(seq, p); };
      } else if (kind == 8) {
        const int dst = (seq + 1 + static_cast<int>(rng.below(B - 1))) % B;
        const int n = static_cast<int>(rng.below(static_cast<uint32_t>(held + 1)));
        log += fmt::format(" fork({}, {}, {})", seq, dst, n);
        step = [seq, dst, n](Replay& r, size_t) { r.fork(seq, dst, n); };
      } else {
        log += fmt::format(" free({})", seq);
        step = [seq](Replay& r, size_t) { r.free(seq); };
      }
      for (size_t i = 0; i < variants.size(); ++i) {
        INFO(variants[i].name << ", history " << history << ":" << log);
        REQUIRE_NOTHROW(step(replays[i], i));
        if (op % 5 == 4) replays[i].check_all_rows();
        REQUIRE(replays[i].first() == "");
        if (engines[i]->paged()) REQUIRE(engines[i]->paged()->check() == "");
      }
    }
    for (size_t i = 0; i < variants.size(); ++i) {
      INFO(variants[i].name << ", history " << history << ":" << log);
      replays[i].check_all_rows();
      CHECK(replays[i].first() == "");
      if (engines[i]->paged()) {
        const PagedStats st = engines[i]->paged()->stats();
        CHECK(st.hit_tokens == hits[i]);
        totals[i].hits += st.hits;
        totals[i].hit_tokens += st.hit_tokens;
        totals[i].evictions += st.evictions;
        totals[i].preemptions += st.preemptions;
        totals[i].recomputes += st.recomputes;
        totals[i].copies += st.copies;
      } else {
        CHECK(hits[i] == 0);
      }
    }
    total_hits += hits[1];
  }
  for (size_t i = 1; i < variants.size(); ++i) {
    const PagedStats& t = totals[i];
    WARN(variants[i].name << ": " << t.hits << " prefix hits (" << t.hit_tokens << " tokens), " << t.evictions
                          << " evictions, " << t.preemptions << " preemptions, " << t.recomputes
                          << " recomputes, " << t.copies << " copies");
    CHECK(t.hits > 0);
    CHECK(t.evictions > 0);
    CHECK(t.preemptions > 0);
    if (variants[i].options.paged.block_size > 1)
      CHECK(t.copies > 0);  // a block of one slot is full once written
  }
  CHECK(total_hits > 0);
}
