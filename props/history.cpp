#include "props/history.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include "base/error.h"
#include "base/rng.h"
#include "generators/prompts.h"
#include "props/case_core.h"
#include "props/context.h"
#include "props/engine_registry.h"
#include "props/heatmap.h"
#include "props/json_fields.h"
#include "props/runner.h"
#include "props/scenario.h"
#include "props/verdict.h"

namespace miniinfer::props {
namespace {

std::map<std::vector<int>, struct Reference>& memo();

// p11 on any engine. What it checks depends on what the engine offers, and the mix line says
// what it left out:
//   K/V rows (ours, minigpt serve): every call's logits and every cache row against full
//     recompute's, and a call leaves the sequences it does not touch unchanged;
//   no K/V rows (llama.cpp, most process engines): every call's logits against the engine's
//     own full recompute (forward_uncached), "logits only"; a wrong row still shows in the
//     logits of the next call that reads it, a command later than with rows;
//   cursors: props reads a process engine's cursors from its own bookkeeping (the protocol
//     has no cursor query), so a wrong cursor shows as cache_rows of another length (an Error
//     the program fails on) or in the logits of the next call;
//   prefix cache (ours on the paged layout): also submits and frees; after every call the pool's
//     own check, and after every submit its reuse against the Pool model below; every program
//     runs again on a twin whose pool hands out blocks in another order (same bytes, same counts);
//   refusals: only on an engine of kHistoryCapacity slots (ours, llama.cpp: props sizes them).
//     One that holds more would rightly accept an append the model refuses, and over the
//     protocol an error other than out_of_capacity ends the run; there the calls the model
//     refuses are not sent ("refusals not checked"), so the programs are the same draws on
//     every engine, and what is sent is checked in full.
// The engine under test as p11 runs it: where its declaration lets props size it (ours,
// llama.cpp), a second one of kHistorySequences sequences of kHistoryCapacity slots, made from
// the subject's settings (rebuilt when a replay changes them); an engine with its own sizes
// (a process engine's hello) is the subject itself.
// With a prefix cache, p11's engine has a small pool (kServingPoolSlots), and a twin with the
// rows placed elsewhere in it (kTwinPlacement) runs every program again.
std::unique_ptr<EngineUnderTest> make_for_programs(const EngineDecl& decl, uint64_t placement) {
  const Context& ctx = context();
  const int capacity = std::min(kHistoryCapacity, ctx.model.config.max_seq_len);
  const nlohmann::json settings =
      decl.for_programs ? decl.for_programs(ctx.subject->settings(), capacity, kServingPoolSlots, placement)
                        : ctx.subject->settings();
  return decl.make(settings, ctx.model, kHistorySequences, capacity);
}

EngineUnderTest& engine() {
  static std::unique_ptr<EngineUnderTest> own;
  static std::string made_for;
  Context& ctx = context();
  const EngineDecl* decl = find_engine(ctx.subject->name());
  const std::string key = ctx.subject->name() + ctx.subject->settings().dump();
  if (key != made_for) memo().clear();  // the oracle is the engine's own full recompute
  if (decl->fixed_size) {
    own.reset();
    made_for = key;
    return *ctx.subject;
  }
  if (!own || key != made_for) {
    own.reset();
    own = make_for_programs(*decl, 0);
    made_for = key;
  }
  return *own;
}

// The placement twin of engine(), or nullptr where there is no prefix cache (no pool to place in).
EngineUnderTest* twin() {
  static std::unique_ptr<EngineUnderTest> own;
  static std::string made_for;
  EngineUnderTest& first = engine();
  const Context& ctx = context();
  const EngineDecl* decl = find_engine(ctx.subject->name());
  if (!first.has(Capability::PrefixCache) || decl->fixed_size || !decl->for_programs) return nullptr;
  const std::string key = ctx.subject->name() + ctx.subject->settings().dump();
  if (!own || key != made_for) {
    own.reset();
    own = make_for_programs(*decl, kTwinPlacement);
    made_for = key;
  }
  return own.get();
}

bool serving(const EngineUnderTest& e) { return e.has(Capability::PrefixCache); }

// The sequences a program may use on `e`: up to kHistorySequences, as many as the engine holds.
int max_batch(const EngineUnderTest& e) { return std::min(kHistorySequences, e.batch()); }
// Whether `e` can be asked for what the model refuses: an engine of kHistoryCapacity slots.
// One with more would accept an append the model refuses (and over the protocol an error other
// than out_of_capacity is a finding), so p11 does not send those calls there.
bool checks_refusals(const EngineUnderTest& e) { return e.capacity() == kHistoryCapacity; }
bool has_rows(const EngineUnderTest& e) { return e.has(Capability::KvRows); }

std::string words(const std::vector<int>& ids) { return context().tokenizer->decode(ids); }

// ---- the oracle: full recompute of a sequence's tokens, memoized by the tokens ---------------

struct Reference {
  std::vector<float> logits;  // (V) the last position's
  KvRows kv;                  // every K and V row
};

std::map<std::vector<int>, Reference>& memo() {
  static std::map<std::vector<int>, Reference> m;
  return m;
}

// A pure function of the tokens (and the engine), so caching it changes nothing. Its K/V rows
// only where the engine offers them.
// While RapidCheck draws a program (`generating`), a crash of the engine cannot fail the case
// (an exception there is not shrunk): the draw goes on with zero logits, not memoized, and the
// program's check asks the restarted engine again, where a crash is the case's finding.
bool generating = false;

const Reference& reference(const std::vector<int>& tokens) {
  auto& m = memo();
  if (auto it = m.find(tokens); it != m.end()) return it->second;
  EngineUnderTest& e = engine();
  Reference r;
  try {
    r.logits = e.forward_uncached(tokens, false);
    if (has_rows(e))
      if (auto kv = e.recompute_rows(tokens)) r.kv = std::move(*kv);
  } catch (const EngineCrashed&) {
    if (!generating) throw;
    static Reference zeros;
    zeros.logits.assign(static_cast<size_t>(e.vocab_size()), 0.0f);
    return zeros;
  }
  return m.emplace(tokens, std::move(r)).first->second;
}

bool same_bytes(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// ---- the model: what each engine call of a step does to the histories -----------------------

struct Call {
  std::vector<std::pair<int, std::vector<int>>> rows;  // a forward: (sequence, tokens appended)
  Histories after;                                     // the histories after the call
  bool refused = false;                                // the engine must refuse it
};

size_t len(const Histories& h, int seq) { return h.tokens[static_cast<size_t>(seq)].size(); }
bool is_freed(const Histories& h, int seq) { return !h.freed.empty() && h.freed[static_cast<size_t>(seq)]; }
void set_freed(Histories& h, int seq, bool freed) {
  if (h.freed.empty()) h.freed.assign(kHistorySequences, 0);
  h.freed[static_cast<size_t>(seq)] = freed;
}

// Where the last Verify on `seq` started (-1: none to roll back into).
void set_verified(Histories& h, int seq, int from) {
  if (h.verified.empty()) h.verified.assign(kHistorySequences, -1);
  h.verified[static_cast<size_t>(seq)] = from;
}
int verified_from(const Histories& h, int seq) {
  return h.verified.empty() ? -1 : h.verified[static_cast<size_t>(seq)];
}

// The model's start: B sequences, empty; `block` > 0 on an engine with a prefix cache.
Histories fresh(int batch, int block) {
  Histories h{batch, std::vector<std::vector<int>>(kHistorySequences)};
  h.block = block;
  return h;
}

// Serving: what the sequences held before this step, for a later Submit to share (the last 16).
void remember(Histories& h, const Histories& before) {
  if (h.block == 0) return;
  h.ghost.resize(kHistorySequences);
  for (size_t q = 0; q < h.tokens.size(); ++q) {
    const auto& old = before.ghost.empty() ? before.tokens[q] : before.ghost[q];
    h.ghost[q] = h.tokens[q];
    if (old.size() > h.ghost[q].size()) h.ghost[q].insert(h.ghost[q].end(), old.begin() + h.ghost[q].size(), old.end());
  }
  for (const auto& t : before.tokens)
    if (!t.empty() && std::find(h.seen.begin(), h.seen.end(), t) == h.seen.end()) h.seen.push_back(t);
  if (h.seen.size() > 16) h.seen.erase(h.seen.begin(), h.seen.end() - 16);
}

std::vector<Call> plan(const Histories& before, const Step& s) {
  const size_t cap = kHistoryCapacity;
  std::vector<Call> calls;
  Histories h = before;
  auto& t = h.tokens;
  auto forward = [&](std::vector<std::pair<int, std::vector<int>>> rows) {
    Call c{std::move(rows), h, false};
    for (const auto& [seq, toks] : c.rows)
      c.refused = c.refused || len(h, seq) + toks.size() > cap || is_freed(h, seq);
    if (!c.refused)
      for (const auto& [seq, toks] : c.rows) {
        auto& dst = t[static_cast<size_t>(seq)];
        dst.insert(dst.end(), toks.begin(), toks.end());
      }
    c.after = h;
    calls.push_back(std::move(c));
    return !calls.back().refused;
  };
  switch (s.kind) {
    case Step::Append:
      forward({{s.seqs[0], s.tokens[0]}});
      break;
    case Step::Verify: {
      const int from = static_cast<int>(len(h, s.seqs[0]));
      if (forward({{s.seqs[0], s.tokens[0]}})) set_verified(calls.back().after, s.seqs[0], from);
      break;
    }
    case Step::Mixed: {
      std::vector<std::pair<int, std::vector<int>>> rows;
      for (size_t j = 0; j < s.seqs.size(); ++j) rows.push_back({s.seqs[j], s.tokens[j]});
      forward(std::move(rows));
      break;
    }
    case Step::Decode: {
      std::vector<int> in;
      std::vector<Rng> coins;
      for (size_t j = 0; j < s.seqs.size(); ++j) {
        in.push_back(s.tokens[j][0]);
        coins.push_back(Rng::stream(s.seed, static_cast<uint64_t>(s.seqs[j])));
      }
      for (int call = 0; call < s.n; ++call) {
        std::vector<std::pair<int, std::vector<int>>> rows;
        for (size_t j = 0; j < s.seqs.size(); ++j) rows.push_back({s.seqs[j], {in[j]}});
        if (!forward(std::move(rows))) break;
        for (size_t j = 0; j < s.seqs.size(); ++j)
          in[j] = sample(reference(t[static_cast<size_t>(s.seqs[j])]).logits, s.sampler, coins[j].uniform());
      }
      break;
    }
    case Step::Truncate:
    case Step::Rollback: {
      Call c{{}, h, static_cast<size_t>(s.n) > len(h, s.seqs[0]) || is_freed(h, s.seqs[0])};
      if (!c.refused) t[static_cast<size_t>(s.seqs[0])].resize(static_cast<size_t>(s.n));
      if (!c.refused && s.kind == Step::Rollback) set_verified(h, s.seqs[0], -1);
      c.after = h;
      calls.push_back(std::move(c));
      break;
    }
    case Step::Fork: {
      const int src = s.seqs[0], dst = s.seqs[1];
      Call c{{}, h, src == dst || static_cast<size_t>(s.n) > len(h, src) || is_freed(h, src)};
      if (!c.refused) {
        const auto& from = t[static_cast<size_t>(src)];
        t[static_cast<size_t>(dst)].assign(from.begin(), from.begin() + s.n);
        if (is_freed(h, dst)) set_freed(h, dst, false);  // a fork revives its destination
      }
      c.after = h;
      calls.push_back(std::move(c));
      break;
    }
    case Step::Reset:
      t[static_cast<size_t>(s.seqs[0])].clear();
      if (is_freed(h, s.seqs[0])) set_freed(h, s.seqs[0], false);
      calls.push_back(Call{{}, h, false});
      break;
    case Step::Submit: {  // a new request: the sequence then holds exactly the prompt (and lives)
      Call c{{{s.seqs[0], s.tokens[0]}}, h, s.tokens[0].size() > cap};
      if (!c.refused) {
        t[static_cast<size_t>(s.seqs[0])] = s.tokens[0];
        if (is_freed(h, s.seqs[0])) set_freed(h, s.seqs[0], false);
      }
      c.after = h;
      calls.push_back(std::move(c));
      break;
    }
    case Step::Free: {  // every later command on it is refused until a submit, reset or fork revives it
      // A second free is refused like every other command on a freed sequence.
      Call c{{}, h, is_freed(h, s.seqs[0])};
      if (!c.refused) {
        t[static_cast<size_t>(s.seqs[0])].clear();
        set_freed(h, s.seqs[0], true);
      }
      c.after = h;
      calls.push_back(std::move(c));
      break;
    }
  }
  remember(calls.back().after, before);
  return calls;
}

Histories after(const Histories& before, const Step& s) { return plan(before, s).back().after; }

// ---- the system: the engine, one call at a time, checked after each ----------------------------

// Every K and V float of every sequence, and the cursors: what "left everything unchanged" means.
// Without K/V rows, the cursors alone. With a prefix cache the rows stand in for the slots (blocks
// move: copy-on-write, eviction), a freed sequence holds none, and a preempted one holds its
// tokens but no rows.
struct Snapshot {
  std::vector<std::vector<float>> slabs;  // (sequence) every K and V float it holds (cache_slots)
  std::vector<int> cursors;
  std::vector<char> preempted;            // (sequence) gave up its blocks
  Snapshot(EngineUnderTest& e, const Histories& h, bool rows = true) {
    for (int q = 0; q < e.batch(); ++q) {
      cursors.push_back(e.cursor(q));
      preempted.push_back(serving(e) && e.preempted(q));
      if (!rows || !has_rows(e)) continue;
      std::vector<float> all;
      if (!is_freed(h, q) && !preempted.back()) all = e.cache_slots(q);
      if (all.empty() && !is_freed(h, q) && !preempted.back())
        if (auto kv = e.cache_rows(q)) {
          all = std::move(kv->k);
          all.insert(all.end(), kv->v.begin(), kv->v.end());
        }
      slabs.push_back(std::move(all));
    }
  }
  // Sequence q as `before` left it. `may_preempt`: a call may take the blocks of a sequence it does
  // not touch (its tokens stay, which the cursor shows, and its next use recomputes them).
  bool same_slots(const Snapshot& before, int q, bool may_preempt = false) const {
    const size_t i = static_cast<size_t>(q);
    if (preempted[i] != before.preempted[i]) return may_preempt && preempted[i];
    if (preempted[i]) return true;
    return slabs.empty() || slabs[i] == before.slabs[i];
  }
};

struct Parting {
  int call = 0;
  int seq = -1;
  std::string what;
  bool logits = false;  // the call's logits differ (the reporter traces that call)
  bool cursor = false;  // the cursor differs from the history's length
  const char* site = nullptr;  // prefix cache: "pool" (its bookkeeping) or "prefix-hit" (a submit's reuse)
};

// The first (layer, head, slot) row of `seq` that differs from full recompute of `tokens`.
struct RowDiff {
  int layer = -1, head = -1, slot = -1;
  bool k = false, v = false;
  int count = 0;
  std::string listed;
  nlohmann::json rows = nlohmann::json::array();
};

RowDiff diff_rows(EngineUnderTest& e, int seq, const std::vector<int>& tokens, KvRows* held = nullptr) {
  RowDiff d;
  if (tokens.empty() || !has_rows(e)) return d;
  const Reference& ref = reference(tokens);
  const std::optional<KvRows> got = e.cache_rows(seq);
  if (!got) return d;
  if (held) *held = *got;
  const Config& c = e.config();
  const int n = std::min(got->T, static_cast<int>(tokens.size()));
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h)
      for (int s = 0; s < n; ++s) {
        if (!got->holds(s)) continue;  // a sliding window's dropped position
        const bool dk = !same_bytes(got->k_row(l, h, s), ref.kv.k_row(l, h, s));
        const bool dv = !same_bytes(got->v_row(l, h, s), ref.kv.v_row(l, h, s));
        if (!dk && !dv) continue;
        if (d.count == 0) d = RowDiff{l, h, s, dk, dv, 0, "", nlohmann::json::array()};
        ++d.count;
        d.rows.push_back({{"layer", l}, {"head", h}, {"slot", s}, {"k", dk}, {"v", dv}});
        if (d.count <= 12)
          d.listed += fmt::format("{}L{} H{} slot {} ({})", d.listed.empty() ? "" : ", ", l, h, s,
                                  dk && dv ? "K,V" : dk ? "K" : "V");
      }
  return d;
}

std::set<int> touched(const Step& s, const Call& c) {
  std::set<int> out;
  for (const auto& [seq, toks] : c.rows) out.insert(seq);
  if (s.kind == Step::Truncate || s.kind == Step::Reset || s.kind == Step::Free || s.kind == Step::Rollback)
    out.insert(s.seqs[0]);
  if (s.kind == Step::Fork) out.insert(s.seqs[1]);
  return out;
}

// ---- the prefix cache's model: beside the histories, on an engine with a prefix cache ---------

// What a program's run has seen of the pool: which prefixes of whole blocks some table held, what
// each physical block was last seen holding, and the eviction count when each prefix was last
// held in a block of the prefix cache. Such a prefix, with no eviction since, is still there (a
// held block is never evicted, a released one only by an eviction); one ever held may still be.
// Only registered blocks count for the first: a table may hold its own unregistered copy of a
// prefix another block is registered for, and that one can be evicted while the copy is held.
struct Pool {
  explicit Pool(int block_size = 0) : block(block_size) {}
  int block = 0;
  std::set<std::vector<int>> ever;           // prefixes (whole blocks) some table held
  std::map<std::vector<int>, int64_t> held;  // prefix -> evictions when a registered block last held it
  std::map<int, std::vector<int>> holds;     // physical block -> the prefix its rows hold
  std::vector<int> reused;                   // per Submit, the tokens it reused (the twin's must match)
  PagedStats stats;                          // after the last call
};

std::vector<int> prefix(const std::vector<int>& t, int n) { return {t.begin(), t.begin() + n}; }

// After a call: every live table's whole blocks hold their sequence's prefixes; a partial block
// that is not in the prefix cache is being written, so it holds no prefix any more.
void observe(EngineUnderTest& e, const Histories& h, Pool& pool) {
  pool.stats = e.serving_stats();
  for (int q = 0; q < h.batch; ++q) {
    if (is_freed(h, q) || e.preempted(q)) continue;
    const auto& t = h.tokens[static_cast<size_t>(q)];
    const std::vector<int> table = e.block_table(q);
    if (table.empty()) {  // an engine that shows no block tables (one over the protocol): the
      // prefixes its sequences held bound what a submit may reuse; no hit is sure, no block known
      for (int end = pool.block; end <= static_cast<int>(t.size()); end += pool.block) pool.ever.insert(prefix(t, end));
      continue;
    }
    for (size_t j = 0; j < table.size(); ++j) {
      const int end = static_cast<int>(j + 1) * pool.block;
      if (table[j] < 0 || static_cast<int>(j) * pool.block >= static_cast<int>(t.size())) continue;
      const bool registered = e.locate(q, static_cast<int>(j) * pool.block).registered;
      if (end <= static_cast<int>(t.size())) {
        pool.ever.insert(prefix(t, end));
        if (registered) pool.held[prefix(t, end)] = pool.stats.evictions;
        pool.holds[table[j]] = prefix(t, end);
      } else if (!registered) {
        pool.holds.erase(table[j]);
      }
    }
  }
}

// A Submit's reuse against the model: whole blocks; no more than the longest prefix of the
// prompt some table held (capped at all but its last token); at least the longest held with no
// eviction since; and each mapped block one that was seen holding that very prefix.
std::optional<std::string> check_reuse(EngineUnderTest& e, const Pool& pool, int seq, const std::vector<int>& prompt,
                                       int reused) {
  const int b = pool.block;
  const int cap = (static_cast<int>(prompt.size()) - 1) / b;
  int most = 0, sure = 0;
  for (int k = 1; k <= cap && pool.ever.count(prefix(prompt, k * b)); ++k) {
    most = k;
    const auto it = pool.held.find(prefix(prompt, k * b));
    if (sure == k - 1 && it != pool.held.end() && it->second == pool.stats.evictions) sure = k;
  }
  if (reused % b != 0) return fmt::format("the submit reused {} tokens, not whole blocks of {}", reused, b);
  if (reused > most * b)
    return fmt::format("the submit reused {} tokens; no table held more than {} of the prompt's first tokens in whole "
                       "blocks (of the {} it may reuse)", reused, most * b, cap * b);
  if (reused < sure * b)
    return fmt::format("the submit reused {} tokens; {} of them were held with no eviction since, so the prefix cache "
                       "holds them (a prefix hit missed)", reused, sure * b);
  const std::vector<int> table = e.block_table(seq);
  if (table.empty() && pool.holds.empty()) return std::nullopt;  // no block tables to check against
  for (int i = 0; i < reused / b; ++i) {
    const int phys = i < static_cast<int>(table.size()) ? table[static_cast<size_t>(i)] : -1;
    const auto it = pool.holds.find(phys);
    if (it == pool.holds.end() || it->second != prefix(prompt, (i + 1) * b))
      return fmt::format("the submit mapped physical block {} at block {}, which {} (it must hold \"{}\")", phys, i,
                         it == pool.holds.end() ? std::string("held no prefix")
                                                : fmt::format("held \"{}\"", words(it->second)),
                         words(prefix(prompt, (i + 1) * b)));
  }
  return std::nullopt;
}

// Runs step `s` on the engine, whose sequences hold `before`; checks every call against the
// model (and, with a prefix cache, `pool`). With a trace, call `traced_call` is traced and the
// step stops after it. A call the model refuses is sent only to an engine that checks_refusals.
std::optional<Parting> run_step(EngineUnderTest& e, const Histories& before, const Step& s, Trace* trace = nullptr,
                                int traced_call = -1, Pool* pool = nullptr) {
  const std::vector<Call> calls = plan(before, s);
  const size_t V = static_cast<size_t>(e.vocab_size());
  std::vector<int> in;  // Decode: this call's input per sequence, drawn from the engine's logits
  std::vector<float> rows;  // Verify: every row's logits
  std::vector<Rng> coins;
  for (size_t j = 0; s.kind == Step::Decode && j < s.seqs.size(); ++j) {
    in.push_back(s.tokens[j][0]);
    coins.push_back(Rng::stream(s.seed, static_cast<uint64_t>(s.seqs[j])));
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const Call& call = calls[i];
    const int ci = static_cast<int>(i);
    const Histories& prior = i == 0 ? before : calls[i - 1].after;
    if (call.refused && !checks_refusals(e)) continue;
    // Where no call is refused, a sequence the call did not touch is checked against full
    // recompute of its history instead of against its rows before the call: the same finding
    // (they equalled it before), without reading every sequence's rows twice per call (over the
    // protocol, two round trips a sequence).
    const bool by_history = !checks_refusals(e);
    const Snapshot snap(e, prior, !by_history);
    std::vector<float> logits(std::max<size_t>(1, call.rows.size()) * V);
    std::string error;
    int reused = 0;
    if (trace && ci == traced_call) e.trace_call(trace, 0);
    try {
      switch (s.kind) {
        case Step::Append: {
          const std::vector<float> row = e.forward_cached(s.seqs[0], s.tokens[0]);
          std::copy(row.begin(), row.end(), logits.begin());
          break;
        }
        case Step::Decode: e.decode(s.seqs, in, logits); break;
        case Step::Mixed: {
          std::vector<Chunk> chunks;
          for (size_t j = 0; j < s.seqs.size(); ++j) chunks.push_back({s.seqs[j], s.tokens[j]});
          e.forward_batch(chunks, logits);
          break;
        }
        case Step::Verify: {
          rows = e.verify(s.seqs[0], s.tokens[0]);
          if (rows.size() != s.tokens[0].size() * V)
            return Parting{ci, s.seqs[0], fmt::format("the verify of {} tokens gave {} logits, not {} rows of {}",
                                                      s.tokens[0].size(), rows.size(), s.tokens[0].size(), V), false};
          std::copy(rows.end() - static_cast<long>(V), rows.end(), logits.begin());  // the last row, checked below
          break;
        }
        case Step::Rollback: e.rollback(s.seqs[0], s.n); break;
        case Step::Truncate: e.truncate(s.seqs[0], s.n); break;
        case Step::Fork: e.fork(s.seqs[0], s.seqs[1], s.n); break;
        case Step::Reset: e.reset(s.seqs[0]); break;
        case Step::Submit: {
          const Submitted r = e.submit(s.seqs[0], s.tokens[0]);
          std::copy(r.logits.begin(), r.logits.end(), logits.begin());
          reused = r.reused;
          break;
        }
        case Step::Free: e.free(s.seqs[0]); break;
      }
    } catch (const EngineCrashed&) {
      throw;  // not a refusal: the case's finding (run_engine_case)
    } catch (const Error& err) {
      error = err.what();
    }
    if (trace && ci == traced_call) return std::nullopt;
    if (serving(e))
      if (const std::string bad = e.cache_check(); !bad.empty())
        return Parting{ci, s.seqs[0], "the block pool is inconsistent: " + bad, false, false, "pool"};
    if (call.refused) {
      if (error.empty())
        return Parting{ci, s.seqs[0], "the engine accepted a call the histories say must fail"};
      if (error.find('\n') != std::string::npos)
        return Parting{ci, s.seqs[0], "the engine's error is not one line: " + error};
      const Snapshot now(e, call.after);
      for (int q = 0; q < e.batch(); ++q)
        if (now.cursors[static_cast<size_t>(q)] != snap.cursors[static_cast<size_t>(q)] || !now.same_slots(snap, q))
          return Parting{ci, q, fmt::format("a refused call (\"{}\") changed sequence {}", error, q)};
      continue;
    }
    if (!error.empty()) return Parting{ci, s.seqs[0], "the engine refused a valid call: " + error};
    // A submit's reuse against the model, said with its logits when they differ too.
    const std::optional<std::string> reuse =
        pool && s.kind == Step::Submit ? check_reuse(e, *pool, s.seqs[0], s.tokens[0], reused) : std::nullopt;
    for (size_t j = 0; j < call.rows.size(); ++j) {
      const int seq = call.rows[j].first;
      const auto& want = reference(call.after.tokens[static_cast<size_t>(seq)]).logits;
      const std::span<const float> got(logits.data() + j * V, V);
      if (!same_bytes(got, want)) {
        Parting p{ci, seq, fmt::format("the logits of sequence {} differ from full recompute{}", seq,
                                       reuse ? ", and " + *reuse : std::string()), true};
        if (e.cursor(seq) != static_cast<int>(len(call.after, seq))) p.cursor = true;
        return p;
      }
    }
    // A verify's rows before its last: row j against full recompute of the history up to its token.
    for (size_t j = 0; s.kind == Step::Verify && j + 1 < s.tokens[0].size(); ++j) {
      const auto& after_call = call.after.tokens[static_cast<size_t>(s.seqs[0])];
      const std::vector<int> upto(after_call.begin(), after_call.end() - static_cast<long>(s.tokens[0].size() - j - 1));
      if (!same_bytes(std::span<const float>(rows.data() + j * V, V), reference(upto).logits))
        return Parting{ci, s.seqs[0], fmt::format("row {} of the verify of sequence {} differs from full recompute", j,
                                                  s.seqs[0]), true};
    }
    if (s.kind == Step::Decode)
      for (size_t j = 0; j < s.seqs.size(); ++j)
        in[j] = sample(std::span<const float>(logits.data() + j * V, V), s.sampler, coins[j].uniform());
    for (int q = 0; q < e.batch(); ++q) {
      const int want = static_cast<int>(len(call.after, q));
      if (e.cursor(q) != want) {
        Parting p{ci, q, fmt::format("sequence {} holds {} slots where its history holds {} tokens", q, e.cursor(q), want)};
        p.cursor = true;
        return p;
      }
    }
    if (reuse) return Parting{ci, s.seqs[0], *reuse, false, false, "prefix-hit"};
    if (pool && s.kind == Step::Submit) pool->reused.push_back(reused);
    if (!has_rows(e)) {
      if (pool) observe(e, call.after, *pool);
      continue;  // logits only: no rows to read
    }
    const std::set<int> mine = touched(s, call);
    const Snapshot now(e, call.after, !by_history);
    for (int q = 0; q < e.batch(); ++q) {
      const auto& want = call.after.tokens[static_cast<size_t>(q)];
      if (mine.count(q)) {
        if (is_freed(call.after, q)) continue;
        if (now.preempted[static_cast<size_t>(q)]) {
          // A sequence the call ran must hold its blocks; one it forked, truncated or reset may not.
          if (!call.rows.empty()) return Parting{ci, q, fmt::format("sequence {} was preempted by a call that ran it", q)};
          continue;
        }
        const RowDiff d = diff_rows(e, q, want);
        if (d.count > 0) {
          const std::string where = where_slot(e, q, d.slot);
          return Parting{ci, q, fmt::format("cache row of sequence {} differs from full recompute at layer {}, head {}, slot {}{}",
                                            q, d.layer, d.head, d.slot, where.empty() ? "" : " (" + where + ")")};
        }
      } else if (!by_history && snap.preempted[static_cast<size_t>(q)] && !now.preempted[static_cast<size_t>(q)]) {
        // Recomputed because the call read it (a fork's source): its rows must be recompute's.
        if (const RowDiff d = diff_rows(e, q, want); d.count > 0)
          return Parting{ci, q, fmt::format("the recomputed cache row of sequence {} differs from full recompute at "
                                            "layer {}, head {}, slot {} ({})", q, d.layer, d.head, d.slot,
                                            where_slot(e, q, d.slot))};
      } else if (by_history ? diff_rows(e, q, want).count > 0 : !now.same_slots(snap, q, serving(e))) {
        return Parting{ci, q, fmt::format("sequence {} changed, which the call did not touch", q)};
      }
    }
    if (pool) observe(e, call.after, *pool);
  }
  return std::nullopt;
}

// ---- generators: one command type per operation ---------------------------------------------

int kind_count[10] = {};
int programs = 0;
std::vector<std::string> notes;  // what p11 leaves unchecked on this engine, for the mix line
// With a prefix cache: what the programs' Submits and the pool did, for the mix line.
struct ServingCount {
  int64_t submits = 0, hits = 0, reused = 0, evictions = 0, preemptions = 0, copies = 0;
} served;

std::vector<int> chunk_of(const gen::Prompt& p, int min_len, int max_len) {
  std::vector<int> ids = ids_of(p);
  const int hi = std::min(max_len, static_cast<int>(ids.size()));
  ids.resize(static_cast<size_t>(*rc::gen::inRange(std::min(min_len, hi), hi + 1)));
  return ids;
}

using Cmd = rc::state::Command<Histories, EngineUnderTest>;

struct StepCommand : Cmd {
  Step step;
  void checkPreconditions(const Histories& h) const override {
    for (int q : step.seqs) RC_PRE(q < h.batch);
  }
  void apply(Histories& h) const override { h = after(h, step); }
  void show(std::ostream& os) const override { os << step; }
};

int draw_seq(const Histories& h) { return *rc::gen::inRange(0, h.batch); }

// True one time in n at any size (inRange narrows its range while the size is small), and
// shrinking toward false.
bool one_in(int n) {
  return *rc::Gen<bool>([n](const rc::Random& random, int) {
    rc::Random r = random;
    return rc::shrinkable::shrinkRecur(r.next() % static_cast<uint64_t>(n) == 0,
                                       [](bool b) { return b ? rc::seq::just(false) : rc::Seq<bool>(); });
  });
}

bool draw_bad() { return one_in(7); }

struct AppendCommand : StepCommand {
  explicit AppendCommand(const Histories& h) {
    step.kind = Step::Append;
    // Half of the appends go to s0 or s1, and a quarter take exactly the room left, so that
    // programs fill sequences to the last slot (and past it).
    const int seq = *rc::gen::inRange(0, 2) ? draw_seq(h) : *rc::gen::inRange(0, 2);
    step.seqs = {seq};
    const gen::Prompt p = *gen::genPrompt();
    const int room = kHistoryCapacity - static_cast<int>(len(h, seq));
    if (room >= 1 && one_in(4)) {
      std::vector<int> ids = ids_of(p);
      while (static_cast<int>(ids.size()) < room) ids.push_back(ids[ids.size() % ids.size()]);
      ids.resize(static_cast<size_t>(room));
      step.tokens = {ids};
    } else {
      step.tokens = {chunk_of(p, 1, 6)};
    }
  }
};

// A non-empty set of the sequences in play, as a bit mask (shrinks toward {s0}). With a prefix
// cache, at most kServingWidth of them: every call the model accepts then fits the small pool.
std::vector<int> draw_set(const Histories& h, size_t at_least) {
  const int mask = *rc::gen::inRange(1, 1 << h.batch);
  std::vector<int> seqs;
  for (int q = 0; q < h.batch; ++q)
    if (mask & (1 << q)) seqs.push_back(q);
  if (h.block > 0 && seqs.size() > static_cast<size_t>(kServingWidth)) seqs.resize(kServingWidth);
  for (int q = 0; seqs.size() < at_least; ++q)
    if (!(mask & (1 << q))) seqs.insert(std::upper_bound(seqs.begin(), seqs.end(), q), q);
  return seqs;
}

struct DecodeCommand : StepCommand {
  explicit DecodeCommand(const Histories& h) {
    step.kind = Step::Decode;
    step.seqs = draw_set(h, 1);
    for (size_t j = 0; j < step.seqs.size(); ++j) step.tokens.push_back(chunk_of(*gen::genPrompt(), 1, 1));
    step.n = *rc::gen::inRange(1, 5);
    const gen::RunParams r = *gen::genRunParams(1);
    step.sampler = {r.temperature, r.top_k, r.top_p};
    step.seed = r.seed;
  }
};

struct MixedCommand : StepCommand {
  explicit MixedCommand(const Histories& h) {
    step.kind = Step::Mixed;
    step.seqs = draw_set(h, 2);
    const int chunks = *rc::gen::inRange(1, static_cast<int>(step.seqs.size()));
    for (size_t j = 0; j < step.seqs.size(); ++j)
      step.tokens.push_back(static_cast<int>(j) < chunks ? chunk_of(*gen::genPartialPrompt(), 2, 6)
                                                         : chunk_of(*gen::genPrompt(), 1, 1));
  }
};

struct TruncateCommand : StepCommand {
  explicit TruncateCommand(const Histories& h) {
    step.kind = Step::Truncate;
    step.seqs = {draw_seq(h)};
    // One in seven past the cursor, which the engine must refuse. With a prefix cache, half the
    // rest cut inside the last block (a rollback of a few tokens: the block goes on partly filled).
    const int n = static_cast<int>(len(h, step.seqs[0]));
    step.n = draw_bad() ? n + 1
             : h.block > 0 && n > 1 && *rc::gen::arbitrary<bool>() ? n - *rc::gen::inRange(1, std::min(n, h.block))
                                                                   : *rc::gen::inRange(0, n + 1);
  }
};

struct ForkCommand : StepCommand {
  explicit ForkCommand(const Histories& h) {
    step.kind = Step::Fork;
    // Mostly a fork another sequence can take; one in seven onto itself or past the source's end.
    const int src = draw_seq(h);
    const bool bad = draw_bad();
    const int dst = bad && *rc::gen::arbitrary<bool>() ? src : (src + *rc::gen::inRange(1, h.batch)) % h.batch;
    step.seqs = {src, dst};
    const int n = static_cast<int>(len(h, src));
    step.n = bad && src != dst ? n + 1 : *rc::gen::inRange(0, n + 1);
  }
};

struct ResetCommand : StepCommand {
  explicit ResetCommand(const Histories& h) {
    step.kind = Step::Reset;
    step.seqs = {draw_seq(h)};
  }
};

// Serving: a new request whose prompt mostly shares a prefix with what a sequence holds or held
// (whole blocks, which must hit; any prefix: a block and part of the next, or less than a block),
// then grammar words, half the time up to the sequence's capacity (so that the pool fills).
struct SubmitCommand : StepCommand {
  explicit SubmitCommand(const Histories& h) {
    step.kind = Step::Submit;
    step.seqs = {draw_seq(h)};
    std::vector<const std::vector<int>*> bases;
    for (const auto& t : h.tokens)
      if (!t.empty()) bases.push_back(&t);
    for (const auto& t : h.seen) bases.push_back(&t);
    std::vector<const std::vector<int>*> ghosts;  // a conversation resubmitted after an edit of its end
    for (size_t q = 0; q < h.ghost.size(); ++q)
      if (h.ghost[q].size() > h.tokens[q].size()) ghosts.push_back(&h.ghost[q]);
    if (!ghosts.empty() && *rc::gen::arbitrary<bool>()) bases = ghosts;
    std::vector<int> prompt;
    bool whole = false;
    if (!bases.empty() && !one_in(4)) {
      const std::vector<int>& base = *bases[static_cast<size_t>(*rc::gen::inRange(0, static_cast<int>(bases.size())))];
      const int blocks = static_cast<int>(base.size()) / h.block;
      whole = blocks >= 1 && !one_in(3);
      const int n = whole ? h.block * *rc::gen::inRange(1, blocks + 1)
                          : *rc::gen::inRange(1, static_cast<int>(base.size()) + 1);
      prompt.assign(base.begin(), base.begin() + n);
    }
    const int room = kHistoryCapacity - static_cast<int>(prompt.size());
    if (room > 0) {
      // At least one token of its own after whole blocks: a submit computes its last position.
      std::vector<int> tail = chunk_of(*gen::genPrompt(), prompt.empty() || whole ? 1 : 0, room);
      if (!tail.empty() && one_in(2))  // up to the capacity: the grammar's words again
        for (size_t i = 0; tail.size() < static_cast<size_t>(room); ++i) tail.push_back(tail[i]);
      prompt.insert(prompt.end(), tail.begin(), tail.end());
    }
    step.tokens = {prompt};
  }
};

// Serving: the sequence gives up its rows; later commands on it must be refused until a Submit,
// Reset or Fork into it revives it.
struct FreeCommand : StepCommand {
  explicit FreeCommand(const Histories& h) {
    step.kind = Step::Free;
    step.seqs = {draw_seq(h)};
  }
};

// Speculative decoding's verify: the sequence's next token (a grammar word: the last accepted
// one) and a draft of 1..4 random vocabulary ids, which the model appends like a chunk; every
// row's logits are checked.
struct VerifyCommand : StepCommand {
  explicit VerifyCommand(const Histories& h) {
    step.kind = Step::Verify;
    step.seqs = {draw_seq(h)};
    std::vector<int> tokens = chunk_of(*gen::genPrompt(), 1, 1);
    const int k = *rc::gen::inRange(1, 5), V = context().subject->vocab_size();
    for (int i = 0; i < k; ++i) tokens.push_back(*rc::gen::inRange(0, V));
    step.tokens = {tokens};
  }
};

// The draft's rejection: a rollback to a point inside the last verify on a sequence (keeping at
// least its first token, the last accepted one, and at most all of it); with no verify to roll
// back into, anywhere in the sequence. One in seven past the end, which the engine must refuse.
struct RollbackCommand : StepCommand {
  explicit RollbackCommand(const Histories& h) {
    step.kind = Step::Rollback;
    std::vector<int> open;  // sequences with a verify to roll back into
    for (int q = 0; q < h.batch; ++q)
      if (verified_from(h, q) >= 0 && verified_from(h, q) < static_cast<int>(len(h, q))) open.push_back(q);
    const int seq = open.empty() ? draw_seq(h) : open[static_cast<size_t>(*rc::gen::inRange(0, static_cast<int>(open.size())))];
    step.seqs = {seq};
    const int n = static_cast<int>(len(h, seq)), from = open.empty() ? -1 : verified_from(h, seq);
    step.n = draw_bad() ? n + 1 : *rc::gen::inRange(from + 1, n + 1);
  }
};

const char* kind_name(Step::Kind k) {
  static const char* names[] = {"append", "decode", "mixed", "truncate", "fork", "reset", "submit", "free",
                                "verify", "rollback"};
  return names[k];
}

void prepare(EngineUnderTest& e) {
  if (memo().size() > 4000) memo().clear();
  e.clean_slate();
}

std::string step_text(const Program& p, size_t i) {
  std::ostringstream os;
  os << p.steps[i];
  return os.str();
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Step& s) {
  switch (s.kind) {
    case Step::Append:
      return os << "append \"" << words(s.tokens[0]) << "\" to s" << s.seqs[0];
    case Step::Decode: {
      os << "decode";
      for (size_t j = 0; j < s.seqs.size(); ++j) os << (j ? ", s" : " s") << s.seqs[j] << " from \"" << words(s.tokens[j]) << '"';
      os << " for " << s.n << (s.n == 1 ? " step" : " steps");
      if (s.sampler.temperature == 0.0f) return os << ", greedy";
      return os << fmt::format(", T={} top-k {} top-p {} seed {}", s.sampler.temperature, s.sampler.top_k,
                               s.sampler.top_p, s.seed);
    }
    case Step::Mixed:
      os << "one call:";
      for (size_t j = 0; j < s.seqs.size(); ++j)
        os << (j ? "," : "") << " s" << s.seqs[j] << (s.tokens[j].size() > 1 ? " += chunk \"" : " decodes \"")
           << words(s.tokens[j]) << '"';
      return os;
    case Step::Truncate:
      return os << "truncate s" << s.seqs[0] << " to " << s.n;
    case Step::Fork:
      return os << "fork s" << s.seqs[0] << " into s" << s.seqs[1] << " at " << s.n;
    case Step::Reset:
      return os << "reset s" << s.seqs[0];
    case Step::Submit:
      return os << "submit \"" << words(s.tokens[0]) << "\" to s" << s.seqs[0];
    case Step::Free:
      return os << "free s" << s.seqs[0];
    case Step::Verify:
      return os << "verify \"" << words(s.tokens[0]) << "\" on s" << s.seqs[0] << " (" << s.tokens[0].size() - 1
                << (s.tokens[0].size() == 2 ? " draft token)" : " draft tokens)");
    case Step::Rollback:
      return os << "roll back s" << s.seqs[0] << " to " << s.n;
  }
  return os;
}

// The program on `e` from a clean slate, checked command by command (with a prefix cache, against
// `pool` too); what differed, or nothing.
std::optional<std::string> run_program(EngineUnderTest& e, Program& p, Pool* pool) {
  prepare(e);
  Histories h = fresh(p.batch, pool ? pool->block : 0);
  for (size_t i = 0; i < p.steps.size(); ++i) {
    std::optional<Parting> parting;
    try {
      parting = run_step(e, h, p.steps[i], nullptr, -1, pool);
    } catch (const EngineCrashed&) {
      p.failing = static_cast<int>(i);
      throw;
    } catch (const std::exception& err) {
      parting = Parting{0, -1, std::string("the run stopped with an error: ") + err.what()};
    }
    if (parting) {
      p.failing = static_cast<int>(i);
      return fmt::format("command {} ({}), call {}: {}", i, step_text(p, i), parting->call, parting->what);
    }
    h = after(h, p.steps[i]);
  }
  p.failing = -1;
  return std::nullopt;
}

// The pool model of the last program check_program ran on the first engine (p11's tags).
Pool& last_pool() {
  static Pool pool;
  return pool;
}

// The command of the n-th Submit of `p`.
int nth_submit(const Program& p, size_t n) {
  for (size_t i = 0; i < p.steps.size(); ++i)
    if (p.steps[i].kind == Step::Submit && n-- == 0) return static_cast<int>(i);
  return static_cast<int>(p.steps.size()) - 1;
}

// With a prefix cache the program runs again on the placement twin, whose pool hands out blocks
// in another order: the same checks must hold there, with the same tokens reused and the same
// evictions, preemptions and copies (placement changes where rows lie, nothing else).
std::optional<std::string> check_program(Program& p) {
  EngineUnderTest& e = engine();
  if (p.batch > max_batch(e))
    fail("case: a program on {} sequences; engine {} holds {}", p.batch, e.name(), e.batch());
  p.twin = false;
  Pool pool{serving(e) ? e.prefix_block() : 0};
  const auto what = run_program(e, p, serving(e) ? &pool : nullptr);
  last_pool() = pool;
  if (what) return what;
  served.submits += static_cast<int64_t>(pool.reused.size());
  for (int r : pool.reused) {
    served.hits += r > 0;
    served.reused += r;
  }
  EngineUnderTest* t = twin();
  if (!t) return std::nullopt;  // an engine over the protocol: no twin, and no pool statistics
  served.evictions += pool.stats.evictions;
  served.preemptions += pool.stats.preemptions;
  served.copies += pool.stats.copies;
  Pool other{t->prefix_block()};
  p.twin = true;
  if (auto what = run_program(*t, p, &other))
    return fmt::format("on the placement twin (pool order from seed {}): {}", kTwinPlacement, *what);
  for (size_t n = 0; n < pool.reused.size(); ++n)
    if (other.reused[n] != pool.reused[n]) {
      p.failing = nth_submit(p, n);
      return fmt::format("command {} ({}): the placement twin (seed {}) reused {} tokens, the first engine {}", p.failing,
                         step_text(p, static_cast<size_t>(p.failing)), kTwinPlacement, other.reused[n], pool.reused[n]);
    }
  const PagedStats& a = pool.stats;
  const PagedStats& b = other.stats;
  if (a.evictions != b.evictions || a.preemptions != b.preemptions || a.copies != b.copies || a.hits != b.hits) {
    p.failing = static_cast<int>(p.steps.size()) - 1;
    return fmt::format("after the program the placement twin (seed {}) counts {} evictions, {} preemptions, {} copies, "
                       "{} hits; the first engine {}, {}, {}, {}", kTwinPlacement, b.evictions, b.preemptions, b.copies,
                       b.hits, a.evictions, a.preemptions, a.copies, a.hits);
  }
  p.twin = false;
  return std::nullopt;
}

Failure crash_report(const Program& p, const std::string& headline) {
  Failure f;
  f.property = "p11";
  f.headline = headline;
  f.text = fmt::format("  {}\n  the program (B={}, capacity {}):\n", headline, p.batch, kHistoryCapacity);
  nlohmann::json listing = nlohmann::json::array();
  for (size_t i = 0; i < p.steps.size(); ++i) {
    f.text += fmt::format("  {} {:>2}. {}\n", static_cast<int>(i) == p.failing ? ">" : " ", i, step_text(p, i));
    listing.push_back(step_text(p, i));
  }
  f.json = {{"property", "p11"}, {"headline", headline}, {"command", p.failing}, {"program", listing},
            {"engine_crashed", true}};
  f.case_json = program_to_json(p);
  return f;
}

Failure report_program_on(EngineUnderTest& e, const Program& p, const std::string& headline);

// A crash while the report re-runs the program (a flaky engine) leaves the program's listing.
Failure report_program(const Program& p, const std::string& headline) {
  try {
    return report_program_on(p.twin && twin() ? *twin() : engine(), p, headline);
  } catch (const EngineCrashed& crash) {
    Failure f = crash_report(p, headline);
    f.text += fmt::format("  the report's re-run stopped: {}\n", crash.what());
    f.json["engine_crashed"] = false;
    f.json["report_rerun"] = crash.what();
    return f;
  }
}

Failure report_program_on(EngineUnderTest& e, const Program& p, const std::string& headline) {
  const Config& c = e.config();
  Failure f;
  f.property = "p11";
  f.headline = headline;
  nlohmann::json j = {{"property", "p11"}, {"headline", headline}, {"command", p.failing}};
  std::string text = fmt::format("  {}\n  the program (B={}, capacity {}):\n", headline, p.batch, kHistoryCapacity);
  nlohmann::json listing = nlohmann::json::array();
  for (size_t i = 0; i < p.steps.size(); ++i) {
    text += fmt::format("  {} {:>2}. {}\n", static_cast<int>(i) == p.failing ? ">" : " ", i, step_text(p, i));
    listing.push_back(step_text(p, i));
  }
  j["program"] = listing;
  if (serving(e)) {
    text += fmt::format("  on {}: prefix reuse in blocks of {}{}{}\n", e.describe(), e.prefix_block(),
                        e.pool_slots() ? fmt::format(", a pool of {} slots", e.pool_slots()) : "",
                        p.twin ? fmt::format(", the placement twin (seed {})", kTwinPlacement) : "");
    j["twin"] = p.twin;
  }
  if (p.failing < 0) {
    f.text = text + "  every command agrees with the histories now\n";
    f.json = j;
    f.case_json = program_to_json(p);
    return f;
  }
  // Re-run up to the failing command, then find its parting call.
  Pool pool;
  auto replay_to_failing = [&](Histories& h) {
    prepare(e);
    pool = Pool{serving(e) ? e.prefix_block() : 0};
    h = fresh(p.batch, pool.block);
    for (int i = 0; i < p.failing; ++i) {
      run_step(e, h, p.steps[static_cast<size_t>(i)], nullptr, -1, serving(e) ? &pool : nullptr);
      h = after(h, p.steps[static_cast<size_t>(i)]);
    }
  };
  Histories h;
  replay_to_failing(h);
  const Step& step = p.steps[static_cast<size_t>(p.failing)];
  std::optional<Parting> parting;
  try {
    parting = run_step(e, h, step, nullptr, -1, serving(e) ? &pool : nullptr);
  } catch (const std::exception& err) {
    parting = Parting{0, -1, err.what()};
  }
  if (!parting || parting->seq < 0) {
    f.text = text + (parting ? fmt::format("  the command stopped with an error: {}\n", parting->what)
                             : std::string("  the re-run did not part again\n"));
    j["cause"] = "engine-error";
    j["engine_error"] = parting ? parting->what : "the re-run did not part again";
    f.json = j;
    f.case_json = program_to_json(p);
    f.located = parting.has_value();
    return f;
  }
  const int seq = parting->seq;
  if (parting->site) {  // the pool's bookkeeping or a submit's reuse: no row to trace
    j["first_parting"] = {{"layer", 0}, {"head", -1}, {"component", parting->site}, {"what", parting->what}};
    j["verdict"] = verdict_word(classify_unmeasured());
    text += fmt::format("  first parting: {} ({})\n", parting->what,
                        std::string(parting->site) == "pool" ? "the pool's own check" : "the prefix hit") +
            verdict_line(classify_unmeasured(), "f32", -1,
                         std::string(parting->site) == "pool" ? "block pool's bookkeeping" : "prefix cache");
    j["cause"] = "bookkeeping";
  }
  const std::vector<Call> calls = plan(h, step);
  const Call& call = calls[static_cast<size_t>(parting->call)];
  const Histories& before_call = parting->call == 0 ? h : calls[static_cast<size_t>(parting->call) - 1].after;
  const auto& want = call.after.tokens[static_cast<size_t>(seq)];
  j["call"] = parting->call;
  j["sequence"] = seq;
  j["history"] = want;
  text += fmt::format("  sequence {} should hold \"{}\"\n", seq, words(want));
  if (parting->logits && !want.empty() && !e.has(Capability::Trace))
    text += fmt::format("  not located: engine {} offers no trace\n", e.name());
  if (parting->logits && !want.empty() && e.has(Capability::Trace)) {
    // Trace the parting call and full recompute of what the sequence should hold.
    replay_to_failing(h);
    Trace cached;
    run_step(e, h, step, &cached, parting->call);
    int cursor_before = static_cast<int>(len(before_call, seq));
    int first_q = -1;  // where the cached call's rows of seq start
    bool at_cursor = false;
    for (const auto& r : cached.records)
      if (r.seq == seq && r.kind == TraceKind::Q) {
        if (first_q < 0) first_q = r.pos;
        at_cursor = at_cursor || r.pos == cursor_before;
      }
    // A submit computes its prompt after the blocks it reused; a preempted sequence's recompute
    // (traced with the call) starts at 0: compare from where the rows start, unshifted.
    if (first_q >= 0 && (step.kind == Step::Submit || (first_q < cursor_before && !at_cursor))) cursor_before = first_q;
    const int engine_before = first_q < 0 || at_cursor ? cursor_before : first_q;
    Trace ref;
    ref.seq = seq;
    e.trace_call(&ref, 0);
    e.forward_uncached(want);
    std::vector<int> positions;
    for (int q = cursor_before; q < static_cast<int>(want.size()); ++q) positions.push_back(q);
    const CallDiff d = diff_traced_call(ref, cached, 0, seq, positions, engine_before - cursor_before, c.n_layer,
                                        c.n_head, e.kv_dtype());
    text += d.text;
    for (const auto& [k, v] : d.json.items()) j[k] = v;
    // On the paged cache: the block the first parting's slot lives in, as the call left it.
    // (A q, k or v row names its position: the slot the call writes it to.)
    if (serving(e) && j.contains("first_parting") &&
        (j["first_parting"].contains("slot") || j["first_parting"].contains("position"))) {
      const auto& fp = j["first_parting"];
      const int slot = fp.contains("slot") ? fp["slot"].get<int>() : fp["position"].get<int>();
      if (slot >= 0 && slot < e.cursor(seq)) {
        j["first_parting"]["where"] = where_slot_json(e, seq, slot);
        text += fmt::format("  slot {}: {}\n", slot, where_slot(e, seq, slot));
      }
    }
    f.located = true;
  }
  // The cache rows after the command (or after the parting call), against recompute.
  replay_to_failing(h);
  run_step(e, h, step);
  if (parting->cursor || e.cursor(seq) != static_cast<int>(want.size())) {
    text += fmt::format("  cursor: sequence {} holds {} slots where its history holds {} tokens\n", seq, e.cursor(seq),
                        want.size());
    if (!j.contains("cause") || !j.contains("first_parting")) {
      j["cause"] = "cursor";
      j["cursor"] = {{"sequence", seq}, {"expected", want.size()}, {"actual", e.cursor(seq)}};
    }
    if (!j.contains("first_parting")) {
      j["first_parting"] = {{"layer", 0}, {"head", -1}, {"component", "cursor"}, {"slot", e.cursor(seq)},
                            {"position", want.size()}};
      j["verdict"] = verdict_word(classify_unmeasured());
      text += fmt::format("  first parting: the cursor of sequence {} ({} slots, {} tokens)\n  verdict: {} at the cursor\n",
                          seq, e.cursor(seq), want.size(), verdict_text(classify_unmeasured()));
    }
  }
  KvRows held;
  const RowDiff d = diff_rows(e, seq, want, &held);
  if (has_rows(e)) j["differing_cache_rows"] = d.rows;
  text += !has_rows(e) ? fmt::format("  cache: not read (engine {} has no {})\n", e.name(), to_string(Capability::KvRows))
          : d.count == 0 ? fmt::format("  cache: every row of sequence {} equals full recompute\n", seq)
                       : fmt::format("  cache rows of sequence {} that differ from full recompute ({}): {}{}\n{}", seq,
                                     d.count, d.listed, d.count > 12 ? ", ..." : "",
                                     serving(e) ? fmt::format("  the first, slot {}: {}\n", d.slot, where_slot(e, seq, d.slot))
                                                : std::string());
  if (!j.contains("first_parting") && d.count > 0) {
    const Reference& ref = reference(want);
    const auto a = d.k ? held.k_row(d.layer, d.head, d.slot) : held.v_row(d.layer, d.head, d.slot);
    const auto b = d.k ? ref.kv.k_row(d.layer, d.head, d.slot) : ref.kv.v_row(d.layer, d.head, d.slot);
    const Measured m = measure(a, b);
    const double max_abs = m.max_abs;
    const std::string dtype = value_dtype("cache", e.kv_dtype());
    const Verdict verdict = classify(m, dtype);
    j["first_parting"] = {{"layer", d.layer}, {"head", d.head}, {"component", "cache"}, {"slot", d.slot},
                          {"max_abs", max_abs}};
    j["parting_rows"] = parting_rows_json(d.k ? "cache K" : "cache V", d.layer, d.head, "slot", d.slot, a, b);
    j["cause"] = "forward";
    // With a prefix cache: the block the slot lives in, who holds it, and whether it is registered.
    const std::string where = where_slot(e, seq, d.slot);
    if (!where.empty()) j["first_parting"]["where"] = where_slot_json(e, seq, d.slot);
    j["verdict"] = verdict_word(verdict);
    text += fmt::format("  first parting: layer {}, head {}, cache {} row at slot {}{} (max |d| {:.3g})\n",
                        d.layer, d.head, d.k ? "K" : "V", d.slot, where.empty() ? "" : " (" + where + ")", max_abs) +
            verdict_line(verdict, dtype, d.layer, "cache");
  }
  if (serving(e)) {
    const PagedStats st = e.serving_stats();
    text += fmt::format("  sequence {}'s block table:", seq);
    for (int b : e.block_table(seq)) text += fmt::format(" {}", b);
    text += fmt::format("{}\n  the pool: {} blocks in use, {} cached, {} free; {} hits ({} tokens), {} evictions, {} "
                        "preemptions, {} copies\n", e.preempted(seq) ? " (preempted)" : "", st.blocks_in_use,
                        st.blocks_cached, st.blocks_free, st.hits, st.hit_tokens, st.evictions, st.preemptions, st.copies);
    j["block_table"] = e.block_table(seq);
  }
  if (!j.contains("cause")) {
    // The command parted and the re-run shows no row, cursor or logit that differs.
    j["cause"] = "engine-error";
    j["engine_error"] = "the re-run of the failing command shows no difference";
    text += "  cause: engine error: the re-run of the failing command shows no difference in logits, cursor or cache\n";
  }
  f.located = true;
  f.text = text;
  f.json = j;
  f.case_json = program_to_json(p);
  return f;
}

void check_histories() {
  EngineUnderTest& e = engine();
  prepare(e);
  notes.clear();
  if (!has_rows(e)) notes.push_back("logits only (engine has no K/V rows)");
  if (!checks_refusals(e))
    notes.push_back(fmt::format("refusals not checked (engine {} holds {} positions per sequence, the programs {}: "
                                "the calls the model refuses are not sent)",
                                e.name(), e.capacity(), kHistoryCapacity));
  struct Drawn {
    ~Drawn() { generating = false; }  // also when a draw throws
  } drawn;
  generating = true;
  const int batch = *rc::gen::inRange(2, max_batch(e) + 1);
  const Histories initial = fresh(batch, serving(e) ? e.prefix_block() : 0);
  // Programs of up to ~40 commands; appends weigh most, so that sequences fill up. With a prefix
  // cache, submits (mostly sharing a prefix) and frees join them. Speculative decoding's verify and
  // rollback join both mixes (a saved program replays whatever the mix: it lists its commands).
  const auto commands =
      initial.block == 0
          ? *rc::gen::scale(0.4, rc::state::gen::commands(
                                     initial, rc::state::gen::execOneOfWithArgs<
                                                  AppendCommand, AppendCommand, AppendCommand, DecodeCommand,
                                                  DecodeCommand, MixedCommand, MixedCommand, TruncateCommand,
                                                  ForkCommand, ForkCommand, ResetCommand, VerifyCommand,
                                                  RollbackCommand>()))
          : *rc::gen::scale(0.4, rc::state::gen::commands(
                                     initial, rc::state::gen::execOneOfWithArgs<
                                                  AppendCommand, AppendCommand, AppendCommand, DecodeCommand,
                                                  MixedCommand, TruncateCommand, ForkCommand, ForkCommand, ResetCommand,
                                                  SubmitCommand, SubmitCommand, SubmitCommand, FreeCommand,
                                                  VerifyCommand, RollbackCommand>()));
  Program p;
  p.batch = batch;
  bool fork = false, full = false, sampled = false;
  std::set<std::string> refused;  // the kinds of command the engine had to refuse
  Histories h = initial;
  for (const auto& c : commands) {
    const Step& s = static_cast<const StepCommand&>(*c).step;
    p.steps.push_back(s);
    ++kind_count[s.kind];
    for (const Call& call : plan(h, s)) {
      if (call.refused)
        refused.insert(std::string(checks_refusals(e) ? "refused: " : "not sent: ") +
                       (s.kind == Step::Free                         ? "free of a freed sequence"
                        : std::any_of(s.seqs.begin(), s.seqs.end(), [&](int q) { return is_freed(h, q); })
                            ? "use of a freed sequence"
                        : s.kind == Step::Truncate ? "truncate past the end"
                        : s.kind == Step::Rollback ? "rollback past the end"
                        : s.kind == Step::Fork     ? "bad fork"
                                                   : "over capacity"));
      for (const auto& t : call.after.tokens) full = full || t.size() == static_cast<size_t>(kHistoryCapacity);
      fork = fork || (s.kind == Step::Fork && !call.refused);
    }
    sampled = sampled || (s.kind == Step::Decode && s.sampler.temperature > 0.0f);
    h = after(h, s);
  }
  generating = false;
  ++programs;
  RC_TAG(batch <= 3 ? "B 2-3" : "B 4-8");
  if (fork) RC_TAG("forked");
  if (full) RC_TAG("filled a sequence");
  for (const auto& r : refused) RC_TAG(r);
  if (sampled) RC_TAG("sampled");
  const CaseOutcome o = run_engine_case(fmt::format("p11, a program of {} commands on {} sequences", p.steps.size(), p.batch),
                                        [&p] { return check_program(p); });
  if (o.what) {
    const std::string headline = *o.what;
    if (o.crashed)
      record_failure([p, headline] { return crash_report(p, headline); });
    else
      record_failure([p, headline] { return report_program(p, headline); });
    RC_FAIL(headline);
  }
  if (initial.block > 0) {
    const Pool& run = last_pool();
    if (std::any_of(run.reused.begin(), run.reused.end(), [](int r) { return r > 0; })) RC_TAG("prefix hit");
    if (run.stats.evictions > 0) RC_TAG("evicted");
    if (run.stats.preemptions > 0) RC_TAG("preempted");
    if (run.stats.copies > 0) RC_TAG("copied on write");
  }
}

std::string history_mix() {
  int total = 0;
  for (int n : kind_count) total += n;
  std::string out = fmt::format("      {} programs, {} commands:", programs, total);
  for (int k = 0; k < 6; ++k) out += fmt::format(" {} {}", kind_name(static_cast<Step::Kind>(k)), kind_count[k]);
  out += fmt::format(" verify {} rollback {}", kind_count[Step::Verify], kind_count[Step::Rollback]);
  if (kind_count[Step::Submit] + kind_count[Step::Free] > 0)
    out += twin() ? fmt::format(" submit {} free {}; serving (each program also on a placement twin): {} submits, {} "
                                "hits, {} tokens reused, {} evictions, {} preemptions, {} copies",
                                kind_count[Step::Submit], kind_count[Step::Free], served.submits, served.hits,
                                served.reused, served.evictions, served.preemptions, served.copies)
                  : fmt::format(" submit {} free {}; serving (no placement twin, no pool statistics): {} submits, {} "
                                "hits, {} tokens reused",
                                kind_count[Step::Submit], kind_count[Step::Free], served.submits, served.hits,
                                served.reused);
  for (const std::string& note : notes) out += "; " + note;
  return out;
}

nlohmann::json program_to_json(const Program& p) {
  nlohmann::json steps = nlohmann::json::array();
  for (const Step& s : p.steps) {
    nlohmann::json j = {{"kind", kind_name(s.kind)}, {"seqs", s.seqs}, {"tokens", s.tokens}, {"n", s.n}};
    if (s.kind == Step::Decode)
      j.update({{"temperature", s.sampler.temperature}, {"top_k", s.sampler.top_k}, {"top_p", s.sampler.top_p},
                {"seed", s.seed}});
    std::ostringstream os;
    os << s;
    j["text"] = os.str();
    steps.push_back(j);
  }
  const Context& ctx = context();
  nlohmann::json j = {{"property", "p11"}, {"batch", p.batch}, {"capacity", kHistoryCapacity}, {"program", steps},
                      {"failing_command", p.failing}, {"model", ctx.model_label}, {"model_sha256", ctx.model_sha256},
                      {"backend", to_string(ctx.backend)}, {"fault", to_string(ctx.fault)},
                      {"engine", ctx.subject->name()}, {"level", "bits"}};
  // Ours records its settings only where they say more than backend and fault (the paged
  // layout), so programs saved before it write the same bytes.
  if (ctx.subject->name() != "miniinfer" || ctx.subject->has(Capability::PrefixCache))
    j["engine_settings"] = ctx.subject->settings();
  return j;
}

Program program_from_json(const nlohmann::json& j) {
  try {
    Program p;
    p.batch = json_int(j.at("batch"), "batch");
    if (p.batch < 1 || p.batch > kHistorySequences) fail("case: batch {} outside 1..{}", p.batch, kHistorySequences);
    if (const int capacity = json_int(j.at("capacity"), "capacity"); capacity != kHistoryCapacity)
      fail("case: saved with capacity {}, this props runs capacity {}", capacity, kHistoryCapacity);
    const auto& program = j.at("program");
    if (!program.is_array()) fail("case: program: not an array");
    for (size_t i = 0; i < program.size(); ++i) {
      const auto& o = program[i];
      const std::string at = fmt::format("program[{}].", i);
      Step s;
      const std::string kind = o.at("kind").get<std::string>();
      int k = 0;
      while (k < 10 && kind != kind_name(static_cast<Step::Kind>(k))) ++k;
      if (k == 10) fail("case: unknown command kind '{}'", kind);
      s.kind = static_cast<Step::Kind>(k);
      s.seqs = json_ints(o.at("seqs"), at + "seqs");
      const auto& tokens = o.at("tokens");
      if (!tokens.is_array()) fail("case: {}tokens: not an array", at);
      for (size_t t = 0; t < tokens.size(); ++t) s.tokens.push_back(json_ints(tokens[t], fmt::format("{}tokens[{}]", at, t)));
      s.n = json_int(o.at("n"), at + "n");
      if (s.kind == Step::Decode) {
        s.sampler = {json_float(o.at("temperature"), at + "temperature"), json_int(o.at("top_k"), at + "top_k"),
                     json_float(o.at("top_p"), at + "top_p")};
        s.seed = json_u64(o.at("seed"), at + "seed");
      }
      const size_t need_seqs = s.kind == Step::Fork ? 2 : 1;
      if (s.seqs.size() < need_seqs) fail("case: command '{}' names {} sequences", kind, s.seqs.size());
      for (int q : s.seqs)
        if (q < 0 || q >= p.batch) fail("case: command '{}' names sequence {} of {}", kind, q, p.batch);
      const bool rows = s.kind == Step::Append || s.kind == Step::Decode || s.kind == Step::Mixed || s.kind == Step::Submit ||
                        s.kind == Step::Verify;
      if (rows && (s.tokens.size() < s.seqs.size() || std::any_of(s.tokens.begin(), s.tokens.end(),
                                                                   [](const auto& t) { return t.empty(); })))
        fail("case: command '{}' needs a non-empty token list per sequence", kind);
      p.steps.push_back(std::move(s));
    }
    p.failing = json_int(j.value("failing_command", nlohmann::json(-1)), "failing_command");
    return p;
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();  // "[json.exception.out_of_range.403] key 'n' not found"
    if (const auto p = why.find("] "); why.starts_with("[json.exception") && p != std::string::npos) why = why.substr(p + 2);
    fail("case: {}", why);
  }
}

}  // namespace miniinfer::props
