// The trace observes the computation it explains: a traced run executes the kernels, row groupings
// and batch layout of the untraced run, so its logits and cache rows are the untraced run's bytes.
// Every kernel path runs with and without a trace: full recompute (8 rows and more: the causal
// block kernel; fewer: the row kernel), a ragged batched prefill (a chunk of 9 rows and one of 5),
// batched decode (the all-heads row kernel), a resumed chunk, fp64 numerics (the fp64-decode
// fault's kernel), the paged layout and the Eigen backend.
#include <catch2/catch.hpp>

#include "engine/engine.h"
#include "engine/engine_test_util.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

// Everything a run computes that a caller can see: every call's logits, then both sequences'
// cache rows.
std::vector<float> run_all_paths(const Model& model, EngineOptions eo, Trace* trace) {
  const int V = model.config.vocab_size;
  Engine engine(model, eo);
  engine.set_trace(trace);
  Rng rng(11);
  const auto a = random_tokens(rng, 9, V), b = random_tokens(rng, 5, V), more = random_tokens(rng, 3, V);
  std::vector<float> out;
  auto keep = [&](std::span<const float> x) { out.insert(out.end(), x.begin(), x.end()); };
  // Full recompute, 10 rows (causal block) and 5 rows (row kernel), every row's logits.
  std::vector<int> ten = a;
  ten.push_back(more[0]);
  keep(engine.forward_uncached(ten, true));
  keep(engine.forward_uncached(b, true));
  // A ragged batched prefill: sequence 0's 9 rows (block kernel), sequence 1's 5 (row kernel).
  std::vector<float> logits(2 * static_cast<size_t>(V));
  const Chunk chunks[] = {{0, a}, {1, b}};
  engine.forward_batch(chunks, logits);
  keep(logits);
  // Two batched decode steps (the all-heads kernel; fp64 numerics under the fault).
  for (int step = 0; step < 2; ++step) {
    const int seqs[] = {0, 1}, tokens[] = {more[static_cast<size_t>(step)], more[2]};
    engine.decode(seqs, tokens, logits);
    keep(logits);
  }
  // A resumed chunk of 3 rows on sequence 1, every row's logits.
  keep(engine.forward_cached(1, more, true));
  for (int seq : {0, 1}) {
    const KvRows rows = engine.cache_rows(seq);
    keep(rows.k);
    keep(rows.v);
  }
  engine.set_trace(nullptr);
  return out;
}

}  // namespace

TEST_CASE("a traced run computes the untraced run's bytes on every kernel path") {
  const Config c = make_config(61, 32, 2, 4, 64, 64);
  const Model model = random_model(c, 9);
  for (KvLayout layout : {KvLayout::Contiguous, KvLayout::Paged})
    for (Backend backend : {Backend::Invariant, Backend::Eigen})
      for (Fault fault : {Fault::None, Fault::Fp64Decode}) {
        EngineOptions eo;
        eo.backend = backend;
        eo.batch = 2;
        eo.fault = fault;
        eo.layout = layout;
        eo.paged.block_size = 4;
        INFO(to_string(layout) << ", " << to_string(backend) << ", fault " << to_string(fault));
        const std::vector<float> plain = run_all_paths(model, eo, nullptr);
        Trace all;  // every position, cache reads included
        const std::vector<float> traced = run_all_paths(model, eo, &all);
        CHECK(!all.records.empty());
        const auto d = first_byte_difference(traced, plain);
        INFO("first differing float: " << (d ? static_cast<long>(*d) : -1L) << " of " << plain.size());
        CHECK(!d);
        Trace some;  // a few positions only
        some.positions = {3, 9};
        CHECK(same_bytes(run_all_paths(model, eo, &some), plain));
      }
}

TEST_CASE("the trace records the final LayerNorm row each logits row came from") {
  const Config c = make_config(61, 32, 2, 4, 64, 64);
  const Model model = random_model(c, 9);
  for (Fault fault : {Fault::None, Fault::LogitsRow}) {
    EngineOptions eo;
    eo.batch = 2;
    eo.fault = fault;
    Engine engine(model, eo);
    Trace trace;
    engine.set_trace(&trace);
    Rng rng(3);
    const auto a = random_tokens(rng, 2, c.vocab_size), b = random_tokens(rng, 4, c.vocab_size);
    std::vector<float> logits(2 * static_cast<size_t>(c.vocab_size));
    const Chunk chunks[] = {{0, a}, {1, b}};
    engine.forward_batch(chunks, logits);
    int seen = 0;
    for (const TraceRecord& r : trace.records) {
      if (r.kind != TraceKind::FinalLn) continue;
      ++seen;
      INFO("fault " << to_string(fault) << ", sequence " << r.seq);
      CHECK(r.layer == c.n_layer - 1);
      CHECK(r.pos == (r.seq == 0 ? 1 : 3));
      // logits-row: sequence 1's logits from its row 1 (the first chunk's length, 2, minus 1).
      const bool moved = fault == Fault::LogitsRow && r.seq == 1;
      CHECK(r.from_seq == r.seq);
      CHECK(r.from_pos == (moved ? 1 : r.pos));
      CHECK(r.from_row == (r.seq == 0 ? 1 : (moved ? 3 : 5)));
    }
    CHECK(seen == 2);
  }
}
