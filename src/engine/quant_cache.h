// The quantized KV cache (docs/quantized-cache.md): K and V stored as bf16 or int8 codes (int8:
// one float scale per slot and head), with the newest rows optionally kept in float (a residual
// buffer of R rows, quantized a group of R at a time when it fills). Exactness by construction:
// which representation a query at position p reads for slot j is a pure function of (j, p)
// (read_boundary), and the cached path and full recompute build their reads with the same
// quantizer from the same float rows, so the two paths read the same bytes however the tokens
// were chunked.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "engine/kv_store.h"
#include "engine/variation.h"

namespace miniinfer {

// f32: the float cache (KvCache); bf16: 16-bit codes, no scale; int8: codes with one scale per
// (slot, head).
enum class KvQuant { F32, Bf16, Int8 };
const char* to_string(KvQuant format);
KvQuant kv_quant_from_name(std::string_view name);  // throws Error naming the known ones

// ---- the quantizers: integer bit operations and one correctly rounded float op each ----------
// float -> bf16, round to nearest even on the bits; NaN stays NaN (quiet), inf stays inf.
uint16_t bf16_from_float(float x);
float float_from_bf16(uint16_t h);  // the 16 bits shifted into a float's top half
// x rounded to the nearest integer, ties to even, by integer arithmetic on the truncation (no
// dependence on the rounding mode). |x| must be below 2^31.
int round_half_even(float x);
// int8 codes of n floats: scale = absmax / 127 (0 when absmax is 0 or the quotient underflows
// to 0; NaN when a value is not finite), code = round_half_even(x / scale) clamped to
// [-127, 127]. Returns the scale.
float quantize_int8(const float* x, int n, int8_t* codes);
// code * scale, one float multiply each.
void dequantize_int8(const int8_t* codes, float scale, int n, float* out);

class QuantKvCache final : public KvStore {
 public:
  // residual R: 0 (every row quantized as it is written) or a power of two <= capacity.
  QuantKvCache(int n_layer, int batch, int n_head, int d_head, int capacity, KvQuant format, int residual);
  QuantKvCache(const QuantKvCache&) = delete;
  QuantKvCache& operator=(const QuantKvCache&) = delete;

  KvQuant format() const { return format_; }
  int residual() const { return residual_; }
  int capacity() const { return capacity_; }
  // The variation asked for the scale group and the flush (the cached path's; the model's for
  // full recompute's scratch cache).
  void set_variation(const Variation* var) { var_ = var; }

  // The first slot a query at position p reads in float: slots below it are read quantized.
  // R = 0: p + 1 (everything, the query's own row too); else R * floor(p / R).
  int read_boundary(int p) const;
  // The last position whose query reads the same view as position p (a block kernel's run).
  int view_last(int p) const;

  int cursor(int seq) const override;
  int flushed(int seq) const;  // slots below it are stored quantized
  void check_room(int seq, int n) const;
  // cursor += n; then the variation's flush decides how many rows are stored quantized.
  void advance(int seq, int n);

  // KvStore: writes land in float working rows of the current layer; reads are views of the
  // current layer's working rows (begin_layer), slots below a query's boundary dequantized.
  float* k_write(int layer, int seq, int slot) override;
  float* v_write(int layer, int seq, int slot) override;
  kernels::KvView k_view(int layer, int seq) const override;
  kernels::KvView v_view(int layer, int seq) const override;
  kernels::KvView k_view_at(int layer, int seq, int pos) const override;
  kernels::KvView v_view_at(int layer, int seq, int pos) const override;
  int view_last_at(int pos) const override { return view_last(pos); }
  // Before attention at `layer`: each sequence's working rows from storage (codes dequantized,
  // residual rows copied) and the call's rows below its last boundary quantized and back.
  void begin_layer(int layer, std::span<const SeqRows> rows) override;
  // After attention: the call's rows (and residual rows that the flush takes) into storage.
  void end_layer(int layer, std::span<const SeqRows> rows) override;

  // The rows the next read of `seq` sees, slots 0..cursor-1: (L, H, cursor, d_head) each.
  void rows(int seq, std::vector<float>& k, std::vector<float>& v) const;

  void reset();
  void reset(int seq);
  // The first slot a cut of `seq` to p tokens must compute again: residual mode, p inside a
  // group already flushed, whose first p mod R rows must be read in float and are stored
  // quantized: the group's first slot. Otherwise p (nothing to compute).
  int recompute_from(int seq, int p) const;
  // Throws Error if the cut leaves a slot that must be read in float stored quantized
  // (recompute_from(seq, p) < p): its float value is gone.
  void truncate(int seq, int p);
  void fork(int src, int dst, int prefix_len);
  // `value` into every stored slot at or past the cursor (int8: its scales; bf16: its codes) and
  // every working row, so a read of a slot nobody wrote poisons the logits.
  void poison_unused(int seq, float value);

  size_t storage_bytes() const;  // codes, scales and residual rows: the cache proper
  size_t working_bytes() const;  // the per-layer float working rows (one layer, every sequence)

 private:
  struct Side {  // K or V
    std::vector<int8_t> codes8;    // int8: (L, B, capacity, D)
    std::vector<uint16_t> codes16;  // bf16: (L, B, capacity, D)
    std::vector<float> scales;     // int8: (L, B, capacity, H)
    std::vector<float> resid;      // (L, B, R, D): slot j at j mod R
    std::vector<float> work;       // (B, region_rows(), D): float rows, then dequantized rows
  };
  size_t slot_index(int layer, int seq, int slot) const;
  // Working rows per sequence: with a residual, a float half and a dequantized half of half_
  // rows each; without, one half (rows are written float and read back dequantized in place);
  // and one guard row for a write past the capacity.
  int region_rows() const { return residual_ == 0 ? half_ + 1 : 2 * half_ + 1; }
  float* work_row(const Side& s, int seq, int slot, bool dequantized) const;
  float* resid_row(const Side& s, int layer, int seq, int slot) const;  // R > 0 only
  kernels::KvView view(const Side& s, int seq, int pos) const;
  void store_row(Side& s, int layer, int seq, int slot, const float* x);
  void load_row(const Side& s, int layer, int seq, int slot, float* out) const;
  void round_trip(const float* x, float* out);  // x quantized and dequantized (the group's)
  void check_seq(int seq) const;

  int n_layer_ = 0, batch_ = 0, n_head_ = 0, d_head_ = 0, capacity_ = 0;
  KvQuant format_ = KvQuant::Int8;
  int residual_ = 0, shift_ = 0;
  int half_ = 0;  // rows of each working part: capacity rounded up to whole groups of R
  Side k_, v_;
  std::vector<int> tables_;  // (blocks + 1, blocks): view k's table dequantizes blocks < k
  std::vector<int> cursor_, flushed_;
  std::vector<int8_t> tmp_codes_;  // (D) round_trip's codes
  const Variation* var_ = &model_variation();
};

}  // namespace miniinfer
