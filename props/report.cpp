#include "props/report.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "props/case_core.h"
#include "props/cases.h"
#include "props/heatmap.h"
#include "props/report_html.h"
#include "props/runner.h"
#include "props/verdict.h"

namespace miniinfer::props {
namespace {

// Dataflow order inside a layer: the first kind that differs is where the paths parted.
constexpr TraceKind kOrder[] = {TraceKind::Ln1,   TraceKind::Q,     TraceKind::K,       TraceKind::V,
                                TraceKind::KRead, TraceKind::VRead, TraceKind::Probs,   TraceKind::AttnOut,
                                TraceKind::Ln2,   TraceKind::Mlp,   TraceKind::BlockOut};
constexpr const auto& kColumn = kComponents;  // heatmap.h: the page lists them in this order
constexpr int kKinds = 11;
static_assert(std::size(kOrder) == kKinds && std::size(kColumn) == kKinds);

int kind_index(TraceKind kind) {
  for (int i = 0; i < kKinds; ++i)
    if (kOrder[i] == kind) return i;
  return -1;
}

struct Stat {
  double max_abs = 0.0;
  double scale = 0.0;  // the largest |reference| value seen
  uint64_t max_ulp = 0;
  int differ = 0;
  int total = 0;
  int first_pos = -1;  // the first position (slot, for cache reads) that differs
  void add(std::span<const float> a, std::span<const float> b, int pos) {
    const size_t n = std::max(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
      ++total;
      if (i >= a.size() || i >= b.size()) {  // a shape difference: e.g. a mask that saw more slots
        ++differ;
        max_ulp = UINT64_MAX;
        if (first_pos < 0) first_pos = pos;
        continue;
      }
      scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
      const uint64_t u = ulp_distance(a[i], b[i]);
      if (u == 0) continue;
      ++differ;
      max_ulp = std::max(max_ulp, u);
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(a[i]) - b[i]));
      if (first_pos < 0 || pos < first_pos) first_pos = pos;
    }
  }
};

using Key = std::tuple<int, int, TraceKind, int>;  // layer, head, kind, pos
using Index = std::map<Key, const TraceRecord*>;

Index index_records(const Trace& trace, int call, int seq) {
  Index index;
  for (const auto& r : trace.records)
    if ((call < 0 || r.call == call) && r.seq == seq) index[{r.layer, r.head, r.kind, r.pos}] = &r;
  return index;
}

// Whether every element of a row is the value clean_slate writes into slots nobody holds.
bool poisoned(std::span<const float> row) {
  return !row.empty() && std::all_of(row.begin(), row.end(), [](float x) { return x == kPoison; });
}

std::string ulp_text(uint64_t u) {
  if (u == UINT64_MAX) return "shape";
  if (u >= 1000000) return fmt::format("{:.1e}", static_cast<double>(u));
  return std::to_string(u);
}

std::string words_of(const std::vector<int>& ids, const std::vector<std::string>& vocab, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to && i < ids.size(); ++i) {
    if (!out.empty()) out += ' ';
    const int id = ids[i];
    out += id >= 0 && id < static_cast<int>(vocab.size()) ? vocab[static_cast<size_t>(id)] : "?";
  }
  return out;
}

// The first sampling point whose logits differ in any bit, or -1.
int first_logit_diff(const ScriptRun& a, const ScriptRun& b) {
  const size_t n = std::min(a.logits.size(), b.logits.size());
  for (size_t i = 0; i < n; ++i)
    if (a.logit_positions[i] != b.logit_positions[i] || a.logits[i].size() != b.logits[i].size() ||
        std::memcmp(a.logits[i].data(), b.logits[i].data(), a.logits[i].size() * sizeof(float)) != 0)
      return static_cast<int>(i);
  return -1;
}

int first_token_diff(const ScriptRun& a, const ScriptRun& b) {
  const size_t n = std::min(a.generated.size(), b.generated.size());
  for (size_t i = 0; i < n; ++i)
    if (a.generated[i] != b.generated[i]) return static_cast<int>(i);
  return -1;
}

}  // namespace

static void diff_call(const Trace& ref_trace, const Trace& cached_trace, int call, int seq, const std::vector<int>& positions,
               int shift, int L, int H, std::string& text, nlohmann::json& j, std::string_view kv_dtype) {
  const Index ref = index_records(ref_trace, -1, ref_trace.records.empty() ? 0 : ref_trace.records[0].seq);
  const Index got = index_records(cached_trace, call, seq);
  auto wanted = [&](int p) { return std::find(positions.begin(), positions.end(), p) != positions.end(); };
  std::vector<std::vector<std::array<Stat, kKinds>>> stats(
      static_cast<size_t>(L), std::vector<std::array<Stat, kKinds>>(static_cast<size_t>(H) + 1));
  for (const auto& [key, data] : got) {
    const auto [layer, head, kind, pos] = key;
    const int ki = kind_index(kind);
    if (ki < 0 || layer < 0 || layer >= L) continue;
    const bool read = kind == TraceKind::KRead || kind == TraceKind::VRead;
    TraceKind ref_kind = kind == TraceKind::KRead ? TraceKind::K : kind == TraceKind::VRead ? TraceKind::V : kind;
    if (!read && !wanted(pos - shift)) continue;
    const int ref_pos = read ? pos : pos - shift;
    auto it = ref.find({layer, head, ref_kind, ref_pos});
    if (it == ref.end()) continue;
    stats[static_cast<size_t>(layer)][static_cast<size_t>(head + 1)][static_cast<size_t>(ki)].add(data->data,
                                                                                                   it->second->data, ref_pos);
  }
  // The first parting site: layer by layer, in dataflow order, head by head (each over every
  // traced row, so a chunk's first wrong row is found wherever it sits in the chunk).
  std::string first;
  nlohmann::json first_json;
  Verdict verdict = Verdict::Gross;  // a row at the wrong slot is a wrong value
  std::string dtype = "f32";
  if (shift != 0) {
    const int p = positions.front();
    first = fmt::format("layer 0, all heads, position: the token sits at slot {} instead of {}", p + shift, p);
    first_json = {{"layer", 0}, {"head", -1}, {"component", "position"}, {"slot", p + shift}, {"position", p}};
    j["cause"] = "cursor";
    j["cursor"] = {{"sequence", seq}, {"expected", p}, {"actual", p + shift}};
  }
  for (int l = 0; l < L && first.empty(); ++l)
    for (int k = 0; k < kKinds && first.empty(); ++k)
      for (int h = -1; h < H && first.empty(); ++h) {
        const Stat& s = stats[static_cast<size_t>(l)][static_cast<size_t>(h + 1)][static_cast<size_t>(k)];
        if (s.differ == 0) continue;
        const bool read = kOrder[k] == TraceKind::KRead || kOrder[k] == TraceKind::VRead;
        first = fmt::format("layer {}, {}{}, {} {} (max |d| {:.3g}, {}/{} elements differ, max {} ULP)", l,
                            h < 0 ? "all heads" : "head ", h < 0 ? "" : std::to_string(h), kColumn[k],
                            read ? fmt::format("slot {}", s.first_pos) : fmt::format("at position {}", s.first_pos),
                            s.max_abs, s.differ, s.total, ulp_text(s.max_ulp));
        first_json = {{"layer", l}, {"head", h}, {"component", kColumn[k]},
                      {read ? "slot" : "position", s.first_pos}, {"max_abs", s.max_abs},
                      {"max_ulp", s.max_ulp}, {"differing", s.differ}, {"total", s.total}};
        dtype = value_dtype(kColumn[k], kv_dtype);
        verdict = classify({s.max_ulp, s.max_abs, s.scale, s.differ}, dtype);
        // The drill-down's data: the parting row as each path computed it (report_html.cpp).
        const auto a = got.find({l, h, kOrder[k], read ? s.first_pos : s.first_pos + shift});
        const auto b = ref.find({l, h, read ? (kOrder[k] == TraceKind::KRead ? TraceKind::K : TraceKind::V) : kOrder[k], s.first_pos});
        if (a != got.end() && b != ref.end())
          j["parting_rows"] = parting_rows_json(kColumn[k], l, h, read ? "slot" : "position", s.first_pos, a->second->data, b->second->data);
        j["cause"] = "forward";
        // A cache row that holds the poison in every element: attention read a slot no step wrote.
        // (For a cache read `a` is the row attention read: its key is the slot.)
        if (read && a != got.end() && poisoned(a->second->data)) {
          const int from = a->second->from_seq >= 0 ? a->second->from_seq : seq;
          first += fmt::format("\n  poison: attention read slot {} of sequence {}, which no step wrote (it holds {})",
                               s.first_pos, from, kPoison);
          first_json["poison"] = {{"slot", s.first_pos}, {"sequence", from}, {"value", kPoison}};
          j["cause"] = "poison";
        } else if (read && a != got.end() && a->second->from_seq >= 0 && a->second->from_seq != seq) {
          // Attention of this sequence read another sequence's rows.
          first += fmt::format("\n  cross-sequence: attention of sequence {} read slot {} of sequence {}", seq,
                               s.first_pos, a->second->from_seq);
          j["cause"] = "cross-sequence";
          j["cross_sequence"] = {{"sequence", seq}, {"read_sequence", a->second->from_seq}, {"slot", s.first_pos}};
        }
      }
  // Every block agrees: the final LayerNorm's row of the last position, and the row it came from.
  if (first.empty() && !positions.empty()) {
    const int p = positions.back();
    const auto a = got.find({L - 1, -1, TraceKind::FinalLn, p + shift});
    const auto b = ref.find({L - 1, -1, TraceKind::FinalLn, p});
    if (a != got.end() && b != ref.end()) {
      Stat s;
      s.add(a->second->data, b->second->data, p);
      const TraceRecord& r = *a->second;
      if (s.differ > 0) {
        first_json = {{"layer", L - 1}, {"head", -1}, {"component", "final-ln"}, {"position", p},
                      {"max_abs", s.max_abs}, {"max_ulp", s.max_ulp}, {"differing", s.differ}, {"total", s.total},
                      {"from_row", r.from_row}, {"from_sequence", r.from_seq}, {"from_position", r.from_pos}};
        dtype = "f32";
        verdict = classify({s.max_ulp, s.max_abs, s.scale, s.differ}, dtype);
        j["parting_rows"] = parting_rows_json("final-ln", L - 1, -1, "position", p, a->second->data, b->second->data);
        first = fmt::format("after the last block, the final LayerNorm at position {} (max |d| {:.3g}, {}/{} elements "
                            "differ, max {} ULP)", p, s.max_abs, s.differ, s.total, ulp_text(s.max_ulp));
        j["cause"] = "forward";
        if (r.from_seq != seq || r.from_pos != p + shift) {
          first += fmt::format("\n  bookkeeping: sequence {}'s logits came from row {} (sequence {}, position {}) "
                               "instead of its own last row (position {})", seq, r.from_row, r.from_seq, r.from_pos,
                               p + shift);
          j["cause"] = "bookkeeping";
          j["bookkeeping"] = {{"sequence", seq}, {"expected", {{"sequence", seq}, {"position", p + shift}}},
                              {"actual", {{"sequence", r.from_seq}, {"position", r.from_pos}, {"row", r.from_row}}}};
        }
      } else {
        // The final LayerNorm agrees too: the output head (the logits' product) is what differs.
        first_json = {{"layer", L - 1}, {"head", -1}, {"component", "head"}, {"position", p}};
        first = fmt::format("after the last block, the output head at position {}: every traced value up to the final "
                            "LayerNorm agrees", p);
        verdict = classify_unmeasured();
        j["cause"] = "forward";
      }
    }
  }
  if (first.empty()) {
    text += "  no traced component differs at that step: the difference enters after the last block (final LayerNorm or head)\n";
  } else {
    text += fmt::format("  first parting: {}\n", first);
    text += verdict_line(verdict, dtype, first_json["layer"].get<int>(), first_json["component"].get<std::string>());
    j["first_parting"] = first_json;
    j["verdict"] = verdict_word(verdict);
  }
  // The table: per (layer, head), per component, differing elements / max ULP.
  text += fmt::format("  {:<12}", "layer/head");
  for (const char* col : kColumn) text += fmt::format("{:>11}", col);
  text += "\n";
  nlohmann::json table = nlohmann::json::array();
  for (int l = 0; l < L; ++l)
    for (int h = -1; h < H; ++h) {
      const auto& row = stats[static_cast<size_t>(l)][static_cast<size_t>(h + 1)];
      bool any = false;
      for (const auto& s : row) any = any || s.total > 0;
      if (!any) continue;
      text += fmt::format("  {:<12}", h < 0 ? fmt::format("L{} (all)", l) : fmt::format("L{} H{}", l, h));
      nlohmann::json cols;
      for (int k = 0; k < kKinds; ++k) {
        const Stat& s = row[static_cast<size_t>(k)];
        text += fmt::format("{:>11}", s.total == 0 ? "-" : s.differ == 0 ? "0" : fmt::format("{}/{}", s.differ, ulp_text(s.max_ulp)));
        cols[kColumn[k]] = {{"differing", s.differ}, {"total", s.total}, {"max_ulp", s.max_ulp}, {"max_abs", s.max_abs}};
      }
      text += "\n";
      table.push_back({{"layer", l}, {"head", h}, {"components", cols}});
    }
  text += "  (cells: differing elements / max ULP; '0' identical; '-' not traced)\n";
  j["table"] = table;
}

CallDiff diff_traced_call(const Trace& reference, const Trace& cached, int call, int seq,
                          const std::vector<int>& positions, int shift, int L, int H, std::string_view kv_dtype) {
  CallDiff d;
  d.json = nlohmann::json::object();
  diff_call(reference, cached, call, seq, positions, shift, L, H, d.text, d.json, kv_dtype);
  return d;
}

ScriptRun run_batch(EngineUnderTest& engine, const Scenario& sc, int max_new_tokens, Trace* trace,
                    int traced_draw) {
  GenerateOptions o = sc.batch_options;
  o.max_new_tokens = max_new_tokens;
  o.return_logits = true;
  o.cache = true;
  if (sc.twice) engine.generate(sc.batch, o);
  if (trace && traced_draw < 0) o.trace = trace;
  if (trace && traced_draw >= 0) {
    trace->seq = sc.seq;
    if (!engine.trace_call(trace, traced_draw)) fail("run_batch: engine {} cannot trace a call", engine.name());
  }
  const GenerateResult g = engine.generate(sc.batch, o);
  ScriptRun run;
  const size_t s = static_cast<size_t>(sc.seq), V = static_cast<size_t>(engine.vocab_size());
  run.tokens = sc.batch[s];
  for (int i = 0; i < max_new_tokens; ++i) {
    run.logit_positions.push_back(static_cast<int>(run.tokens.size()) - 1);
    run.contexts.push_back(run.tokens);
    run.logits.emplace_back(g.logits[s].begin() + static_cast<long>(i * V),
                            g.logits[s].begin() + static_cast<long>((i + 1) * V));
    run.tokens.push_back(g.tokens[s][static_cast<size_t>(i)]);
    run.generated.push_back(g.tokens[s][static_cast<size_t>(i)]);
  }
  return run;
}

void report_sampler_parting(const SamplerParting& s, const std::function<std::string(int)>& word, std::string& text,
                            nlohmann::json& j) {
  text += fmt::format("  sampler: at step {} the logits are bit-identical, the coin was {:.9g}, cached drew \"{}\", full "
                      "recompute drew \"{}\"\n", s.step, s.coin, word(s.cached_token), word(s.recompute_token));
  nlohmann::json sj = {{"step", s.step}, {"coin", s.coin}, {"cached_token", s.cached_token},
                       {"recompute_token", s.recompute_token}, {"sample_gives", s.sample_gives}};
  if (s.cached_coin && *s.cached_coin != s.coin) {
    text += fmt::format("  the cached loop drew with coin {:.9g}, not the step's own (sample() on these logits with "
                        "the step's coin gives \"{}\")\n", *s.cached_coin, word(s.sample_gives));
    sj["cached_coin"] = *s.cached_coin;
  } else if (s.sample_gives != s.cached_token) {
    text += fmt::format("  sample() on these logits with this coin draws \"{}\": the cached loop drew with another "
                        "coin or another sampler (generate.cpp's Sampling::draw must be the only way there)\n",
                        word(s.sample_gives));
  }
  text += verdict_line(classify_unmeasured(), "f32", -1, "sampler");
  j["sampler"] = sj;
  j["cause"] = "sampler";
  j["verdict"] = verdict_word(classify_unmeasured());
}

uint64_t ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : UINT64_MAX - 1;
  auto ordered = [](float x) {
    const int32_t i = std::bit_cast<int32_t>(x);
    return i < 0 ? static_cast<int64_t>(INT32_MIN) - i : static_cast<int64_t>(i);
  };
  const int64_t d = ordered(a) - ordered(b);
  return static_cast<uint64_t>(d < 0 ? -d : d);
}

Failure diagnose(EngineUnderTest& engine, const Scenario& sc, const std::string& property, const std::string& headline,
                 const std::vector<std::string>& vocab) {
  if (!engine.has(Capability::KvRows)) return diagnose_outside(engine, sc, property, headline, vocab);
  const Config& c = engine.config();
  const int L = c.n_layer, H = c.n_head;
  const bool batch = !sc.batch.empty();
  const int draws = draws_in(sc.script);

  auto cached_run = [&](Trace* trace, int upto) {
    if (!sc.warmup.empty()) {
      GenerateOptions o = sc.batch_options;
      o.cache = true;
      o.trace = nullptr;
      engine.generate(sc.warmup, o);
    }
    if (batch) return run_batch(engine, sc, trace ? upto + 1 : draws, trace);
    if (sc.twice) run_script(engine, sc.script, true, sc.seq);
    return run_script(engine, sc.script, true, sc.seq, trace, upto);
  };
  const ScriptRun cached = cached_run(nullptr, -1);
  const ScriptRun uncached = run_script(engine, sc.script, false);
  const int step = first_logit_diff(cached, uncached);
  const int token_step = first_token_diff(cached, uncached);

  Failure f;
  f.property = property;
  f.headline = headline;
  nlohmann::json j = {{"property", property}, {"headline", headline}, {"first_logit_step", nullptr},
                      {"first_token_step", token_step < 0 ? nlohmann::json(nullptr) : nlohmann::json(token_step)}};
  std::string text = fmt::format("  {}\n", headline);
  const auto& prompt_tokens = batch ? sc.batch[static_cast<size_t>(sc.seq)] : cached.tokens;

  f.located = step >= 0;
  if (step < 0 && token_step >= 0) {
    // Bit-identical logits, different tokens: the loops part in the sampler. The coin each
    // loop drew with (a batch's cached loop keeps its coins to itself: the script's, replayed).
    const size_t t = static_cast<size_t>(token_step);
    SamplerParting s{token_step, uncached.coins[t], std::nullopt, cached.generated[t], uncached.generated[t], 0};
    s.sample_gives = sample(uncached.logits[t], sc.script.sampler, s.coin);
    if (t < cached.coins.size()) s.cached_coin = cached.coins[t];
    report_sampler_parting(s, [&](int id) { return words_of({id}, vocab, 0, 1); }, text, j);
    f.located = true;
  } else if (step < 0) {
    text += "  the logits of every step agree bit for bit with full recompute; the difference is in the cache rows\n";
  } else {
    const int p = uncached.logit_positions[static_cast<size_t>(step)];
    j["first_logit_step"] = step;
    j["position"] = p;
    // The history as it stood at that step: a rollback may have rewritten the final one.
    const std::vector<int>& history = uncached.contexts[static_cast<size_t>(step)];
    text += fmt::format("  first logits difference: step {} (position {}, predicting after \"{}\")\n", step, p,
                        words_of(history, vocab, 0, static_cast<size_t>(p) + 1));
    text += token_step < 0 ? "  tokens: identical (the difference stayed below the sampler's resolution)\n"
                           : fmt::format("  first token difference: step {}: cached \"{}\", full recompute \"{}\"\n",
                                         token_step, words_of(cached.generated, vocab, token_step, token_step + 1),
                                         words_of(uncached.generated, vocab, token_step, token_step + 1));
    // Trace both paths at that step.
    Trace ref_trace, cached_trace;
    engine.trace_call(&ref_trace, 0);
    engine.forward_uncached(std::span<const int>(history).first(static_cast<size_t>(p) + 1));
    engine.clean_slate();  // each re-run starts where the first did: a clean cache
    const ScriptRun traced = cached_run(&cached_trace, step);
    // The trace must watch the computation it explains: the traced run's logits at that step
    // are the untraced run's bytes, or nothing the trace shows is evidence.
    const bool same_run = static_cast<size_t>(step) < traced.logits.size() &&
                          traced.logits[static_cast<size_t>(step)] == cached.logits[static_cast<size_t>(step)];
    if (!same_run) {
      text += fmt::format("  the traced run differs from the untraced run at step {}: no diagnosis from the trace\n", step);
      j["cause"] = "engine-error";
      j["engine_error"] = fmt::format("the traced run differs from the untraced run at step {}", step);
    } else {
      // The cached call to compare: the one that computed position p; failing that (a cursor
      // that went astray), the last call traced, whose last row is the token in question.
      int call = -1, cached_pos = p;
      for (const auto& r : cached_trace.records)
        if (r.kind == TraceKind::Q && r.pos == p && r.seq == sc.seq) call = r.call;
      if (call < 0) {
        for (const auto& r : cached_trace.records)
          if (r.seq == sc.seq && r.kind == TraceKind::Q && r.call >= call) {
            if (r.call > call) cached_pos = r.pos;
            call = r.call;
            cached_pos = std::max(cached_pos, r.pos);
          }
      }
      const int shift = cached_pos - p;  // where the cached path put the row, relative to recompute
      if (shift != 0) {
        text += fmt::format("  position: the cached path computed this token at slot {}, full recompute at position {}\n",
                            cached_pos, p);
        j["cached_position"] = cached_pos;
      }
      // Every row of that call, not only its last: a chunk row that went wrong in layer 0 is
      // found there, not where the last row reads its K at layer 1.
      std::vector<int> rows;
      for (const auto& r : cached_trace.records)
        if (r.call == call && r.seq == sc.seq && r.kind == TraceKind::Q && r.layer == 0 && r.head == 0 &&
            r.pos - shift >= 0 && r.pos - shift <= p)
          rows.push_back(r.pos - shift);
      if (rows.empty()) rows.push_back(p);
      diff_call(ref_trace, cached_trace, call, sc.seq, rows, shift, L, H, text, j, engine.kv_dtype());
    }
  }

  // Every cache slot that differs from what full recompute computes for the same tokens.
  {
    engine.clean_slate();
    if (batch) run_batch(engine, sc, draws, nullptr); else cached_run(nullptr, -1);
    // The last drawn token is never fed back, so the cache holds one slot less than the sequence.
    const int expected = static_cast<int>(cached.tokens.size()) - (draws > 0 ? 1 : 0);
    const int cursor = engine.cursor(sc.seq);
    const int n = std::min(cursor, expected);
    if (cursor != expected) {
      text += fmt::format("  cursor: {} slots in use where the sequence needs {}\n", cursor, expected);
      if (!j.contains("cause")) {
        j["cause"] = "cursor";
        j["cursor"] = {{"sequence", sc.seq}, {"expected", expected}, {"actual", cursor}};
        text += fmt::format("  cause: the cursor of sequence {}: {} where {} are expected\n", sc.seq, cursor, expected);
      }
    }
    f.located = f.located || cursor != expected;
    const std::optional<KvRows> held = engine.cache_rows(sc.seq);
    std::optional<KvRows> kv;
    if (n > 0) kv = engine.recompute_rows(std::span<const int>(cached.tokens).first(static_cast<size_t>(n)));
    if (!held || (n > 0 && !kv)) fail("diagnose: engine {} has no {}", engine.name(), to_string(Capability::KvRows));
    nlohmann::json slots = nlohmann::json::array();
    std::string listed;
    int count = 0;
    for (int s = 0; s < n; ++s)
      for (int l = 0; l < L; ++l)
        for (int h = 0; h < H; ++h) {
          if (!held->holds(s)) continue;  // a sliding window's dropped position
          const auto ck = held->k_row(l, h, s), cv = held->v_row(l, h, s);
          const auto rk = kv->k_row(l, h, s), rv = kv->v_row(l, h, s);
          const bool dk = std::memcmp(ck.data(), rk.data(), ck.size_bytes()) != 0;
          const bool dv = std::memcmp(cv.data(), rv.data(), cv.size_bytes()) != 0;
          if (!dk && !dv) continue;
          ++count;
          slots.push_back({{"layer", l}, {"head", h}, {"slot", s}, {"k", dk}, {"v", dv}});
          if (count <= 12)
            listed += fmt::format("{}L{} H{} slot {} ({})", listed.empty() ? "" : ", ", l, h, s,
                                  dk && dv ? "K,V" : dk ? "K" : "V");
        }
    text += count == 0 ? fmt::format("  cache: all {} slots of every layer and head equal full recompute\n", n)
                       : fmt::format("  cache slots that differ from full recompute ({} of {}): {}{}\n", count,
                                     n * L * H, listed, count > 12 ? ", ..." : "");
    j["differing_cache_rows"] = slots;
    // On the paged cache: the block the first differing slot lives in, and who holds it.
    if (count > 0 && engine.has(Capability::PrefixCache)) {
      const int s0 = slots[0]["slot"].get<int>();
      text += fmt::format("  the first differing slot, {}: {}\n", s0, where_slot(engine, sc.seq, s0));
      j["first_differing_slot"] = {{"slot", s0}, {"where", where_slot_json(engine, sc.seq, s0)}};
    }
    f.located = f.located || count > 0;
    if (!j.contains("cause") && count > 0) {
      // Only the cache rows part: the first of them is where.
      const auto& first = slots[0];
      j["cause"] = "forward";
      j["first_parting"] = {{"layer", first["layer"]}, {"head", first["head"]}, {"component", "cache"},
                            {"slot", first["slot"]}};
      text += fmt::format("  first parting: layer {}, head {}, the cache row at slot {}\n", first["layer"].get<int>(),
                          first["head"].get<int>(), first["slot"].get<int>());
    }
  }
  if (!j.contains("cause")) {
    // The property failed and this replay shows nothing: the engine did not repeat itself, or
    // this scenario is not the run that failed (the runner tries the property's next one).
    j["cause"] = "engine-error";
    j["engine_error"] = "the reporter's replay of the case shows no difference";
    text += "  cause: engine error: this replay of the failing case agrees with full recompute in every logit, token "
            "and cache row (the engine did not repeat itself, or the failing run is not one this property's "
            "scenarios rebuild)\n";
  }
  j["prompt_tokens"] = prompt_tokens;
  f.text = text;
  f.json = j;
  return f;
}

namespace {

// Test hook (props/results_race_test.sh, docs/nightly.md): MINIINFER_TEST_REPORT_DELAY_MS
// pauses between a report's first file and the others, the window in which another run's
// report could land between them.
void test_hook_report_delay() {
  if (const char* ms = std::getenv("MINIINFER_TEST_REPORT_DELAY_MS"))
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
}

// An exclusive lock on DIR/.props-report.lock, held while one report's files go into DIR: two
// runs sharing a report folder put in their sets one after the other, so the files of one ID
// are always one run's. The lock file stays (removing it would let a third run lock another).
class ReportFolderLock {
 public:
  explicit ReportFolderLock(const std::string& dir) {
    const std::string path = dir + "/.props-report.lock";
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open the report folder's lock {}: {}", path, std::strerror(errno));
    while (flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) fail("cannot lock the report folder's lock {}: {}", path, std::strerror(errno));
  }
  ~ReportFolderLock() { close(fd_); }
  ReportFolderLock(const ReportFolderLock&) = delete;
  ReportFolderLock& operator=(const ReportFolderLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

void publish_failure(const std::string& id, const Failure& f, const std::string& reproduce) {
  std::printf("\nReport for %s:\n%s", id.c_str(), f.text.c_str());
  const std::string dir = run_config().report_dir;
  try {
    std::filesystem::create_directories(dir);
    const std::string base = dir + "/" + id;
    nlohmann::json report = f.json, case_json = f.case_json;
    case_json["machine"] = run_machine_json();  // where it was found (issue 28: replays compare)
    report["case"] = case_json;
    // The pictures are drawn from the JSON as written: they show what it says.
    const std::string svg = heatmap_svg(report, fmt::format("{}: where the cached path and full recompute part", id));
    const std::pair<std::string, std::string> files[] = {
        {".report.json", report.dump(2) + "\n"}, {".heatmap.svg", svg}, {".case.json", case_json.dump(2) + "\n"},
        {".report.txt", f.text}, {".report.html", report_html(id, report, f.text, svg, base + ".case.json", reproduce)}};
    {
      const ReportFolderLock lock(dir);
      for (const auto& [suffix, bytes] : files) {
        write_file_atomic(base + suffix, bytes);
        if (suffix == files[0].first) test_hook_report_delay();
      }
    }
    std::printf("  written: %s.report.json, .report.txt, .report.html, .heatmap.svg, .case.json\n  replay:  props --replay %s.case.json\n",
                base.c_str(), base.c_str());
  } catch (const std::exception& e) {
    std::printf("  could not write the report into %s: %s\n", dir.c_str(), e.what());
  }
}

}  // namespace miniinfer::props
