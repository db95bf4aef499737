// The model-based property: random programs of engine commands over several sequences, as a
// serving engine issues them (prefill and resume chunks, batched decode, continuous batching,
// rollback, prefix forks, resets), checked with RapidCheck's rc::state against a model that is
// nothing but the tokens each sequence holds. Full recompute of those tokens, by the engine
// under test itself, is the oracle; what an engine lacks (K/V rows, a trace, a capacity of
// kHistoryCapacity) narrows what is checked, and the mix line says so (props/history.cpp).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/sampling.h"
#include "props/report.h"

namespace miniinfer::props {

constexpr int kHistorySequences = 8;  // the engine's sequences; a program uses the first `batch`
constexpr int kHistoryCapacity = 12;  // slots per sequence: small, so programs fill sequences
// On an engine with a prefix cache (the paged layout) p11 also submits and frees, on a pool of
// 28 slots (7 blocks of 4) for its 8 sequences of 12 (96): programs evict and preempt. A call
// then touches at most 2 sequences (24 slots), so that every call the model accepts fits the
// pool (with 3 sequences and 36 slots, 2 to 5 programs in 200 preempted; with these, 3 to 15).
constexpr int kServingPoolSlots = 28;
constexpr int kServingWidth = 2;
constexpr uint64_t kTwinPlacement = 7;  // the placement twin's seed: the same bytes elsewhere

// One command of a program.
struct Step {
  // Verify and Rollback are speculative decoding's: verify appends [last, d1..dk] in one call and
  // gives every row's logits (EngineUnderTest::verify); rollback rejects a draft's tail.
  enum Kind { Append, Decode, Mixed, Truncate, Fork, Reset, Submit, Free, Verify, Rollback } kind = Append;
  std::vector<int> seqs;                 // Append, Truncate, Reset, Submit, Free, Verify, Rollback: {s};
                                         // Fork: {src, dst}; Decode, Mixed: one per row of the batched call
  std::vector<std::vector<int>> tokens;  // Append: {chunk}; Submit: {prompt}; Verify: {[last, d1..dk]}; Decode:
                                         // the first input token per sequence; Mixed: a chunk per sequence
                                         // (1 token: a decode row)
  int n = 0;                             // Decode: calls (steps); Truncate, Fork, Rollback: the prefix kept
  SamplerOptions sampler;                // Decode: how each next input is drawn from the logits
  uint64_t seed = 0;                     // Decode: coins from Rng::stream(seed, sequence)
};
std::ostream& operator<<(std::ostream& os, const Step& step);

// The model: the tokens each sequence holds (and, with a prefix cache, which are freed).
struct Histories {
  int batch = 2;                         // B: sequences 0..B-1 are in play
  std::vector<std::vector<int>> tokens;  // (kHistorySequences) the rest stay empty
  int block = 0;                         // the engine's reuse block; 0: no prefix cache (no serving commands)
  std::vector<char> freed = {};          // (kHistorySequences) or empty: none freed
  std::vector<std::vector<int>> seen = {};  // serving: what sequences held before (a Submit's prefixes)
  // Serving: per sequence, the ids last written at each position, past a truncation or reset
  // too: a Submit that resubmits a conversation after its end was edited.
  std::vector<std::vector<int>> ghost = {};
  // Per sequence, its length before the last Verify on it (-1 or absent: none since the last
  // Rollback): a Rollback is drawn inside that verify.
  std::vector<int> verified = {};
};

// A program and, once it failed, where.
struct Program {
  int batch = 2;
  std::vector<Step> steps;
  int failing = -1;     // the command where the engine and the model part
  bool twin = false;    // it parted on the placement twin, not on the first engine
};

// The property body: draws a program, runs it, RC_FAILs with a report at the first parting.
void check_histories();
// Counts of the commands and cases run so far, printed after the property.
std::string history_mix();

// Runs a saved program (replay); returns what differed, or nothing.
std::optional<std::string> check_program(Program& program);
Failure report_program(const Program& program, const std::string& headline);
// The report of a program the engine crashed on: the program, the crash, nothing re-run.
Failure crash_report(const Program& program, const std::string& headline);
nlohmann::json program_to_json(const Program& program);
Program program_from_json(const nlohmann::json& j);  // throws Error naming the bad field

}  // namespace miniinfer::props
