// Fault injection: small, realistic cache bugs the property checker must catch. Each fault is
// declared once, in faults.cpp: its name, the real bug it imitates, what it does, and a
// Variation (variation.h) that overrides the one variation point it deviates at. The forward
// pass asks the active Variation on the cached path only, so the uncached path never sees a
// fault. Selected at runtime (Engine::set_fault, GenerateOptions::fault); None by default.
#pragma once
#include <span>
#include <string>
#include <string_view>

#include "engine/variation.h"

namespace miniinfer {

enum class Fault {
  None,
  CursorOffByOne,   // decode writes K/V one slot past the cursor, leaving a hole
  SelfExcluded,     // decode attends only to past slots (current K/V appended after attention)
  DecodeMask,       // the q_len=1 causal mask is built as if the query sat at position 0
  LayerAlias,       // during decode every layer reads layer 0's cache
  LastLayerStale,   // the last layer's V is never written during decode
  Fp64Decode,       // decode accumulates attention in double; prefill uses float
  RopeDecodePhase,  // decode rotates q and k with position cursor-1
  BatchStride,      // in decode, sequence b reads with sequence 0's offset (shows only with B>1)
  StaleCache,       // the cache is not reset between two generate calls on one engine
  ResumeOffset,     // a q_len>1 chunk on a non-empty cache takes RoPE positions from 0
  LibraryGemv,      // decode uses Eigen's product while prefill uses the invariant kernel
  SoftmaxScale,     // decode scales scores by 1/d_head instead of 1/sqrt(d_head)
  // Faults only histories show (several sequences, forks, rollbacks, mixed calls):
  ForkShallow,          // fork copies the lower half of the layers only
  TruncateStale,        // truncation leaves the cursor one past p
  RaggedPosition,       // a batched call rotates every sequence at the first sequence's positions
  ContinuousBatchMask,  // a decode row attends to another sequence's prefill chunk
  ChunkMask,            // a multi-token cached chunk has no causal mask inside it
  // Mutants of the kernels, the batch's row bookkeeping and the sampler:
  BlockSlotShort,  // the causal block (prefill) kernel's last row of each block of 4 reads one slot short
  HeadsOrder,      // decode's all-heads kernel sums the last head's weighted values newest slot first
  SoftmaxOrder,    // decode's softmax sums its exponentials from the last slot back
  LayerNormOrder,  // decode's block LayerNorms sum mean and variance from the last index back
  LogitsRow,       // a ragged batched call takes each chunk's logits row at the first chunk's length
  StaleCoin,       // the cached loop draws step s's token with step s-1's coin
  SplitK,          // with more than one thread, the cached fc_out product sums one k part per thread
  // Faults of the paged cache (paged_cache.h); they act on the paged layout only:
  PrefixHashShort,     // a block's prefix-cache key covers its first block_size - 1 tokens
  CowMissing,          // the first write into a shared or registered block writes in place
  RefcountShort,       // fork does not count the last block it shares
  BlockTableBoundary,  // the write into a block's first slot goes through the previous table entry
  EvictStale,          // eviction hands a block out but leaves the registry pointing at it
  PartialBlockFull,    // releasing a sequence registers its partly filled last block as full
  // Faults of the sliding window (window.h); they pick a window by themselves in props:
  RingWrapOffByOne,  // the first position after each ring wrap goes to (and is read from) the next slot
  WindowMaskWide,    // full recompute's window mask reads one position too many (the reference is wrong)
  // Faults of speculative decoding's two cache operations (Engine::verify, Engine::rollback):
  VerifyPositionShift,  // the verify call rotates its rows at positions shifted by one
  RollbackCursor,       // rollback leaves the cursor where verify left it: rejected rows stay counted
  // Faults of the quantized cache (quant_cache.h); they act on a quantized cache only:
  FlushChunking,  // the cached path flushes the residual float rows at the end of every call
  ScaleGroup,     // the int8 scale is taken over the whole d_model row, not one head's d_head
};

// Every fault, None first, in declaration order.
std::span<const Fault> all_faults();
// The kebab-case name used on command lines ("cursor-off-by-one"); "none" for None.
const char* to_string(Fault fault);
// One line: what the bug does.
const char* describe(Fault fault);
// One line: the kind of real-world bug it imitates (docs/faults.md cites instances).
const char* imitates(Fault fault);
// The forward pass's variation points with this fault in them; model_variation() for None.
const Variation& variation(Fault fault);
// Whether the fault acts on the paged cache (and has nothing to act on in the contiguous one).
bool acts_on_paged(Fault fault);
// Whether the fault acts on the quantized cache (and has nothing to act on in a float one).
bool acts_on_quantized(Fault fault);
// Whether the fault overrides the contiguous cache's own operations (start_request, truncate,
// fork on a KvCache): those have nothing to act on in the paged cache.
bool acts_on_contiguous_only(Fault fault);
// Whether the fault acts on the sliding window (and has nothing to act on without one).
bool acts_on_window(Fault fault);
// Whether the fault acts only on speculative decoding's verify call or rollback (Engine::verify,
// Engine::rollback): a run that never speculates cannot see it.
bool acts_on_speculation(Fault fault);
// The split-k fault's product: out (T, OC) = inp (T, C) times weight (OC, C, row-major)
// transposed, plus bias, each output's k reduction cut into `parts` contiguous parts that are
// summed one by one and then added in part order (what a split-k GEMV kernel does).
void split_k_matmul(float* out, const float* inp, const float* weight, const float* bias, int T, int C, int OC,
                    int parts);
// Throws Error "unknown fault 'x' (known: none, cursor-off-by-one, ...)".
Fault fault_from_name(std::string_view name);

}  // namespace miniinfer
