#include "props/cross_sequence.h"

#include <fmt/format.h>

#include "props/level.h"

namespace miniinfer::props {
namespace {

bool parts(EngineUnderTest& e, const Scenario& sc, const ScriptRun& uncached) {
  const ScriptRun cached = cached_scenario_run(e, sc);
  return !compare_runs(cached.generated, uncached.generated, flat_logits(cached.logits), flat_logits(uncached.logits),
                       e.vocab_size())
              .bit_identical();
}

// `sc` without batch prompt j: the parting sequence keeps its coins (its stream number).
Scenario without_batch(const Scenario& sc, int j) {
  Scenario out = sc;
  out.batch.erase(out.batch.begin() + j);
  if (j < sc.seq) {
    out.seq = sc.seq - 1;
    out.batch_options.first_stream = sc.batch_options.first_stream + 1;
  }
  return out;
}

}  // namespace

void prefill_resident(EngineUnderTest& e, const Scenario& sc) {
  for (const auto& [seq, tokens] : sc.resident) e.forward_cached(seq, tokens);
}

void start_scenario(EngineUnderTest& e, const Scenario& sc) {
  e.clean_slate();
  prefill_resident(e, sc);
  if (!sc.warmup.empty()) {
    GenerateOptions w = sc.batch_options;
    w.cache = true;
    e.generate(sc.warmup, w);
  }
}

ScriptRun cached_scenario_run(EngineUnderTest& e, const Scenario& sc) {
  start_scenario(e, sc);
  if (!sc.batch.empty()) return run_batch(e, sc, draws_in(sc.script));
  if (sc.twice) run_script(e, sc.script, true, sc.seq);
  return run_script(e, sc.script, true, sc.seq);
}

std::optional<CrossSequence> find_cross_sequence(EngineUnderTest& e, const Scenario& sc) {
  const bool batch = sc.batch.size() > 1;
  if (!batch && sc.resident.empty()) return std::nullopt;
  const ScriptRun uncached = run_script(e, sc.script, false);
  if (!parts(e, sc, uncached)) return std::nullopt;
  // Sequence numbers as the engine holds them: a batch's prompt j runs in sequence j.
  if (batch) {
    const int n = static_cast<int>(sc.batch.size());
    for (int j = 0; j < n; ++j)
      if (j != sc.seq && !parts(e, without_batch(sc, j), uncached))
        return CrossSequence{sc.seq, j, "forward_batch",
                             fmt::format("the parting needs sequence {}'s chunk in the same call: without it (the same "
                                         "batch less that prompt) sequence {}'s cached run equals full recompute bit "
                                         "for bit",
                                         j, sc.seq)};
    Scenario alone = sc;
    alone.batch = {sc.batch[static_cast<size_t>(sc.seq)]};
    alone.seq = 0;
    alone.batch_options.first_stream = sc.batch_options.first_stream + static_cast<uint64_t>(sc.seq);
    if (n > 2 && !parts(e, alone, uncached))
      return CrossSequence{sc.seq, -1, "forward_batch",
                           fmt::format("the parting needs the other sequences' chunks in the same call: alone, "
                                       "sequence {}'s cached run equals full recompute bit for bit (without any one of "
                                       "them it still parts)",
                                       sc.seq)};
  }
  const int m = static_cast<int>(sc.resident.size());
  for (int j = 0; j < m; ++j) {
    Scenario less = sc;
    less.resident.erase(less.resident.begin() + j);
    if (!parts(e, less, uncached)) {
      const auto& [other, tokens] = sc.resident[static_cast<size_t>(j)];
      return CrossSequence{sc.seq, other, "resident",
                           fmt::format("the parting needs sequence {}'s {} token{} in the shared cache (prefilled "
                                       "before, in a call of its own): without them sequence {}'s cached run equals "
                                       "full recompute bit for bit",
                                       other, tokens.size(), tokens.size() == 1 ? "" : "s", sc.seq)};
    }
  }
  if (m > 1) {
    Scenario none = sc;
    none.resident.clear();
    if (!parts(e, none, uncached))
      return CrossSequence{sc.seq, -1, "resident",
                           fmt::format("the parting needs the other sequences' tokens in the shared cache: without "
                                       "them sequence {}'s cached run equals full recompute bit for bit (without any "
                                       "one of them it still parts)",
                                       sc.seq)};
  }
  return std::nullopt;
}

nlohmann::json to_json(const CrossSequence& c) {
  return {{"seq", c.seq}, {"needs_seq", c.needs_seq}, {"operation", c.operation}};
}

}  // namespace miniinfer::props
