// p17: speculation with random drafts, the hardest case for rollback. A case is a grammatical
// prompt and rounds of drafts on sequence 0, through the engine's own verify and rollback:
//   prefill: the prompt but its last token, one chunk (nothing for a one-token prompt). The
//     accepted sequence is the prompt; its last token is not yet in the cache, so the cursor is
//     its length minus one.
//   a round, with the cursor at c and `last` the accepted sequence's last token: a draft of k
//     tokens d1..dk (mostly random vocabulary ids; an entry -1 is the target's own greedy token
//     there, from full recompute, so that some drafts are accepted); verify(seq, [last, d1..dk])
//     gives k + 1 rows; row i follows d_i (row 0 follows `last`). The accepted count a is the
//     longest prefix where d_{i+1} is row i's argmax, and the correction token is row a's argmax
//     (a bonus token when a = k). rollback(seq, c + 1 + a) keeps `last` and d1..da and drops the
//     rest; the accepted sequence gains d1..da and the correction, which is the next `last`.
// Checked: the cursor after each rollback is c + 1 + a; every accepted row (rows 0..a of each
// verify, whose inputs are all accepted) equals, at the run's level, the same position's row of
// one full recompute of the final cache contents (all rows in one pass); and, where the engine
// shows them (Capability KvRows), every K and V row at the end equals that recompute's. A
// rejected row (past a) is not checked: its input was rolled back.
// Runs on every engine: only verify, rollback, cursor, forward_uncached and, where offered,
// cache_rows, recompute_rows and trace_call.
#include <algorithm>

#include "props/case_property.h"
#include "props/level.h"
#include "props/logit_rows.h"
#include "props/verdict.h"

namespace miniinfer::props {
namespace {

constexpr int kMaxRounds = 6;
constexpr int kMaxDraft = 4;
constexpr int kGreedy = -1;  // a draft entry: the target's own greedy token

struct SpecCase : CaseCore {
  std::vector<std::vector<int>> drafts;  // per round, k entries: a token id or kGreedy
};

int argmax(std::span<const float> row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

// One verify call of a run and the rollback after it.
struct Round {
  int cursor = 0;            // before the verify
  std::vector<int> input;    // [last, d1..dk] as sent
  int accepted = 0;          // a
  int correction = 0;        // row a's argmax
  int cursor_after = -1;     // the engine's cursor after the rollback
};

// A run of the case: the accepted rows' logits and positions, and the accepted sequence.
struct SpecRun {
  std::vector<int> tokens;   // the accepted sequence; its last token is not in the cache
  std::vector<Round> rounds;
  std::vector<int> positions;  // each accepted row's position
  std::vector<float> logits;   // (accepted rows, V)
  int cursor_round = -1;       // the first round whose rollback left a wrong cursor
  int kept() const { return static_cast<int>(tokens.size()) - 1; }  // what the cache should hold
};

// The draft of a round with its greedy entries resolved by full recompute of what precedes them.
std::vector<int> resolve(EngineUnderTest& e, const std::vector<int>& accepted, const std::vector<int>& draft) {
  std::vector<int> context = accepted, out;
  for (int d : draft) {
    const int token = d == kGreedy ? argmax(e.forward_uncached(context)) : d;
    out.push_back(token);
    context.push_back(token);
  }
  return out;
}

// The case on sequence 0 from a clean slate. With a trace, the verify of round `traced_round` is
// traced and the run stops after it. Rounds that would pass the engine's capacity are not run.
SpecRun speculate(EngineUnderTest& e, const SpecCase& c, Trace* trace = nullptr, int traced_round = -1) {
  e.clean_slate();
  const size_t V = static_cast<size_t>(e.vocab_size());
  const int room = std::min(e.capacity(), e.max_seq_len());
  SpecRun run;
  run.tokens = c.prompts[0];
  if (run.tokens.size() > 1) e.forward_cached(0, std::span<const int>(run.tokens).first(run.tokens.size() - 1));
  for (size_t r = 0; r < c.drafts.size(); ++r) {
    Round round;
    round.cursor = run.kept();
    if (round.cursor + static_cast<int>(c.drafts[r].size()) + 1 > room) break;
    const std::vector<int> draft = resolve(e, run.tokens, c.drafts[r]);
    round.input = {run.tokens.back()};
    round.input.insert(round.input.end(), draft.begin(), draft.end());
    const bool traced = trace && static_cast<int>(r) == traced_round;
    if (traced && !e.trace_call(trace, 0)) fail("p17: engine {} cannot trace a call", e.name());
    const std::vector<float> rows = e.verify(0, round.input);
    if (rows.size() != round.input.size() * V)
      fail("p17: verify of {} tokens gave {} logits, not {} rows of {}", round.input.size(), rows.size(),
           round.input.size(), V);
    const auto row = [&](size_t i) { return std::span<const float>(rows).subspan(i * V, V); };
    while (round.accepted < static_cast<int>(draft.size()) && argmax(row(static_cast<size_t>(round.accepted))) == draft[static_cast<size_t>(round.accepted)])
      ++round.accepted;
    round.correction = argmax(row(static_cast<size_t>(round.accepted)));
    for (int i = 0; i <= round.accepted; ++i) {
      run.positions.push_back(round.cursor + i);
      run.logits.insert(run.logits.end(), row(static_cast<size_t>(i)).begin(), row(static_cast<size_t>(i)).end());
    }
    run.tokens.insert(run.tokens.end(), draft.begin(), draft.begin() + round.accepted);
    run.tokens.push_back(round.correction);
    if (traced) {
      run.rounds.push_back(round);
      return run;
    }
    e.rollback(0, run.kept());
    round.cursor_after = e.cursor(0);
    run.rounds.push_back(round);
    if (round.cursor_after != run.kept()) {
      run.cursor_round = static_cast<int>(r);
      return run;
    }
  }
  return run;
}

// Full recompute of the cache's contents in one pass: the rows at the run's accepted positions.
std::vector<float> recompute(EngineUnderTest& e, const SpecRun& run) {
  const size_t V = static_cast<size_t>(e.vocab_size());
  const std::vector<float> all = e.forward_uncached(std::span<const int>(run.tokens).first(static_cast<size_t>(run.kept())), true);
  std::vector<float> out;
  for (int p : run.positions)
    out.insert(out.end(), all.begin() + static_cast<long>(static_cast<size_t>(p) * V),
               all.begin() + static_cast<long>((static_cast<size_t>(p) + 1) * V));
  return out;
}

std::string cursor_text(const SpecRun& run) {
  const Round& r = run.rounds[static_cast<size_t>(run.cursor_round)];
  return fmt::format("round {}: after rollback to {} (cursor {} + 1 + {} accepted) the cursor is {}", run.cursor_round,
                     r.cursor + 1 + r.accepted, r.cursor, r.accepted, r.cursor_after);
}

class P17 final : public CaseProperty<SpecCase> {
 public:
  P17()
      : CaseProperty({"p17", "speculation with random drafts: after verify and rollback, accepted rows, the cursor and the cache "
                             "equal full recompute", 100}) {}

  SpecCase draw() const override {
    SpecCase c;
    c.params.max_new_tokens = 0;  // nothing is sampled: the drafts and the argmax decide
    const gen::Prompt p = *gen::genPrompt();
    tag(p);
    c.prompts = {ids_of(p)};
    const int V = context().subject->vocab_size();
    const int rounds = *rc::gen::inRange(1, kMaxRounds + 1);
    for (int r = 0; r < rounds; ++r) {
      const int k = *rc::gen::inRange(1, kMaxDraft + 1);
      // One round in three opens with the target's own tokens (accepted, unless the engine errs).
      const int own = *rc::gen::inRange(0, 3) == 2 ? *rc::gen::inRange(1, k + 1) : 0;
      std::vector<int> d(static_cast<size_t>(own), kGreedy);
      for (int i = own; i < k; ++i) d.push_back(*rc::gen::inRange(0, V));
      c.drafts.push_back(std::move(d));
    }
    RC_TAG(rounds > 1 ? "several rounds" : "one round");
    if (std::any_of(c.drafts.begin(), c.drafts.end(), [](const auto& d) { return d[0] == kGreedy; })) RC_TAG("own drafts");
    return c;
  }

  std::optional<std::string> check(EngineUnderTest& e, SpecCase& c) const override {
    const SpecRun run = speculate(e, c);
    if (run.cursor_round >= 0) return cursor_text(run);
    if (run.positions.empty()) return std::nullopt;  // no round fit the engine's capacity
    const std::vector<float> ref = recompute(e, run);
    if (auto f = judge("accepted rows of verify vs full recompute", compare_rows(run.logits, ref, e.vocab_size()),
                       e.vocab_size(), &run.logits, &ref))
      return f;
    if (e.has(Capability::KvRows)) {
      const std::vector<int> held(run.tokens.begin(), run.tokens.end() - 1);
      if (const auto p = first_row_parting({*e.cache_rows(0)}, {*e.recompute_rows(held)}))
        return "after the last rollback: " + row_text(*p);
    }
    return std::nullopt;
  }

  std::vector<Scenario> scenarios(const SpecCase&) const override { return {}; }

  std::string details(const SpecCase& c) const override {
    std::string out = " drafts";
    for (const auto& d : c.drafts) {
      out += " [";
      for (size_t i = 0; i < d.size(); ++i) out += (i ? " " : "") + (d[i] == kGreedy ? std::string("own") : std::to_string(d[i]));
      out += "]";
    }
    return out;
  }
  void write(const SpecCase& c, CaseFields& f) const override { f.drafts = c.drafts; }
  SpecCase read(const CaseFields& f) const override {
    if (f.drafts.empty() || f.drafts.size() > kMaxRounds)
      fail("case: p17 needs 1..{} rounds of drafts (drafts), got {}", kMaxRounds, f.drafts.size());
    const int V = context().subject->vocab_size();
    for (size_t r = 0; r < f.drafts.size(); ++r) {
      if (f.drafts[r].empty() || f.drafts[r].size() > kMaxDraft)
        fail("case: p17 drafts[{}] holds {} tokens, not 1..{}", r, f.drafts[r].size(), kMaxDraft);
      for (int t : f.drafts[r])
        if (t != kGreedy && (t < 0 || t >= V)) fail("case: p17 drafts[{}] holds token {} outside 0..{} (or -1: own)", r, t, V - 1);
    }
    SpecCase c;
    static_cast<CaseCore&>(c) = f.core;
    c.drafts = f.drafts;
    return c;
  }

  Failure report(const SpecCase& c, const std::string& headline) const override;
};

// The report's three sites, each appending its lines to `text` and its fields to `j`.
// A rollback that left the cursor wrong: no value to measure.
void report_cursor(const SpecRun& run, std::string& text, nlohmann::json& j) {
  const Round& x = run.rounds[static_cast<size_t>(run.cursor_round)];
  text += fmt::format("  first parting: the cursor after round {}'s rollback ({} slots where {} tokens are kept)\n",
                      run.cursor_round, x.cursor_after, run.kept()) +
          verdict_line(classify_unmeasured(), "f32", -1, "cursor");
  j["cause"] = "cursor";
  j["cursor"] = {{"sequence", 0}, {"expected", run.kept()}, {"actual", x.cursor_after}, {"round", run.cursor_round}};
  j["first_parting"] = {{"layer", 0}, {"head", -1}, {"component", "cursor"}, {"slot", x.cursor_after},
                        {"position", run.kept()}};
  j["verdict"] = verdict_word(classify_unmeasured());
}

// The first accepted row whose logits part: its verify traced against full recompute, component
// by component, or, on an engine that cannot trace, the row itself.
void report_row(EngineUnderTest& e, const SpecCase& c, const SpecRun& run, const std::vector<float>& ref,
                std::string& text, nlohmann::json& j) {
  const Tokenizer& tok = *context().tokenizer;
  const size_t V = static_cast<size_t>(e.vocab_size());
  size_t i = 0;
  while (std::equal(run.logits.begin() + static_cast<long>(i * V), run.logits.begin() + static_cast<long>((i + 1) * V),
                    ref.begin() + static_cast<long>(i * V)))
    ++i;
  const int pos = run.positions[i];
  size_t round = 0;
  while (round + 1 < run.rounds.size() && run.rounds[round + 1].cursor <= pos) ++round;
  const int row = pos - run.rounds[round].cursor;
  text += fmt::format("  first parting row: round {}'s verify, row {} (position {}, after \"{}\"): {}\n", round, row, pos,
                      tok.decode(std::vector<int>(run.tokens.begin(), run.tokens.begin() + pos + 1)),
                      compare_rows(run.logits, ref, e.vocab_size()).describe());
  j["parting_row"] = {{"round", round}, {"row", row}, {"position", pos}};
  if (e.has(Capability::Trace)) {
    Trace cached, reference;
    cached.seq = reference.seq = 0;
    speculate(e, c, &cached, static_cast<int>(round));
    e.trace_call(&reference, 0);
    e.forward_uncached(std::span<const int>(run.tokens).first(static_cast<size_t>(pos) + 1));
    int call = -1;
    std::vector<int> positions;
    for (const auto& rec : cached.records)
      if (rec.seq == 0 && rec.kind == TraceKind::Q && rec.layer == 0 && rec.head == 0 && rec.pos <= pos) {
        call = rec.call;
        positions.push_back(rec.pos);
      }
    const Config& cf = e.config();
    const CallDiff d = diff_traced_call(reference, cached, call, 0, positions, 0, cf.n_layer, cf.n_head, e.kv_dtype());
    text += d.text;
    j.update(d.json);
    return;
  }
  const Measured m = measure(std::span<const float>(run.logits).subspan(i * V, V), std::span<const float>(ref).subspan(i * V, V));
  const Verdict v = classify(m, "f32");
  text += fmt::format("  this engine cannot trace its calls, so no layer is named: the row's logits differ by max |d| {:.3g}\n",
                      m.max_abs) + verdict_line(v, "f32", -1, "logits");
  j["first_parting"] = {{"layer", -1}, {"head", -1}, {"component", "logits"}, {"position", pos},
                        {"max_abs", m.max_abs}, {"max_ulp", m.max_ulp}};
  j["cause"] = "forward";
  j["verdict"] = verdict_word(v);
}

// Every accepted row agrees: the first K or V row the cache holds after the last rollback that
// parts from full recompute's.
void report_cache(EngineUnderTest& e, const SpecRun& run, std::string& text, nlohmann::json& j) {
  const std::vector<int> held(run.tokens.begin(), run.tokens.end() - 1);
  const KvRows got = *e.cache_rows(0), want = *e.recompute_rows(held);
  const auto p = first_row_parting({got}, {want});
  if (!p) return;
  const std::string dtype = value_dtype("cache", e.kv_dtype());
  const Verdict v = classify(p->k ? measure(got.k_row(p->layer, p->head, p->slot), want.k_row(p->layer, p->head, p->slot))
                                  : measure(got.v_row(p->layer, p->head, p->slot), want.v_row(p->layer, p->head, p->slot)),
                             dtype);
  text += fmt::format("  every accepted row's logits agree; after the last rollback: {}\n", row_text(*p)) +
          verdict_line(v, dtype, p->layer, "cache");
  j["first_parting"] = {{"layer", p->layer}, {"head", p->head}, {"component", "cache"}, {"slot", p->slot}, {"sequence", 0}};
  j["cause"] = "forward";
  j["verdict"] = verdict_word(v);
}

// The report: each round as it ran (cursor, draft, accepted count, correction, cursor after the
// rollback), then where it parts: a cursor left wrong by a rollback; else the first accepted row
// whose logits part; else the first cache row that parts.
Failure P17::report(const SpecCase& c, const std::string& headline) const {
  EngineUnderTest& e = *context().subject;
  const Tokenizer& tok = *context().tokenizer;
  Failure f;
  f.property = id();
  f.headline = headline;
  f.case_json = to_json(c);
  nlohmann::json j = {{"property", id()}, {"headline", headline}};
  std::string text = fmt::format("  {}\n  prompt: \"{}\" ({} tokens, all but the last prefilled)\n", headline,
                                 tok.decode(c.prompts[0]), c.prompts[0].size());
  SpecRun run;
  std::vector<float> ref;
  try {
    run = speculate(e, c);
    if (run.cursor_round < 0 && !run.positions.empty()) ref = recompute(e, run);
  } catch (const std::exception& err) {
    f.text = text + fmt::format("  the run stopped: {}\n", err.what());
    j["cause"] = "engine-error";
    f.json = j;
    return f;
  }
  for (size_t r = 0; r < run.rounds.size(); ++r) {
    const Round& x = run.rounds[r];
    text += fmt::format("  round {}: verify at cursor {} of \"{}\": {} of {} draft tokens accepted, correction \"{}\"; "
                        "rollback to {}, cursor {}\n", r, x.cursor, tok.decode(x.input), x.accepted, x.input.size() - 1,
                        tok.decode(std::vector<int>{x.correction}), x.cursor + 1 + x.accepted, x.cursor_after);
  }
  if (run.cursor_round >= 0)
    report_cursor(run, text, j);
  else if (!ref.empty() && !compare_rows(run.logits, ref, e.vocab_size()).bit_identical())
    report_row(e, c, run, ref, text, j);
  else if (e.has(Capability::KvRows))
    report_cache(e, run, text, j);
  if (!j.contains("first_parting") && !j.contains("cause")) {
    text += "  every cursor, logit and cache row agrees on this replay: the difference did not come again\n";
    j["cause"] = "engine-error";
  }
  f.text = text;
  f.json = j;
  f.located = j.contains("first_parting");
  return f;
}

}  // namespace

const Property& p17() {
  static const P17 property;
  return property;
}

}  // namespace miniinfer::props
