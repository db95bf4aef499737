// A scenario is a short script of what a user does with one sequence: append tokens, generate,
// roll back. The same script runs on the cached path (appends become prefill/resume chunks,
// generation becomes decode steps) and on the uncached path (every sampling point recomputes
// the whole sequence so far in one forward). Both draw the same coins, so any difference in
// their tokens or logits is the cache's doing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/sampling.h"
#include "props/engines.h"

namespace miniinfer::props {

struct Op {
  enum Kind { Append, Forward, Generate, Truncate, Reseed } kind = Append;
  std::vector<int> tokens;  // Append (Forward: run what is appended through the cache now,
                            // a chunk boundary; the uncached path has nothing to do)
  int n = 0;                // Generate: tokens to draw; Truncate: keep the first n
  uint64_t seed = 0;        // Reseed: draw from Rng::stream(seed, stream) from now on
};

struct Script {
  std::vector<Op> ops;
  SamplerOptions sampler;
  uint64_t seed = 0;    // the coins: Rng::stream(seed, stream), as generate() draws them
  uint64_t stream = 0;
  // Where each draw's coin comes from, as GenerateOptions::coins (called with the draw's step,
  // `stream` as the sequence, the logits and the stream's coin); empty: the stream's coin.
  // Not part of a case file: the property that set it sets it again (p12's coins).
  CoinSource coins;
};

// Every cursor to 0 and every slot of every sequence overwritten with kPoison: what a case
// reads from its cache is then what the case itself wrote, never what an earlier case left
// (KvCache::reset only moves the cursors). A fresh engine would do the same at a higher cost:
// measured on the shipped model with a batch of 4, building an engine (repacking every
// weight) takes 1.13 ms and clean_slate 0.06 ms, so about 1 s against 0.05 s over the default
// run's cases (a throwaway timing program, 200 repetitions each). The value is finite so that
// a read of an unwritten slot gives wrong numbers, not NaNs the sampler would have to refuse.
constexpr float kPoison = 1024.0f;
void clean_slate(Engine& engine);

// One path's run of a script.
struct ScriptRun {
  std::vector<int> tokens;                      // the whole sequence at the end
  std::vector<int> generated;                   // the drawn tokens, in order
  std::vector<int> logit_positions;             // the position each logits row was computed at
  std::vector<std::vector<int>> contexts;       // the tokens each logits row was computed from
                                                // (the history at that step, not the final one)
  std::vector<std::vector<float>> logits;       // (sampling points, V)
  std::vector<float> coins;                     // the coin each draw used
};

// cached: the script on sequence `seq` of `engine`'s cache (reset first). With a trace, only
// the forward call that computes the logits of draw number `traced_draw` is traced (the
// engine's trace_call, trace->seq = seq), and the run stops after that draw (the reporter's
// view of one step).
ScriptRun run_script(EngineUnderTest& engine, const Script& script, bool cached, int seq = 0,
                     Trace* trace = nullptr, int traced_draw = -1);
ScriptRun run_script(Engine& engine, const Script& script, bool cached, int seq = 0, Trace* trace = nullptr,
                     int traced_draw = -1);

// The draws a script makes (its Generate ops' n, summed).
int draws_in(const Script& script);
// Logits rows [from, end) of a run, one after another: (rows, V).
std::vector<float> flat_logits(const std::vector<std::vector<float>>& rows, size_t from = 0);

nlohmann::json to_json(const Script& script);
Script script_from_json(const nlohmann::json& j);  // throws Error naming the bad field

}  // namespace miniinfer::props
