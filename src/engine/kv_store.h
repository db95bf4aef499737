// What the forward pass needs of a KV cache, whichever its layout: each sequence's cursor, where
// a slot's K and V are written, and the rows attention reads (a kernels::KvView). KvCache (one
// slab per layer and sequence) and PagedKvCache (blocks of a pool, through block tables) both
// provide it, so Engine::run is one routine for both.
#pragma once
#include "engine/kernels.h"

namespace miniinfer {

// Throws Error "sequence 2: position 512 exceeds the cache capacity 512 (slots 0..511)" unless
// positions first .. first + n - 1 of `seq` fit a capacity of `capacity` slots.
void check_positions(int seq, int first, int n, int capacity);

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

 protected:
  ~KvStore() = default;  // never deleted through the interface
};

}  // namespace miniinfer
