// The engine's batch-invariant kernels and their plain double-precision references.
// Every kernel computes each output element in one fixed order that depends only on that
// element's inputs, never on how many rows are computed together, where a row sits, pointer
// alignment or thread count: that is what makes the cached path byte-identical to full
// recompute (docs/invariance.md). Convention (llm.c): outputs first, then inputs, then sizes.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>
#include <vector>

namespace miniinfer {
class ThreadPool;
}

namespace miniinfer::kernels {

// ---- matmul ---------------------------------------------------------------------------------
// Weights are re-laid once, from PyTorch's (OC, C) into column groups of kGroup output columns:
// group g holds columns [g*kGroup, g*kGroup + kGroup) as a (C, kGroup) row-major block, the last
// group zero-padded. The inner loop runs along output columns, one SIMD vector per 8 or 16 of
// them, and a one-row product streams each group's rows front to back. The layout does not
// depend on the vector width, and a matrix packed with OC columns also serves its first OC' < OC.
inline constexpr int kGroup = 64;
size_t packed_size(int C, int OC);  // floats in a packed (C, OC) matrix
// packed: (ceil(OC/kGroup), C, kGroup)  <-  weight: (OC, C), PyTorch nn.Linear layout
void pack_weight(float* packed, const float* weight, int C, int OC);

// Storage on 64-byte boundaries: then every row of a group starts a cache line and a 16-lane
// load never straddles two. Only speed depends on it; any offset gives the same bytes.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  bool operator==(const CacheLineAllocator&) const = default;
};
using PackedWeight = std::vector<float, CacheLineAllocator<float>>;
PackedWeight pack_weight(const std::vector<float>& weight, int C, int OC);

// out[t][n] = bias[n] + sum_k inp[t][k] * W[k][n], accumulated starting from bias[n] (0 when
// bias is null) in increasing k, one fused multiply-add per term: acc = fma(x[k], W[k][n], acc).
// out: (T, OC); inp: (T, C); weight: packed (C, OC); bias: (OC) or null. out must not overlap
// inp: with several tiles to a column group, partial sums are stored in out between blocks of k.
// With a pool, a product big enough to pay for waking it (kMinParallelWork multiply-adds,
// thread_pool.h) is split into column groups or into blocks of rows, never along k: each
// element's chain is the one above whatever the thread count.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int T,
                    int C, int OC, ThreadPool* pool = nullptr);
// The matmul's vector width: 16 lanes (AVX-512F) where this build (FMA, x86-64-v3 and up) and
// the CPU allow it, otherwise 8. Each lane runs the same fma chain, so the width changes no byte
// (kernels_test and the bytes_fingerprint CTest check it); set_matmul_width(8) forces the 8-lane
// tiles, set_matmul_width(0) restores the widest. Set it before starting work, not during.
int matmul_width();
int matmul_widest();
void set_matmul_width(int width);
// The same, but row t goes to out_rows[t] (OC floats each): lets forward write K and V rows
// straight into their cache slots when the rows belong to different sequences.
void matmul_forward_rows(float* const* out_rows, const float* inp, const float* weight,
                         const float* bias, int T, int C, int OC, ThreadPool* pool = nullptr);
// weight in the file's (OC, C) layout; out (T, OC) in double.
void matmul_reference(double* out, const float* inp, const float* weight, const float* bias, int T,
                      int C, int OC);

// ---- layernorm ------------------------------------------------------------------------------
// PyTorch semantics: mean = (sum in index order) / C; var = (sum of (x-mean)^2 in index order) / C;
// out = ((x - mean) * rstd) * w + b with rstd = 1 / sqrt(var + eps).
// out, inp: (T, C); weight, bias: (C).
void layernorm_forward(float* out, const float* inp, const float* weight, const float* bias,
                       float eps, int T, int C);
void layernorm_reference(double* out, const float* inp, const float* weight, const float* bias,
                         double eps, int T, int C);

// ---- RoPE -----------------------------------------------------------------------------------
// The spec's table: cos/sin of pos * theta^(-2i/d_head), computed in double and rounded to float
// once. table: (max_pos, half) each.
struct RopeTable {
  int max_pos = 0, half = 0;
  std::vector<float> cos, sin;  // (max_pos, half)
  const float* cos_at(int pos) const { return cos.data() + static_cast<size_t>(pos) * half; }
  const float* sin_at(int pos) const { return sin.data() + static_cast<size_t>(pos) * half; }
};
RopeTable make_rope_table(int max_pos, int d_head, double theta);
// In place, rotate-half per head: y_i = x_i*c - x_{i+half}*s; y_{i+half} = x_{i+half}*c + x_i*s.
// x: (H, d_head) for one token; cos, sin: (d_head/2) for its position.
void rope_forward(float* x, const float* cos, const float* sin, int H, int d_head);
// Everything in double, angles included. x: (H, d_head), in place.
void rope_reference(double* x, int pos, int H, int d_head, double theta);

// ---- attention ------------------------------------------------------------------------------
// The K (or V) rows attention reads, one per slot j: row j lies at
//   base + (table[j >> shift] * 2^shift + j % 2^shift) * ld.
// The contiguous cache is a one-entry table {0} with a shift no slot reaches (row j at
// base + j * ld); the paged cache is a sequence's block table with shift = log2(block_size) and
// base = the layer's pool. The kernels only ever ask for a row's address, once per slot, so a
// view changes where a row is read, never which operations run in which order
// (docs/paged-cache.md).
struct KvView {
  const float* base = nullptr;
  const int* table = nullptr;
  int shift = 30;
  size_t ld = 0;  // floats between consecutive slots of one block
  const float* row(int j) const {
    return base + ((static_cast<size_t>(table[j >> shift]) << shift) + static_cast<size_t>(j & ((1 << shift) - 1))) * ld;
  }
  // The same rows, `off` floats further in (a head's columns).
  KvView at(size_t off) const {
    KvView v = *this;
    v.base += off;
    return v;
  }
};
// Rows ld floats apart from `base`: slot j at base + j * ld.
KvView contiguous_view(const float* base, size_t ld);

// One query row of one head against slots 0..n-1:
//   s_j = (acc = fma(q[d], k_j[d], acc) for d in order, from 0) * scale;
//   p_j = exp_f(s_j - max_j s_j) / sum, the sum of the e_j in a fixed order that depends on n
//   only (8 lane-strided partial sums, combined pairwise, then the leftover slots in order);
//   out[d] = (acc = fma(p_j, v_j[d], acc) for j in slot order, from 0).
// out: (d_head); probs: (n), written (the trace reads it); q: (d_head); k, v: n rows whose first
// d_head floats are this head's; scale: 1/sqrt(d_head) as float.
void attention_forward(float* out, float* probs, const float* q, KvView k, KvView v, int n, int d_head, float scale);
// Its first step alone: scores[j] = s_j for j < n.
void attention_scores(float* scores, const float* q, KvView k, int n, int d_head, float scale);
// One query row, all H heads (head h at offset h*d_head of q, k, v and out): for each head the
// bytes of attention_forward alone; the weighted sums of all heads run side by side.
// probs: (H, probs_ld), head h's n probabilities at h*probs_ld.
void attention_forward_heads(float* out, float* probs, int probs_ld, const float* q, KvView k, KvView v, int n, int H,
                             int d_head, float scale);
// Causal attention of `rows` consecutive query rows of one head: row i (position p0 + i) reads
// slots 0..p0+i and gets exactly the bytes attention_forward gives it alone (same score chain,
// same softmax_row, same weighted-sum chain); rows are only processed kCausalRows at a time
// so that each key and value row is loaded once per block. out: rows of ld_out floats;
// q: rows of ld_q; k, v as in attention_forward, at least p0 + rows slots;
// scratch: attention_causal_scratch(p0 + rows, d_head) floats.
inline constexpr int kCausalRows = 4;
size_t attention_causal_scratch(int n_slots, int d_head);
void attention_forward_causal(float* out, int ld_out, float* scratch, const float* q, int ld_q, KvView k, KvView v,
                              int p0, int rows, int d_head, float scale);
// The same in double throughout, rounded once at the end: the fp64-decode fault's kernel.
void attention_forward_f64(float* out, float* probs, const float* q, KvView k, KvView v, int n, int d_head,
                           float scale);
void attention_reference(double* out, const float* q, const float* k, const float* v, int n,
                         int d_head, int ld);

// ---- deliberate mutants (faults.cpp's kernel faults; never on the model's path) ---------------
// Each is one of the kernels above with one operation wrong, chosen by the cached path's fault:
// BlockSlotShort: the causal block kernel's last row of every full block of kCausalRows reads
//   one slot short (a tile bound off by one); the other rows keep their bytes.
// LastHeadReversed: the all-heads row kernel sums the last head's weighted values from the
//   newest slot back (the same terms in another order: ULP drift).
// SoftmaxReversed: the softmax's sum of the e_j runs from the last slot back (ULP drift).
enum class Mutant { None, BlockSlotShort, LastHeadReversed, SoftmaxReversed };
void attention_forward_causal_mutant(float* out, int ld_out, float* scratch, const float* q, int ld_q, KvView k,
                                     KvView v, int p0, int rows, int d_head, float scale, Mutant mutant);
void attention_forward_heads_mutant(float* out, float* probs, int probs_ld, const float* q, KvView k, KvView v, int n,
                                    int H, int d_head, float scale, Mutant mutant);
// One head's row as the mutant computes it (`last_head`: the head LastHeadReversed reorders).
void attention_forward_mutant(float* out, float* probs, const float* q, KvView k, KvView v, int n, int d_head,
                              float scale, Mutant mutant, bool last_head);
// layernorm_forward with the mean's and the variance's sums run from the last index back.
void layernorm_forward_reversed(float* out, const float* inp, const float* weight, const float* bias, float eps, int T,
                                int C);

// ---- pointwise ------------------------------------------------------------------------------
// gelu_tanh(x) = 0.5x(1+tanh(u)), u = sqrt(2/pi)(x + 0.044715x^3), evaluated as the identical
// x / (1 + exp(-2u)), which keeps full relative accuracy where 1 + tanh(u) would cancel.
void gelu_forward(float* out, const float* inp, int N);
void gelu_reference(double* out, const float* inp, int N);
// out[i] = a[i] + b[i]
void residual_forward(float* out, const float* a, const float* b, int N);

// exp from + - * / only (no CPU-dispatched libm): Cody-Waite reduction by ln 2, a degree-7
// Taylor polynomial on |r| <= ln2/2 (truncation < 6e-9 relative), scaling by 2^n through the
// exponent bits. Within 2 ulp of the true value for x in (-87.3, 88.3]; 0 at or below -87.3,
// +inf above 88.3 (float overflows at 88.72; the last 0.4 is given up to keep 2^n normal).
// One template for a float and for a vector of 8 (GCC vector extension): the vector lanes do
// exactly the scalar's operations, so arrays (exp_forward) and single values agree bit for bit.
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));

template <typename F>
inline F exp_generic(F x0) {
  constexpr bool scalar = std::is_same_v<F, float>;
  const float lo = -87.3f, hi = 88.3f;
  const F zero = F{} + 0.0f, inf = F{} + std::numeric_limits<float>::infinity();
  // Clamped to [lo, hi]; a NaN becomes lo here (converting NaN to int below would be undefined
  // behaviour) and is returned as itself at the end. Finite inputs see the same operations.
  const F x = x0 >= lo ? (x0 > hi ? F{} + hi : x0) : F{} + lo;
  // round(x / ln2) by the 1.5*2^23 trick: exact round-to-nearest with one add and one subtract.
  const F n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
  // ln2 = 0.693359375 - 2.12194440e-4; the high part has 9 significant bits, so n*hi is exact.
  const F r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  F p = F{} + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  F scale;
  if constexpr (scalar) {
    scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  } else {
    scale = std::bit_cast<F>((__builtin_convertvector(n, i32x8) + 127) << 23);
  }
  const F y = p * scale;
  return x0 <= lo ? zero : (x0 > hi ? inf : (x0 == x0 ? y : x0));
}

inline float exp_f(float x) { return exp_generic(x); }
// out[i] = exp_f(inp[i]), eight at a time, the tail one by one.
void exp_forward(float* out, const float* inp, int N);

}  // namespace miniinfer::kernels
