// The reporter on an engine that is not ours (no K/V rows). It finds the first draw where the
// cached path and full recompute part, then traces both through the engine's trace_call
// (llama.cpp: its eval callback's tensors, as our trace records) and diffs them with the same
// table, verdict and heatmap as for our engine. A third trace shows whether a kernel depends on
// the batch size: the same row computed by two full recomputes of different lengths (no cache
// involved).
#include <algorithm>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "base/error.h"
#include "props/context.h"
#include "props/cross_sequence.h"
#include "props/level.h"
#include "props/report.h"

namespace miniinfer::props {
namespace {

// The rows of call 0 of `trace`, as (sequence, position), sorted: one layer-0 block output each.
std::vector<std::pair<int, int>> rows_of(const Trace& trace) {
  std::set<std::pair<int, int>> rows;
  for (const TraceRecord& r : trace.records)
    if (r.call == 0 && r.layer == 0 && r.kind == TraceKind::BlockOut) rows.insert({r.seq, r.pos});
  return {rows.begin(), rows.end()};
}

std::vector<int> iota_rows(int n) {
  std::vector<int> rows(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  return rows;
}

}  // namespace

Failure diagnose_outside(EngineUnderTest& e, const Scenario& sc, const std::string& property,
                         const std::string& headline, const std::vector<std::string>& vocab) {
  const Config& cf = e.config();
  const int L = cf.n_layer, H = cf.n_head, V = e.vocab_size();
  const bool batch = !sc.batch.empty();
  const int draws = draws_in(sc.script);
  Failure f;
  f.property = property;
  f.headline = headline;
  f.json = {{"property", property}, {"headline", headline}, {"engine", e.name()}, {"engine_settings", e.settings()}};

  auto cached_run = [&](Trace* trace, int traced_draw) {
    start_scenario(e, sc);
    if (batch) return run_batch(e, sc, trace ? traced_draw + 1 : draws, trace, trace ? traced_draw : -1);
    if (sc.twice) run_script(e, sc.script, true, sc.seq);
    return run_script(e, sc.script, true, sc.seq, trace, trace ? traced_draw : -1);
  };
  const ScriptRun cached = cached_run(nullptr, -1);
  const ScriptRun uncached = run_script(e, sc.script, false);
  const Closeness cl = compare_runs(cached.generated, uncached.generated, flat_logits(cached.logits), flat_logits(uncached.logits), V);
  f.json["levels"] = cl.describe();
  if (cl.bit_identical()) {
    f.text = fmt::format("  {}\n  this scenario's cached run equals full recompute bit for bit\n", headline);
    return f;  // not located: the caller tries the next scenario
  }
  f.located = true;
  const int d = cl.bits_step >= 0 ? cl.bits_step : cl.token_step;
  const int p = uncached.logit_positions[static_cast<size_t>(d)];
  const std::vector<int>& history = uncached.contexts[static_cast<size_t>(d)];
  std::string text = fmt::format("  {}\n  engine: {}\n  levels: {}\n", headline, e.describe(), cl.describe());
  {
    std::string words;
    for (size_t i = 0; i < history.size(); ++i) words += (i ? " " : "") + vocab[static_cast<size_t>(history[i])];
    text += fmt::format("  first parting: draw {}, the logits of position {} after \"{}\"\n", d, p, words);
  }
  f.json["draw"] = d;
  f.json["position"] = p;

  // Traces: the cached call of draw d, full recompute of positions 0..p, and (batch-size check)
  // full recompute of 0..p+1, whose row p must be the same under causal attention. Every
  // trace's full-recompute rows are labelled sequence sc.seq.
  Trace ref, got, longer_trace;
  ref.seq = got.seq = longer_trace.seq = sc.seq;
  if (!e.trace_call(&ref, 0)) {
    text += "  the engine cannot trace its calls: no per-layer table\n"
            "  cause: the forward pass (the logits part at that draw; no layer can be named without a trace)\n";
    f.json["cause"] = "forward";
    f.text = text;
    return f;
  }
  e.forward_uncached(std::span<const int>(history).first(static_cast<size_t>(p) + 1));
  std::vector<int> longer(history.begin(), history.begin() + p + 1);
  longer.push_back(uncached.generated[static_cast<size_t>(d)]);
  e.trace_call(&longer_trace, 0);
  e.forward_uncached(longer);
  const ScriptRun traced = cached_run(&got, d);
  (void)traced;

  // The traced cached call's rows (every sequence's), and sequence sc.seq's positions among them.
  const std::vector<std::pair<int, int>> rows = rows_of(got);
  std::vector<int> positions;
  for (const auto& [seq, pos] : rows)
    if (seq == sc.seq) positions.push_back(pos);
  if (positions.empty()) fail("diagnose: the traced call of draw {} holds no row of sequence {}", d, sc.seq);
  const bool single = !batch && sc.warmup.empty();
  const CallDiff diff = diff_traced_call(ref, got, 0, sc.seq, positions, 0, L, H, e.kv_dtype());
  text += fmt::format("  the traced call: the cached path's call of {} row{}, of which sequence {}'s at positions {}..{}, "
                      "against full recompute of {} row{}\n",
                      rows.size(), rows.size() == 1 ? "" : "s", sc.seq, positions.front(), positions.back(), p + 1,
                      p == 0 ? "" : "s");
  text += diff.text;
  if (!single) text += "  (probs not compared: the cache's cells hold several sequences, not positions in order)\n";
  f.json.update(diff.json);
  // The cause the diff names (poison, bookkeeping, ...), else the forward pass; a cross-sequence
  // cause found below replaces it.
  if (!f.json.contains("cause")) f.json["cause"] = "forward";

  // Where the first parting is a projection whose input row is bit-identical, the projection
  // itself computed the same row differently in the two calls.
  if (diff.json.contains("first_parting")) {
    const auto& fp = diff.json["first_parting"];
    const std::string comp = fp["component"].get<std::string>();
    if (comp == "q" || comp == "k" || comp == "v") {
      bool input_same = false;
      for (const auto& row : diff.json["table"])
        if (row["layer"] == fp["layer"] && row["head"] == -1 && row["components"]["ln1"]["total"].get<int>() > 0)
          input_same = row["components"]["ln1"]["differing"].get<int>() == 0;
      if (input_same)
        text += fmt::format("  its input, layer {}'s ln1 row, is bit-identical: the {} projection (a matmul) turned the "
                            "same row into different bytes in a call of {} row{} and in one of {}\n",
                            fp["layer"].get<int>(), comp, rows.size(), rows.size() == 1 ? "" : "s", p + 1);
    }
  }

  // The batch-size checks, with no cache involved: the same rows from full recomputes of
  // different lengths (under causal attention row i depends on tokens 0..i only). Row 0 alone
  // (a batch of 1) against row 0 of the p+1-row recompute; rows 0..p against a p+2-row one.
  Trace one;
  one.seq = sc.seq;
  e.trace_call(&one, 0);
  e.forward_uncached(std::span<const int>(history).first(1));
  nlohmann::json checks = nlohmann::json::array();
  auto batch_check = [&](const Trace& other, int n_other, const std::vector<int>& compared) {
    const CallDiff bs = diff_traced_call(ref, other, 0, sc.seq, compared, 0, L, H, e.kv_dtype());
    const bool differs = bs.json.contains("first_parting");
    const std::string which = compared.size() == 1 ? "row 0" : fmt::format("rows 0..{}", compared.back());
    if (differs) {
      const auto& fp = bs.json["first_parting"];
      text += fmt::format("  batch size: {} of full recomputes of {} and of {} rows differ, first at layer {} {}",
                          which, p + 1, n_other, fp["layer"].get<int>(), fp["component"].get<std::string>());
    } else {
      text += fmt::format("  batch size: {} of full recomputes of {} and of {} rows are bit-identical", which, p + 1,
                          n_other);
    }
    text += "\n";
    checks.push_back({{"rows_compared", compared.size()}, {"batch", p + 1}, {"other_batch", n_other},
                      {"differs", differs}, {"first_parting", bs.json.value("first_parting", nlohmann::json(nullptr))}});
    return differs;
  };
  bool dependent = false;
  if (p >= 1) dependent = batch_check(one, 1, {0}) || dependent;
  dependent = batch_check(longer_trace, p + 2, iota_rows(p + 1)) || dependent;
  if (dependent)
    text += "  so a kernel in this engine computes a row differently depending on how many rows it is computed with;\n"
            "  the cached call and full recompute compute this row in batches of different sizes, so they part\n";
  f.json["batch_size_checks"] = checks;

  // Causes in another sequence (issue 28): a batch or a shared cache whose parting goes away
  // without one of the other sequences names that sequence, and the cause is cross-sequence.
  if (const auto cross = find_cross_sequence(e, sc)) {
    text += fmt::format("  cause: cross-sequence: {}\n", cross->sentence);
    f.json["cause"] = "cross-sequence";
    f.json["cross_sequence"] = to_json(*cross);
  }
  f.text = text;
  return f;
}

}  // namespace miniinfer::props
