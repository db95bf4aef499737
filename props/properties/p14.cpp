// p14: the same bytes on any thread count. A case is a small history (a ragged batched call of up
// to three prompts' heads, then decode calls feeding their tails) and two thread counts t1 != t2
// from 1..4. The history cached on t1 must equal full recompute on t2 and the history cached on
// t2, every logit bit for bit, and every K and V row where the engine shows them. Needs
// Capability Threads: a kernel that splits a reduction by thread shows here, never in p1..p13,
// which run cached and uncached on one thread count.
#include <algorithm>

#include "props/case_property.h"
#include "props/level.h"
#include "props/logit_rows.h"
#include "props/verdict.h"

namespace miniinfer::props {
namespace {

constexpr int kMaxThreads = 4;
constexpr int kMaxDecode = 3;

std::string on(int threads) { return fmt::format("{} thread{}", threads, threads == 1 ? "" : "s"); }

struct ThreadsCase : CaseCore {
  int decode = 0;            // each prompt's last `decode` tokens (all but its first, at most) go one per decode call
  std::vector<int> threads;  // {t1, t2}
};

// Tokens of prompt `p` in the batched call; the rest are decoded.
int head_len(const std::vector<int>& p, int decode) {
  return static_cast<int>(p.size()) - std::min(decode, static_cast<int>(p.size()) - 1);
}

// A logits row of a run: the call that computed it, its sequence and position.
struct Row {
  int call = 0, seq = 0, pos = 0;
};

// One cached run of the history: its logits rows in call order and, where the engine shows them,
// each sequence's K and V rows at the end.
struct CachedRun {
  std::vector<Row> rows;
  std::vector<float> logits;  // (rows, V)
  std::vector<KvRows> kv;     // by sequence
};

// Gives the engine back the run's thread count at the end of a case or report, whatever the
// runs inside set (each run sets its own count and leaves it: fewer changes, which cost an
// outside engine such as llama.cpp more than a call).
class RunThreads {
 public:
  explicit RunThreads(EngineUnderTest& e) : e_(e), before_(e.threads()) {}
  ~RunThreads() { e_.set_threads(before_); }
  RunThreads(const RunThreads&) = delete;
  RunThreads& operator=(const RunThreads&) = delete;

 private:
  EngineUnderTest& e_;
  int before_;
};

// The history on the cache with `threads` threads, from a clean slate. With a trace, call
// `traced_call` is traced (trace_call).
CachedRun run_cached(EngineUnderTest& e, const ThreadsCase& c, int threads, Trace* trace = nullptr,
                     int traced_call = -1) {
  e.clean_slate();
  e.set_threads(threads);
  if (trace && !e.trace_call(trace, traced_call)) fail("p14: engine {} cannot trace a call", e.name());
  const size_t V = static_cast<size_t>(e.vocab_size());
  CachedRun run;
  std::vector<Chunk> chunks;
  for (size_t s = 0; s < c.prompts.size(); ++s) {
    const int n = head_len(c.prompts[s], c.decode);
    chunks.push_back({static_cast<int>(s), std::span<const int>(c.prompts[s]).first(static_cast<size_t>(n))});
    run.rows.push_back({0, static_cast<int>(s), n - 1});
  }
  run.logits.resize(chunks.size() * V);
  e.forward_batch(chunks, run.logits);
  for (int step = 0; step < c.decode; ++step) {
    std::vector<int> seqs, tokens;
    for (size_t s = 0; s < c.prompts.size(); ++s) {
      const int pos = head_len(c.prompts[s], c.decode) + step;
      if (pos >= static_cast<int>(c.prompts[s].size())) continue;
      seqs.push_back(static_cast<int>(s));
      tokens.push_back(c.prompts[s][static_cast<size_t>(pos)]);
      run.rows.push_back({step + 1, static_cast<int>(s), pos});
    }
    if (seqs.empty()) break;
    std::vector<float> logits(seqs.size() * V);
    e.decode(seqs, tokens, logits);
    run.logits.insert(run.logits.end(), logits.begin(), logits.end());
  }
  if (e.has(Capability::KvRows))
    for (size_t s = 0; s < c.prompts.size(); ++s) run.kv.push_back(*e.cache_rows(static_cast<int>(s)));
  return run;
}

// Full recompute, with `threads` threads, of each row's sequence up to its position: (rows, V).
std::vector<float> run_uncached(EngineUnderTest& e, const ThreadsCase& c, const std::vector<Row>& rows, int threads) {
  e.set_threads(threads);
  std::vector<float> out;
  for (const Row& r : rows) {
    const auto l = e.forward_uncached(std::span<const int>(c.prompts[static_cast<size_t>(r.seq)]).first(static_cast<size_t>(r.pos) + 1));
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

// Full recompute's K and V rows of every sequence with `threads` threads.
std::vector<KvRows> recompute_rows(EngineUnderTest& e, const ThreadsCase& c, int threads) {
  e.set_threads(threads);
  std::vector<KvRows> out;
  for (const auto& p : c.prompts) out.push_back(*e.recompute_rows(p));
  return out;
}

// One comparison of the report: a cached run on `cached` threads against a reference (full
// recompute, or the other cached run) on `ref` threads.
struct Pair {
  std::string what;
  int cached = 0, ref = 0;
  const std::vector<float>* a;
  const std::vector<float>* b;
};

class P14 final : public CaseProperty<ThreadsCase> {
 public:
  P14()
      : CaseProperty({"p14", "the same bytes on any thread count: cached on t1 threads equals full recompute and the cache on t2",
                      200, {Capability::Threads}}) {}

  ThreadsCase draw() const override {
    ThreadsCase c;
    c.params.max_new_tokens = 0;  // nothing is drawn: the decode calls feed the prompts' tails
    // One to three prompts: a case shrinks to one, and a batch is ragged as drawn.
    const auto prompts = *rc::gen::container<std::vector<gen::Prompt>>(static_cast<size_t>(*rc::gen::inRange(1, 4)),
                                                                       gen::genPrompt());
    tag(prompts.front());
    for (const auto& p : prompts) c.prompts.push_back(ids_of(p));
    if (c.prompts.size() >= 2) RC_TAG("batched");
    c.decode = *rc::gen::inRange(0, kMaxDecode + 1);
    // t2 is drawn from the counts other than t1, so both shrink towards 1 and 2.
    const int t1 = *rc::gen::inRange(1, kMaxThreads + 1);
    const int other = *rc::gen::inRange(1, kMaxThreads);
    c.threads = {t1, other < t1 ? other : other + 1};
    RC_TAG(c.decode > 0 ? "decodes" : "one batched call");
    RC_TAG(std::min(t1, c.threads[1]) == 1 ? "1 thread against more" : "several threads on both");
    return c;
  }

  std::optional<std::string> check(EngineUnderTest& e, ThreadsCase& c) const override {
    const int V = e.vocab_size(), t1 = c.threads[0], t2 = c.threads[1];
    const RunThreads keep(e);
    const CachedRun a = run_cached(e, c, t1);
    const auto u = run_uncached(e, c, a.rows, t2);
    if (auto f = judge(fmt::format("logits, cached on {} vs full recompute on {}", on(t1), on(t2)), compare_rows(a.logits, u, V),
                       V, &a.logits, &u))
      return f;
    if (e.has(Capability::KvRows))
      if (const auto p = first_row_parting(a.kv, recompute_rows(e, c, t2)))
        return fmt::format("cached on {} vs full recompute on {}: {}", on(t1), on(t2), row_text(*p));
    const CachedRun b = run_cached(e, c, t2);
    if (auto f = judge(fmt::format("logits, cached on {} vs cached on {}", on(t1), on(t2)), compare_rows(a.logits, b.logits, V),
                       V, &a.logits, &b.logits))
      return f;
    if (const auto p = first_row_parting(a.kv, b.kv))
      return fmt::format("cached on {} vs cached on {}: {}", on(t1), on(t2), row_text(*p));
    return std::nullopt;
  }

  std::vector<Scenario> scenarios(const ThreadsCase&) const override { return {}; }

  std::string details(const ThreadsCase& c) const override {
    return fmt::format(" decode {} threads {} {}", c.decode, c.threads[0], c.threads[1]);
  }
  void write(const ThreadsCase& c, CaseFields& f) const override {
    f.k = c.decode;
    f.threads = c.threads;
  }
  ThreadsCase read(const CaseFields& f) const override {
    if (f.threads.size() != 2 || f.threads[0] == f.threads[1])
      fail("case: p14 needs two different thread counts (threads: [t1, t2]), got {} counts", f.threads.size());
    for (int t : f.threads)
      if (t < 1 || t > kMaxThreads) fail("case: p14 thread count {} outside 1..{}", t, kMaxThreads);
    if (f.k > kMaxDecode) fail("case: p14 decodes at most {} tokens per prompt (k), got {}", kMaxDecode, f.k);
    ThreadsCase c;
    static_cast<CaseCore&>(c) = f.core;
    c.decode = f.k;
    c.threads = f.threads;
    return c;
  }

  Failure report(const ThreadsCase& c, const std::string& headline) const override;
};

// The report: which thread counts part (each cached run against full recompute on either count
// and against the other), then where: the first logits row that parts, its call traced on both
// sides and diffed component by component (the first parting layer, head and component); on an
// engine that cannot trace, the row; when every logit agrees, the first cache row that parts.
Failure P14::report(const ThreadsCase& c, const std::string& headline) const {
  EngineUnderTest& e = *context().subject;
  const Tokenizer& tok = *context().tokenizer;
  const int V = e.vocab_size(), t1 = c.threads[0], t2 = c.threads[1];
  Failure f;
  f.property = id();
  f.headline = headline;
  f.case_json = to_json(c);
  std::string text = fmt::format("  {}\n  threads: {} and {}\n", headline, t1, t2);
  const RunThreads keep(e);
  for (size_t s = 0; s < c.prompts.size(); ++s)
    text += fmt::format("  sequence {}: \"{}\" ({} of its {} tokens in the batched call, the rest decoded one per call)\n",
                        s, tok.decode(c.prompts[s]), head_len(c.prompts[s], c.decode), c.prompts[s].size());
  nlohmann::json j = {{"property", id()}, {"headline", headline}, {"threads", c.threads}};
  CachedRun a, b;
  std::vector<float> u1, u2;
  try {
    a = run_cached(e, c, t1);
    b = run_cached(e, c, t2);
    u1 = run_uncached(e, c, a.rows, t1);
    u2 = run_uncached(e, c, a.rows, t2);
  } catch (const std::exception& err) {
    f.text = text + fmt::format("  the run stopped: {}\n", err.what());
    f.json = j;
    return f;
  }
  const std::vector<Pair> pairs = {
      {"cached vs full recompute", t1, t2, &a.logits, &u2}, {"cached vs cached", t1, t2, &a.logits, &b.logits},
      {"cached vs full recompute", t2, t2, &b.logits, &u2}, {"cached vs full recompute", t1, t1, &a.logits, &u1},
      {"full recompute vs full recompute", t1, t2, &u1, &u2}};
  nlohmann::json parted = nlohmann::json::array();
  const Pair* located = nullptr;
  for (const Pair& p : pairs) {
    const Closeness cl = compare_rows(*p.a, *p.b, V);
    text += fmt::format("  logits, {}: {} vs {}: {}\n", p.what, on(p.cached), on(p.ref), cl.describe());
    parted.push_back({{"compared", p.what}, {"threads", {p.cached, p.ref}}, {"bit_identical", cl.bit_identical()}});
    if (!located && !cl.bit_identical() && p.what == "cached vs full recompute") located = &p;
  }
  j["compared"] = parted;
  // Whether the thread count is the cause at all: each path's logits on both counts.
  const bool invariant = compare_rows(a.logits, b.logits, V).bit_identical() && compare_rows(u1, u2, V).bit_identical();
  j["thread_count_invariant"] = invariant;
  text += invariant ? "  each path gives the same logits on both counts: the thread count is not the cause; the cached path "
                      "and full recompute part on one count (p6's comparison)\n"
                    : "  a path's logits depend on the thread count\n";
  if (located) {
    // The first row that parts, and its call traced on the cached side and recomputed on the other.
    size_t r = 0;
    while (std::equal(located->a->begin() + static_cast<long>(r * V), located->a->begin() + static_cast<long>((r + 1) * V),
                       located->b->begin() + static_cast<long>(r * V)))
      ++r;
    const Row row = a.rows[r];
    const auto& prompt = c.prompts[static_cast<size_t>(row.seq)];
    text += fmt::format("  first parting row: call {} ({}), sequence {}, position {} (after \"{}\"), cached on {} vs "
                        "full recompute on {}\n",
                        row.call, row.call == 0 ? "the batched call" : "a decode call", row.seq, row.pos,
                        tok.decode(std::vector<int>(prompt.begin(), prompt.begin() + row.pos + 1)), on(located->cached),
                        on(located->ref));
    j["parting_row"] = {{"call", row.call}, {"sequence", row.seq}, {"position", row.pos},
                        {"threads", {located->cached, located->ref}}};
    if (e.has(Capability::Trace)) {
      const Config& cf = e.config();
      Trace ref, cached;
      ref.seq = row.seq;
      e.set_threads(located->ref);
      e.trace_call(&ref, 0);
      e.forward_uncached(std::span<const int>(prompt).first(static_cast<size_t>(row.pos) + 1));
      cached.seq = row.seq;
      const CachedRun traced = run_cached(e, c, located->cached, &cached, row.call);
      if (traced.logits != *located->a) {
        text += "  the traced run differs from the untraced run: no diagnosis from the trace\n";
        j["cause"] = "engine-error";
      } else {
        int call = -1;
        std::vector<int> positions;
        for (const auto& rec : cached.records)
          if (rec.seq == row.seq && rec.kind == TraceKind::Q && rec.layer == 0 && rec.head == 0) {
            call = rec.call;
            positions.push_back(rec.pos);
          }
        const CallDiff d = diff_traced_call(ref, cached, call, row.seq, positions, 0, cf.n_layer, cf.n_head, e.kv_dtype());
        text += d.text;
        j.update(d.json);
      }
    } else {
      const Measured m = measure(std::span<const float>(*located->a).subspan(r * V, static_cast<size_t>(V)),
                                 std::span<const float>(*located->b).subspan(r * V, static_cast<size_t>(V)));
      const Verdict v = classify(m, "f32");
      text += fmt::format("  this engine cannot trace its calls, so no layer is named: the row's logits differ by max |d| "
                          "{:.3g}\n", m.max_abs) + verdict_line(v, "f32", -1, "logits");
      j["first_parting"] = {{"layer", -1}, {"head", -1}, {"component", "logits"}, {"position", row.pos},
                            {"max_abs", m.max_abs}, {"max_ulp", m.max_ulp}};
      j["cause"] = "forward";
      j["verdict"] = verdict_word(v);
    }
  } else if (e.has(Capability::KvRows)) {
    // Every logit agrees: the cache rows part (on t1 against recompute on t2, or against t2's cache).
    const auto ref = recompute_rows(e, c, t2);
    auto p = first_row_parting(a.kv, ref);
    const std::vector<KvRows>& other = p ? ref : b.kv;
    if (!p) p = first_row_parting(a.kv, b.kv);
    if (p) {
      const auto& x = a.kv[static_cast<size_t>(p->seq)];
      const auto& y = other[static_cast<size_t>(p->seq)];
      const std::string dtype = value_dtype("cache", e.kv_dtype());
      const Verdict v = classify(p->k ? measure(x.k_row(p->layer, p->head, p->slot), y.k_row(p->layer, p->head, p->slot))
                                      : measure(x.v_row(p->layer, p->head, p->slot), y.v_row(p->layer, p->head, p->slot)),
                                 dtype);
      text += fmt::format("  every logit agrees; cached on {} vs {} on {}: {}\n", on(t1),
                          &other == &ref ? "full recompute" : "cached", on(t2), row_text(*p)) +
              verdict_line(v, dtype, p->layer, "cache");
      j["first_parting"] = {{"layer", p->layer}, {"head", p->head}, {"component", "cache"}, {"slot", p->slot},
                            {"sequence", p->seq}};
      j["cause"] = "forward";
      j["verdict"] = verdict_word(v);
    }
  }
  if (!j.contains("first_parting") && !j.contains("cause")) {
    text += "  every logit and cache row agrees on this replay: the difference did not come again\n";
    j["cause"] = "engine-error";
  }
  f.text = text;
  f.json = j;
  f.located = j.contains("first_parting");
  return f;
}

}  // namespace

const Property& p14() {
  static const P14 property;
  return property;
}

}  // namespace miniinfer::props
