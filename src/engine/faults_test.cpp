// Every fault in the catalogue is a real bug: the comparisons the checker makes (cached vs
// uncached tokens and logit bytes, K/V rows, resume, a second generate on the same engine)
// catch each one, and none of them fires with Fault::None. Also: the trace lines both paths
// up by (layer, head, position) and points at the first layer a fault touches.
#include "engine/faults.h"

#include <catch2/catch.hpp>
#include <set>

#include "base/error.h"
#include "engine/engine_replay.h"
#include "engine/engine_test_util.h"
#include "engine/generate.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {

// The first comparison that tells `fault` apart from full recompute, or "" if none does.
// A quantized cache's fault is looked for on int8 with a residual of 4, which it picks in props.
std::string first_detection(const Model& model, Fault fault) {
  const Config& c = model.config;
  Rng rng(77);
  const std::vector<std::vector<int>> prompts = {random_tokens(rng, 5, c.vocab_size), random_tokens(rng, 9, c.vocab_size)};
  GenerateOptions o;
  o.max_new_tokens = 8;
  o.seed = 3;
  o.temperature = 0.8f;
  o.return_logits = true;
  o.fault = fault;
  EngineOptions options{Backend::Invariant, 2, 0, Fault::None, KvLayout::Contiguous, {}};
  if (acts_on_window(fault)) {  // a window of 8 with 2 sinks and no spare: the ring wraps at 8
    options.window = 8;
    options.sinks = 2;
    options.window_spare = 0;
  }
  if (acts_on_quantized(fault)) {
    options.kv_quant = KvQuant::Int8;
    options.kv_residual = 4;
  }
  Engine engine(model, options);
  engine.set_threads(2);  // split-k acts on more than one thread only
  o.cache = false;
  const GenerateResult reference = generate(engine, prompts, o);
  o.cache = true;
  const GenerateResult cached = generate(engine, prompts, o);
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (cached.tokens[b] != reference.tokens[b]) return fmt::format("tokens of sequence {}", b);
    if (auto d = first_byte_difference(cached.logits[b], reference.logits[b]))
      return fmt::format("logit bytes of sequence {} at step {}", b, *d / static_cast<size_t>(c.vocab_size));
  }
  for (size_t b = 0; b < prompts.size(); ++b) {
    std::vector<int> all = prompts[b];
    all.insert(all.end(), cached.tokens[b].begin(), cached.tokens[b].end() - 1);
    KvRows kv;
    engine.forward_uncached(all, false, &kv);
    for (int l = 0; l < c.n_layer; ++l)
      for (int h = 0; h < c.n_head; ++h)
        for (int s = 0; s < static_cast<int>(all.size()); ++s)
          if (!same_bytes(engine.cache().k_row(l, static_cast<int>(b), h, s), kv.k_row(l, h, s)) ||
              !same_bytes(engine.cache().v_row(l, static_cast<int>(b), h, s), kv.v_row(l, h, s)))
            return fmt::format("K/V row of sequence {} layer {} head {} slot {}", b, l, h, s);
  }
  const GenerateResult again = generate(engine, prompts, o);
  if (again.tokens != cached.tokens || again.logits != cached.logits) return "a second generate on the same engine";
  // Resume: a 6-token chunk on top of a 5-token prefill.
  engine.set_fault(fault);
  engine.reset();
  const std::vector<int> tokens = random_tokens(rng, 11, c.vocab_size);
  engine.forward_cached(0, std::span(tokens).first(5));
  const auto resumed = engine.forward_cached(0, std::span(tokens).subspan(5), true);
  const auto full = engine.forward_uncached(tokens, true);
  if (!same_bytes(resumed, std::span(full).subspan(5 * static_cast<size_t>(c.vocab_size)))) return "a resumed chunk's logits";
  // A history: fork sequence 0 into 1, roll 1 back, then one call that resumes 1 with a chunk
  // while sequence 0 decodes a token (continuous batching).
  engine.reset();
  engine.forward_cached(0, std::span(tokens).first(5));
  engine.fork(0, 1, 5);
  engine.truncate(1, 3);
  const Chunk mixed[] = {{1, std::span(tokens).subspan(5, 4)}, {0, std::span(tokens).subspan(9, 1)}};
  const size_t V = static_cast<size_t>(c.vocab_size);
  std::vector<float> got(2 * V);
  engine.forward_batch(mixed, got);
  std::vector<int> one(tokens.begin(), tokens.begin() + 3), zero(tokens.begin(), tokens.begin() + 5);
  one.insert(one.end(), tokens.begin() + 5, tokens.begin() + 9);
  zero.push_back(tokens[9]);
  if (!same_bytes(std::span(got).first(V), engine.forward_uncached(one))) return "a forked, rolled back and resumed sequence";
  if (!same_bytes(std::span(got).subspan(V), engine.forward_uncached(zero))) return "a decode row next to a prefill chunk";
  // Speculative decoding: verify 4 rows on a 5-token prefill, keep 2 of them, then decode one.
  engine.reset();
  engine.forward_cached(0, std::span(tokens).first(5));
  const auto verified = engine.verify(0, std::span(tokens).subspan(5, 4));
  const std::vector<float> nine = engine.forward_uncached(std::span(tokens).first(9), true);
  if (!same_bytes(verified, std::span(nine).subspan(5 * V)))
    return "a verify call's logits";
  engine.rollback(0, 7);
  std::vector<int> kept(tokens.begin(), tokens.begin() + 7);
  kept.push_back(tokens[10]);
  if (!same_bytes(engine.forward_cached(0, std::span(tokens).subspan(10, 1)), engine.forward_uncached(kept)))
    return "a decode after a rollback";
  return "";
}

// A paged engine (blocks of 4 slots, capacity 16, three sequences, a pool of `pool` blocks).
EngineOptions paged_options(Fault fault, int pool) {
  EngineOptions o;
  o.batch = 3;
  o.capacity = 16;
  o.fault = fault;
  o.layout = KvLayout::Paged;
  o.paged.block_size = 4;
  o.paged.pool_blocks = pool;
  return o;
}

// Six short histories on the paged layout, one aimed at each paged fault; the first
// difference from full recompute any of them shows, or "" if none does.
std::string paged_detection(const Model& model, Fault fault) {
  const int V = model.config.vocab_size;
  Rng rng(91);
  const auto A = random_tokens(rng, 12, V), C = random_tokens(rng, 16, V), D = random_tokens(rng, 8, V);
  const auto first = [&](std::span<const int> t, size_t n) { return std::vector<int>(t.begin(), t.begin() + static_cast<long>(n)); };
  std::vector<std::string> found;
  {  // a prompt that differs from a cached one in a block's last token only
    Engine e(model, paged_options(fault, 0));
    Replay r(e);
    r.submit(0, first(A, 9));
    r.free(0);
    auto B = first(A, 9);
    B[3] = (B[3] + 1) % V;
    r.submit(1, B);
    found.push_back(r.first());
  }
  {  // a fork's partly filled last block, written by the fork
    Engine e(model, paged_options(fault, 0));
    Replay r(e);
    r.submit(0, first(A, 10));
    r.fork(0, 1, 9);
    r.append(1, first(C, 1));
    r.check_all_rows();
    found.push_back(r.first());
  }
  {  // the fork's source released, then its blocks handed out again
    Engine e(model, paged_options(fault, 8));
    Replay r(e);
    r.submit(0, first(A, 10));
    r.fork(0, 1, 9);
    r.free(0);
    r.submit(2, C);
    r.submit(0, D);
    r.check_all_rows();
    r.append(1, first(D, 1));
    found.push_back(r.first());
  }
  {  // a prefill across block boundaries
    Engine e(model, paged_options(fault, 0));
    Replay r(e);
    r.submit(0, first(A, 9));
    r.check_all_rows();
    found.push_back(r.first());
  }
  {  // a cached block evicted (the pool holds one sequence), then its old prefix asked for
    Engine e(model, paged_options(fault, 4));
    Replay r(e);
    r.submit(0, first(A, 8));
    r.free(0);
    r.submit(1, first(C, 11));
    r.submit(2, first(A, 9));
    found.push_back(r.first());
  }
  {  // a released partial block, then a prompt continuing it with the ids its free slots hold
    Engine e(model, paged_options(fault, 0));
    Replay r(e);
    r.submit(0, first(A, 6));
    r.free(0);
    auto B = first(A, 6);
    B.insert(B.end(), {0, 0, 1});
    r.submit(1, B);
    found.push_back(r.first());
  }
  for (const std::string& f : found)
    if (!f.empty()) return f;
  return "";
}

// The rows a variation point is asked about: a decode row of sequence 1 at the last layer next
// to a 3-row chunk of sequence 0, and rows 0 and 1 of a prefill and of a resume chunk.
std::vector<RowSite> probe_sites() {
  RowSite base;
  base.n_segs = 2;
  base.chunk_n = 3;
  base.n_layer = 3;
  base.d_head = 8;
  base.max_seq_len = 64;
  std::vector<RowSite> sites;
  RowSite decode = base;
  decode.pass = Pass::Decode;
  decode.layer = 2;
  decode.seq = 1;
  decode.seg_pos0 = 5;
  decode.first_pos0 = 0;
  sites.push_back(decode.row(0));
  for (Pass pass : {Pass::Prefill, Pass::Resume, Pass::Verify}) {
    RowSite chunk = base;
    chunk.pass = pass;
    chunk.layer = 1;
    chunk.seg_pos0 = pass == Pass::Prefill ? 0 : 4;
    chunk.seg_n = 3;
    chunk.first_pos0 = 7;
    for (int i : {0, 1}) sites.push_back(chunk.row(i));
  }
  return sites;
}

// A cache's cursors and bytes, to compare what two variations' cache operations did.
std::vector<float> cache_state(const KvCache& cache) {
  std::vector<float> state;
  for (int seq = 0; seq < cache.batch(); ++seq) {
    state.push_back(static_cast<float>(cache.cursor(seq)));
    for (int l = 0; l < cache.n_layer(); ++l) {
      const size_t n = static_cast<size_t>(cache.capacity()) * cache.d_model();
      state.insert(state.end(), cache.k_slab(l, seq), cache.k_slab(l, seq) + n);
      state.insert(state.end(), cache.v_slab(l, seq), cache.v_slab(l, seq) + n);
    }
  }
  return state;
}

// Two sequences of 3 tokens with different rows in every layer; `op` runs on it.
template <class Op>
std::vector<float> after(Op op) {
  KvCache cache(2, 2, 1, 2, 4);
  for (int seq = 0; seq < 2; ++seq) {
    cache.advance(seq, 3);
    for (int l = 0; l < 2; ++l) {
      std::fill_n(cache.k_slab(l, seq), 8, static_cast<float>(10 * seq + l));
      std::fill_n(cache.v_slab(l, seq), 8, static_cast<float>(20 * seq + l));
    }
  }
  op(cache);
  return cache_state(cache);
}

// The variation points at which `v` answers differently from the model at the probe sites.
std::vector<std::string> deviations(const Variation& v) {
  const Variation& m = model_variation();
  std::set<std::string> points;
  for (const RowSite& r : probe_sites()) {
    if (v.rope_position(r) != m.rope_position(r)) points.insert("positions");
    const CacheWrite a = v.cache_write(r), b = m.cache_write(r);
    if (a.slot != b.slot || a.v_lands != b.v_lands) points.insert("cache write");
    if (!(v.slots_read(r) == m.slots_read(r))) points.insert("slots read");
    const Numerics x = v.attention_numerics(r), y = m.attention_numerics(r);
    if (x.fp64 != y.fp64 || !same_bytes(std::span(&x.scale, 1), std::span(&y.scale, 1))) points.insert("numerics");
    if (x.mutant != y.mutant) points.insert("kernel mutant");
    if (v.logits_row(r) != m.logits_row(r)) points.insert("logits row");
  }
  for (bool all_decode : {false, true}) {
    if (v.library_products(all_decode) != m.library_products(all_decode)) points.insert("library products");
    if (v.reversed_layernorm(all_decode) != m.reversed_layernorm(all_decode)) points.insert("layernorm order");
  }
  if (v.stale_coin() != m.stale_coin()) points.insert("stale coin");
  for (int threads = 1; threads <= 4; ++threads)
    if (v.fc_out_k_parts(threads) != m.fc_out_k_parts(threads)) points.insert("fc_out k parts");
  auto differ = [&](auto op) { return after([&](KvCache& c) { op(v, c); }) != after([&](KvCache& c) { op(m, c); }); };
  if (differ([](const Variation& x, KvCache& c) { x.start_request(c, 1); })) points.insert("start request");
  if (differ([](const Variation& x, KvCache& c) { x.truncate(c, 1, 1); })) points.insert("truncate");
  if (differ([](const Variation& x, KvCache& c) { x.fork(c, 0, 1, 3); })) points.insert("fork");
  // Rollback is the variation's own truncate unless a fault overrides the rollback itself.
  if (after([&](KvCache& c) { v.rollback(c, 1, 1); }) != after([&](KvCache& c) { v.truncate(c, 1, 1); }))
    points.insert("rollback");
  for (int bs : {1, 4, 16})
    if (v.block_key_tokens(bs) != m.block_key_tokens(bs)) points.insert("block key");
  if (v.copy_on_write() != m.copy_on_write()) points.insert("copy on write");
  if (v.fork_counts_last_block() != m.fork_counts_last_block()) points.insert("fork refcount");
  for (int bs : {1, 4})
    for (int slot = 0; slot < 12; ++slot)
      if (v.write_entry(slot, bs) != m.write_entry(slot, bs)) points.insert("write entry");
  if (v.evict_unregisters() != m.evict_unregisters()) points.insert("eviction");
  if (v.registers_partial_block() != m.registers_partial_block()) points.insert("partial block");
  for (const WindowSpec w : {WindowSpec{8, 2, 6}, WindowSpec{8, 0, 8}})
    for (int pos = 0; pos < 40; ++pos)
      if (v.ring_slot(pos, w) != m.ring_slot(pos, w)) points.insert("ring slot");
  for (int window = 1; window < 10; ++window)
    if (v.recompute_window(window) != m.recompute_window(window)) points.insert("recompute window");
  for (int cursor : {1, 4, 7})
    for (int residual : {0, 4})
      if (v.kv_flush(cursor, residual) != m.kv_flush(cursor, residual)) points.insert("kv flush");
  if (v.kv_scale_group(8, 32) != m.kv_scale_group(8, 32)) points.insert("scale group");
  return {points.begin(), points.end()};
}

}  // namespace

TEST_CASE("fault names round-trip, each has a description, and an unknown name lists the known ones") {
  CHECK(all_faults().size() == 37);
  for (Fault f : all_faults()) {
    CHECK(fault_from_name(to_string(f)) == f);
    CHECK(std::string(describe(f)).size() > 10);
    CHECK(std::string(imitates(f)).size() > 10);
  }
  CHECK_THROWS_WITH(fault_from_name("off-by-one"),
                    Catch::Matchers::StartsWith("unknown fault 'off-by-one' (known: none, cursor-off-by-one, "));
}

TEST_CASE("None is the model's variation, and every other fault deviates at exactly one variation point") {
  CHECK(&variation(Fault::None) == &model_variation());
  for (Fault f : all_faults()) {
    const std::vector<std::string> points = deviations(variation(f));
    std::string listed;
    for (const std::string& p : points) listed += " " + p;
    INFO("fault " << to_string(f) << " deviates at:" << listed);
    CHECK(points.size() == (f == Fault::None ? 0u : 1u));
  }
}

TEST_CASE("a new request starts on an empty cache unless the fault keeps the old rows") {
  const Config c = make_config(20, 8, 1, 2, 16, 16);
  const Model model = random_model(c, 4);
  for (Fault f : {Fault::None, Fault::CursorOffByOne, Fault::StaleCache}) {
    Engine engine(model, {Backend::Invariant, 2, 0, f, KvLayout::Contiguous, {}});
    engine.forward_cached(0, std::vector<int>{1, 2});
    engine.forward_cached(1, std::vector<int>{3});
    engine.start_request(1);
    INFO("fault " << to_string(f));
    CHECK(engine.cursor(0) == 2);
    CHECK(engine.cursor(1) == (f == Fault::StaleCache ? 1 : 0));
    engine.start_request();
    CHECK(engine.cursor(0) == (f == Fault::StaleCache ? 2 : 0));
  }
}

TEST_CASE("every fault is caught by comparing against full recompute, and Fault::None raises nothing") {
  const Config c = make_config(97, 32, 3, 4, 64, 64);
  const Model model = random_model(c, 21);
  for (Fault f : all_faults()) {
    const std::string found = acts_on_paged(f) ? paged_detection(model, f) : first_detection(model, f);
    INFO("fault " << to_string(f));
    if (f == Fault::None) {
      CHECK(found == "");
      CHECK(paged_detection(model, f) == "");
    } else {
      CHECK(found != "");
      WARN(to_string(f) << ": caught by " << found);
    }
  }
}

// But one: window-mask-wide makes the reference itself wrong, through the one point full
// recompute asks of a fault (variation.h: recompute_window).
TEST_CASE("a fault never touches full recompute, but window-mask-wide") {
  const Config c = make_config(97, 32, 3, 4, 64, 64);
  const Model model = random_model(c, 22);
  Rng rng(4);
  const auto tokens = random_tokens(rng, 20, c.vocab_size);
  for (Fault f : all_faults()) {
    EngineOptions o{Backend::Invariant, 1, 0, f, acts_on_paged(f) ? KvLayout::Paged : KvLayout::Contiguous, {}};
    EngineOptions clean_options;
    if (acts_on_window(f)) o.window = clean_options.window = 8, o.sinks = clean_options.sinks = 2;
    Engine clean(model, clean_options), faulty(model, o);
    INFO("fault " << to_string(f));
    CHECK(same_bytes(faulty.forward_uncached(tokens, true), clean.forward_uncached(tokens, true)) ==
          (f != Fault::WindowMaskWide));
  }
}

TEST_CASE("traces of both paths align by (layer, head, position) and name the first layer a fault breaks") {
  const Config c = make_config(60, 32, 3, 2, 48, 64);
  const Model model = random_model(c, 5);
  Rng rng(8);
  const auto prompt = random_tokens(rng, 6, c.vocab_size);
  const int next = 7, p = 6;  // the decode step under the microscope is position 6
  std::vector<int> all = prompt;
  all.push_back(next);
  for (Fault f : {Fault::None, Fault::LayerAlias, Fault::RopeDecodePhase}) {
    Engine engine(model, {Backend::Invariant, 1, 0, f, KvLayout::Contiguous, {}});
    Trace reference, cached;
    reference.positions = cached.positions = {p};
    engine.set_trace(&reference);
    engine.forward_uncached(all);
    engine.forward_cached(0, prompt);  // untraced prefill
    engine.set_trace(&cached);
    engine.forward_cached(0, std::span(&next, 1));
    engine.set_trace(nullptr);
    REQUIRE(cached.records.size() == reference.records.size());
    std::string first;
    for (size_t i = 0; i < cached.records.size() && first.empty(); ++i) {
      const TraceRecord &a = cached.records[i], &b = reference.records[i];
      REQUIRE((a.layer == b.layer && a.head == b.head && a.pos == b.pos && a.kind == b.kind));
      CHECK(a.pass == Pass::Decode);
      CHECK(b.pass == Pass::Uncached);
      if (!same_bytes(a.data, b.data)) first = fmt::format("layer {} head {} pos {} {}", a.layer, a.head, a.pos, to_string(a.kind));
    }
    INFO("fault " << to_string(f) << " first difference: " << first);
    if (f == Fault::None) CHECK(first == "");
    if (f == Fault::LayerAlias) CHECK(first.starts_with("layer 1 "));  // layer 0 reads its own cache
    if (f == Fault::RopeDecodePhase) CHECK(first == "layer 0 head 0 pos 6 q");
  }
}

TEST_CASE("a paged fault needs the paged layout, and a fault of the contiguous cache's operations the contiguous one") {
  const Model model = random_model(make_config(20, 8, 1, 2, 16, 16), 4);
  for (Fault f : all_faults()) {
    INFO("fault " << to_string(f));
    const bool paged = acts_on_paged(f), contiguous_only = acts_on_contiguous_only(f);
    CHECK(!(paged && contiguous_only));
    EngineOptions o;
    o.fault = f;
    if (acts_on_window(f)) {
      CHECK_THROWS_WITH(Engine(model, o), Catch::Contains("acts on the sliding window"));
      continue;
    }
    if (paged)
      CHECK_THROWS_WITH(Engine(model, o), fmt::format("fault '{}' acts on the paged cache: use the paged layout", to_string(f)));
    else
      CHECK_NOTHROW(Engine(model, o));
    o.layout = KvLayout::Paged;
    if (contiguous_only)
      CHECK_THROWS_WITH(Engine(model, o), fmt::format("fault '{}' acts on the contiguous cache's operations: use the contiguous layout",
                                                      to_string(f)));
    else
      CHECK_NOTHROW(Engine(model, o));
  }
  CHECK(acts_on_paged(Fault::CowMissing));
  CHECK(!acts_on_paged(Fault::ChunkMask));
}

TEST_CASE("split-k acts on the cached path above one thread only, and its bytes depend on the thread count") {
  const Config c = make_config(97, 32, 3, 4, 64, 64);
  const Model model = random_model(c, 23);
  Rng rng(5);
  const auto tokens = random_tokens(rng, 12, c.vocab_size);
  Engine clean(model, {Backend::Invariant, 1, 0, Fault::None, KvLayout::Contiguous, {}, 1});
  const auto expected = clean.forward_cached(0, tokens, true);
  std::vector<std::vector<float>> got;
  for (int threads = 1; threads <= 4; ++threads) {
    Engine faulty(model, {Backend::Invariant, 1, 0, Fault::SplitK, KvLayout::Contiguous, {}, threads});
    INFO("threads " << threads);
    CHECK(same_bytes(faulty.forward_uncached(tokens, true), clean.forward_uncached(tokens, true)));
    got.push_back(faulty.forward_cached(0, tokens, true));
    CHECK(same_bytes(got.back(), expected) == (threads == 1));
  }
  CHECK(!same_bytes(got[1], got[2]));  // 2 and 3 parts: another order again
}

TEST_CASE("split_k_matmul in one part is the plain dot product, and adds its parts in part order") {
  const float x[] = {1.0f, 1e8f, -1e8f, 1.0f};
  const float w[] = {1.0f, 1.0f, 1.0f, 1.0f};
  float one = 0.0f, two = 0.0f;
  split_k_matmul(&one, x, w, nullptr, 1, 4, 1, 1);  // ((1 + 1e8) - 1e8) + 1: the first 1 is lost
  split_k_matmul(&two, x, w, nullptr, 1, 4, 1, 2);  // (1 + 1e8) + (-1e8 + 1): both are
  CHECK(one == 1.0f);
  CHECK(two == 0.0f);
}
