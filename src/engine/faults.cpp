// The fault catalogue's names and descriptions; the faults themselves act in engine.cpp and
// generate.cpp, each at one marked place.
#include "engine/faults.h"

#include <array>

#include "base/error.h"

namespace miniinfer {

namespace {
struct FaultInfo {
  Fault fault;
  const char* name;
  const char* description;
};
constexpr std::array kFaults = {
    FaultInfo{Fault::None, "none", "no fault: the engine as written"},
    FaultInfo{Fault::CursorOffByOne, "cursor-off-by-one",
              "decode writes K/V one slot past the cursor, leaving a hole at the cursor"},
    FaultInfo{Fault::SelfExcluded, "self-excluded",
              "decode attends only to past slots: the current K/V is appended after attention"},
    FaultInfo{Fault::DecodeMask, "decode-mask",
              "the causal mask for q_len=1 is built as if the query sat at position 0"},
    FaultInfo{Fault::LayerAlias, "layer-alias", "during decode every layer reads layer 0's cache"},
    FaultInfo{Fault::LastLayerStale, "last-layer-stale",
              "the last layer's V is never written to the cache during decode"},
    FaultInfo{Fault::Fp64Decode, "fp64-decode",
              "decode accumulates attention in double while prefill uses float"},
    FaultInfo{Fault::RopeDecodePhase, "rope-decode-phase",
              "decode rotates q and k with position cursor-1"},
    FaultInfo{Fault::BatchStride, "batch-stride",
              "in decode, sequence b reads the cache at sequence 0's offset (shows only with B>1)"},
    FaultInfo{Fault::StaleCache, "stale-cache",
              "the cache is not reset between two generate calls on one engine"},
    FaultInfo{Fault::ResumeOffset, "resume-offset",
              "a q_len>1 chunk on a non-empty cache takes RoPE positions from 0"},
    FaultInfo{Fault::LibraryGemv, "library-gemv",
              "decode uses Eigen's product while prefill uses the invariant kernel"},
    FaultInfo{Fault::SoftmaxScale, "softmax-scale",
              "decode scales attention scores by 1/d_head instead of 1/sqrt(d_head)"},
    FaultInfo{Fault::ForkShallow, "fork-shallow",
              "fork copies the lower half of the layers only; the upper layers keep the target's old rows"},
    FaultInfo{Fault::TruncateStale, "truncate-stale", "truncation to p leaves the cursor at p + 1"},
    FaultInfo{Fault::RaggedPosition, "ragged-position",
              "a batched call rotates every sequence's rows at the first sequence's positions"},
    FaultInfo{Fault::ContinuousBatchMask, "continuous-batch-mask",
              "in a call mixing prefill chunks and decode rows, a decode row attends to a prefill chunk's sequence"},
    FaultInfo{Fault::ChunkMask, "chunk-mask",
              "a multi-token cached chunk (prefill or resume) has no causal mask: every row sees the whole chunk"},
};
constexpr std::array<Fault, kFaults.size()> kAll = [] {
  std::array<Fault, kFaults.size()> all{};
  for (size_t i = 0; i < kFaults.size(); ++i) all[i] = kFaults[i].fault;
  return all;
}();

const FaultInfo& info(Fault fault) {
  for (const auto& f : kFaults)
    if (f.fault == fault) return f;
  return kFaults[0];
}
}  // namespace

std::span<const Fault> all_faults() { return kAll; }
const char* to_string(Fault fault) { return info(fault).name; }
const char* describe(Fault fault) { return info(fault).description; }

Fault fault_from_name(std::string_view name) {
  for (const auto& f : kFaults)
    if (name == f.name) return f.fault;
  std::string known;
  for (const auto& f : kFaults) known += (known.empty() ? "" : ", ") + std::string(f.name);
  fail("unknown fault '{}' (known: {})", name, known);
}

}  // namespace miniinfer
