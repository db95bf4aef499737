// The reporter on an engine that is not ours. It finds the first draw where the cached path and
// full recompute part, then traces both with the engine's own tensors (llama.cpp's eval
// callback: attn_norm, Qcur, Kcur, Vcur, kq_soft_max, kqv_out, ffn_norm, ffn_out, l_out per
// layer), turns them into our trace records and diffs them with the same table, verdict and
// heatmap as for our engine. A third trace shows whether a kernel depends on the batch size: the
// same row computed by two full recomputes of different lengths (no cache involved).
#include <algorithm>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "base/error.h"
#include "llamacpp/llamacpp_engine.h"
#include "props/context.h"
#include "props/level.h"
#include "props/report.h"

namespace miniinfer::props {
namespace {

// llama.cpp's name for a traced tensor -> our kind; Probs is handled apart.
bool kind_of(const std::string& base, TraceKind& kind) {
  static const std::map<std::string, TraceKind> kinds = {
      {"attn_norm", TraceKind::Ln1}, {"Qcur", TraceKind::Q},        {"Kcur", TraceKind::K},
      {"Vcur", TraceKind::V},        {"kqv_out", TraceKind::AttnOut}, {"ffn_norm", TraceKind::Ln2},
      {"ffn_out", TraceKind::Mlp},   {"l_out", TraceKind::BlockOut},  {"kq_soft_max", TraceKind::Probs}};
  const auto it = kinds.find(base);
  if (it == kinds.end()) return false;
  kind = it->second;
  return true;
}

// One llama_decode call's tensors as our records. rows[r] is the position of the call's row r
// in the sequence under report, or -1 for another sequence's row. A call of several ubatches
// traces each layer once per ubatch: the last tensor of a name within a ubatch is the final one
// (Qcur after the bias and RoPE), and ubatches are concatenated in order. Probabilities are kept
// only when `cells_are_positions` (one sequence on a cleared cache: cell i holds position i).
Trace to_trace(const LlamaTrace& lt, const std::vector<int>& rows, int seq, Pass pass, int L, int H, int D,
               bool cells_are_positions) {
  std::vector<std::map<std::string, const LayerTensor*>> ubatches(1);
  const std::string last_layer = fmt::format("l_out-{}", L - 1);
  for (const LayerTensor& t : lt.tensors) {
    ubatches.back()[t.name] = &t;
    if (t.name == last_layer) ubatches.emplace_back();
  }
  Trace out;
  const int dh = D / H;
  int row0 = 0;
  for (const auto& ub : ubatches) {
    int n = 0;
    for (const auto& [name, t] : ub) {
      const size_t dash = name.rfind('-');
      TraceKind kind;
      if (dash == std::string::npos || !kind_of(name.substr(0, dash), kind)) continue;
      const int layer = std::stoi(name.substr(dash + 1));
      if (kind == TraceKind::Probs) {
        // ne: (n_kv, n_rows, H)
        const int64_t n_kv = t->ne[0], n_rows = t->ne[1];
        if (!cells_are_positions || t->ne[2] != H) continue;
        for (int64_t r = 0; r < n_rows; ++r) {
          const int pos = row0 + r < static_cast<int64_t>(rows.size()) ? rows[static_cast<size_t>(row0 + r)] : -1;
          if (pos < 0 || pos >= n_kv) continue;
          for (int h = 0; h < H; ++h) {
            const float* p = t->data.data() + (static_cast<size_t>(h) * n_rows + r) * n_kv;
            out.records.push_back({0, 0, pass, seq, layer, h, pos, kind, std::vector<float>(p, p + pos + 1)});
          }
        }
        continue;
      }
      if (t->data.size() % static_cast<size_t>(D) != 0) continue;
      const int rows_here = static_cast<int>(t->data.size() / static_cast<size_t>(D));
      n = std::max(n, rows_here);
      for (int r = 0; r < rows_here; ++r) {
        const int pos = row0 + r < static_cast<int>(rows.size()) ? rows[static_cast<size_t>(row0 + r)] : -1;
        if (pos < 0) continue;
        const float* row = t->data.data() + static_cast<size_t>(r) * D;
        const bool per_head = kind == TraceKind::Q || kind == TraceKind::K || kind == TraceKind::V ||
                              kind == TraceKind::AttnOut;
        if (!per_head) {
          out.records.push_back({0, 0, pass, seq, layer, -1, pos, kind, std::vector<float>(row, row + D)});
          continue;
        }
        for (int h = 0; h < H; ++h)
          out.records.push_back({0, 0, pass, seq, layer, h, pos, kind,
                                 std::vector<float>(row + h * dh, row + (h + 1) * dh)});
      }
    }
    row0 += n;
  }
  return out;
}

std::vector<int> iota_rows(int n) {
  std::vector<int> rows(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  return rows;
}

}  // namespace

Failure diagnose_outside(EngineUnderTest& e, const Scenario& sc, const std::string& property,
                         const std::string& headline, const std::vector<std::string>& vocab) {
  const Config& cf = context().model.config;
  const int L = cf.n_layer, H = cf.n_head, D = cf.d_model, V = e.vocab_size();
  const bool batch = !sc.batch.empty();
  const int draws = draws_in(sc.script);
  Failure f;
  f.property = property;
  f.headline = headline;
  f.json = {{"property", property}, {"headline", headline}, {"engine", e.name()}, {"engine_settings", e.settings()}};

  auto cached_run = [&](LlamaTrace* trace, int traced_draw) {
    e.clean_slate();
    if (!sc.warmup.empty()) {
      GenerateOptions w = sc.batch_options;
      w.cache = true;
      e.generate(sc.warmup, w);
    }
    if (batch) return run_batch(e, sc, trace ? traced_draw + 1 : draws, nullptr, trace, traced_draw);
    if (sc.twice) run_script(e, sc.script, true, sc.seq);
    return run_script(e, sc.script, true, sc.seq, nullptr, trace ? traced_draw : -1, trace);
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
  // full recompute of 0..p+1, whose row p must be the same under causal attention.
  LlamaTrace cached_lt, ref_lt, longer_lt;
  if (!e.trace_call(&ref_lt, 0)) {
    text += "  the engine cannot trace its calls: no per-layer table\n";
    f.text = text;
    return f;
  }
  e.forward_uncached(std::span<const int>(history).first(static_cast<size_t>(p) + 1));
  std::vector<int> longer(history.begin(), history.begin() + p + 1);
  longer.push_back(uncached.generated[static_cast<size_t>(d)]);
  e.trace_call(&longer_lt, 0);
  e.forward_uncached(longer);
  const ScriptRun traced = cached_run(&cached_lt, d);
  (void)traced;

  // Which rows of the traced cached call belong to the sequence under report, at what position.
  std::vector<int> rows;
  if (batch) {
    const size_t s = static_cast<size_t>(sc.seq);
    if (d == 0) {
      for (size_t b = 0; b < sc.batch.size(); ++b)
        for (size_t i = 0; i < sc.batch[b].size(); ++i) rows.push_back(b == s ? static_cast<int>(i) : -1);
    } else {
      for (size_t b = 0; b < sc.batch.size(); ++b) rows.push_back(b == s ? p : -1);
    }
  } else {
    // The call appended rows p-n+1..p; n from the first per-row tensor.
    int n = 1;
    for (const auto& t : cached_lt.tensors)
      if (t.name == "l_out-0") {
        n = static_cast<int>(t.data.size() / static_cast<size_t>(D));
        break;
      }
    for (int i = 0; i < n; ++i) rows.push_back(p - n + 1 + i);
  }
  const bool single = !batch && sc.warmup.empty();
  const Trace ref = to_trace(ref_lt, iota_rows(p + 1), sc.seq, Pass::Uncached, L, H, D, true);
  const Trace got = to_trace(cached_lt, rows, sc.seq, Pass::Decode, L, H, D, single);
  std::vector<int> positions;
  for (int r : rows)
    if (r >= 0) positions.push_back(r);
  std::sort(positions.begin(), positions.end());
  const CallDiff diff = diff_traced_call(ref, got, 0, sc.seq, positions, 0, L, H,
                                         fmt::format("{} on {}: draw {}, position {}", property, e.name(), d, p));
  text += fmt::format("  the traced call: the cached path's call of {} row{}, of which sequence {}'s at positions {}..{}, "
                      "against full recompute of {} row{}\n",
                      rows.size(), rows.size() == 1 ? "" : "s", sc.seq, positions.front(), positions.back(), p + 1,
                      p == 0 ? "" : "s");
  text += diff.text;
  if (!single) text += "  (probs not compared: the cache's cells hold several sequences, not positions in order)\n";
  f.json.update(diff.json);
  f.svg = diff.svg;

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
  LlamaTrace one_lt;
  e.trace_call(&one_lt, 0);
  e.forward_uncached(std::span<const int>(history).first(1));
  const Trace one = to_trace(one_lt, iota_rows(1), sc.seq, Pass::Decode, L, H, D, true);
  const Trace longer_trace = to_trace(longer_lt, iota_rows(p + 2), sc.seq, Pass::Decode, L, H, D, true);
  nlohmann::json checks = nlohmann::json::array();
  auto batch_check = [&](const Trace& other, int n_other, const std::vector<int>& compared) {
    const CallDiff bs = diff_traced_call(ref, other, 0, sc.seq, compared, 0, L, H, "batch-size check");
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
  f.text = text;
  return f;
}

}  // namespace miniinfer::props
