// What the forward pass needs of a KV cache, whichever its layout: each sequence's cursor, where
// a slot's K and V are written, and the rows attention reads (a kernels::KvView). KvCache (one
// slab per layer and sequence) and PagedKvCache (blocks of a pool, through block tables) both
// provide it, so Engine::run is one routine for both.
#pragma once
#include <span>

#include "engine/kernels.h"

namespace miniinfer {

// Throws Error "sequence 2: position 512 exceeds the cache capacity 512 (slots 0..511)" unless
// positions first .. first + n - 1 of `seq` fit a capacity of `capacity` slots.
void check_positions(int seq, int first, int n, int capacity);

// The rows a call computes for one sequence: positions pos0 .. pos0 + n - 1.
struct SeqRows {
  int seq = 0, pos0 = 0, n = 0;
};

class KvStore {
 public:
  virtual int cursor(int seq) const = 0;
  // Where K (V) of `slot` of (layer, seq) is written; the paged cache has made the slot's block
  // writable before the call (PagedKvCache::reserve).
  virtual float* k_write(int layer, int seq, int slot) = 0;
  virtual float* v_write(int layer, int seq, int slot) = 0;
  // The rows of (layer, seq), slot j at row(j), d_model floats each.
  virtual kernels::KvView k_view(int layer, int seq) const = 0;
  virtual kernels::KvView v_view(int layer, int seq) const = 0;
  // The rows a query at position `pos` reads: the same for every query in the float layouts;
  // the quantized cache (quant_cache.h) reads slots below a boundary of pos dequantized.
  virtual kernels::KvView k_view_at(int layer, int seq, int /*pos*/) const { return k_view(layer, seq); }
  virtual kernels::KvView v_view_at(int layer, int seq, int /*pos*/) const { return v_view(layer, seq); }
  // The last position whose query reads the view of position `pos` (a causal block's run).
  virtual int view_last_at(int /*pos*/) const { return 1 << 30; }
  // Around attention at `layer`, for the call's rows: the quantized cache builds its reads
  // before and stores the rows after; the float layouts read and write in place.
  virtual void begin_layer(int /*layer*/, std::span<const SeqRows> /*rows*/) {}
  virtual void end_layer(int /*layer*/, std::span<const SeqRows> /*rows*/) {}

 protected:
  ~KvStore() = default;  // never deleted through the interface
};

}  // namespace miniinfer
