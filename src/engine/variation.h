// The forward pass's variation points: the few decisions about the KV cache that a real cache
// bug gets wrong (positions, the cache write, the slots and layer read, attention's numerics,
// the products' kernel, and the cache operations between calls). The defaults ARE the model;
// a fault (faults.cpp) overrides exactly one of them. The engine asks them on the cached path
// only: full recompute always runs the defaults, so it stays the reference.
#pragma once
#include "engine/kernels.h"
#include "engine/trace.h"
#include "engine/window.h"

namespace miniinfer {

class KvCache;

// The row a variation point is asked about, and the call around it.
struct RowSite {
  Pass pass = Pass::Uncached;
  int layer = 0, seq = 0;
  int pos = 0;                      // the row's absolute position: seg_pos0 + index
  int index = 0;                    // the row's place in its segment
  int seg_pos0 = 0, seg_n = 1;      // its segment: positions seg_pos0.. seg_pos0 + seg_n - 1
  int n_segs = 1, first_pos0 = 0;   // the call: segments, and the first segment's first position
  int first_n = 1;                  // the first segment's rows
  int chunk_seq = 0, chunk_pos0 = 0, chunk_n = 0;  // the call's first multi-row segment (n = 0: none)
  int n_layer = 0, d_head = 0, max_seq_len = 0;    // the model

  RowSite row(int i) const {
    RowSite r = *this;
    r.index = i;
    r.pos = seg_pos0 + i;
    return r;
  }
};

// Where a row's K and V go: slot `slot` of its own (layer, seq); V stays out of the cache
// (computed, never stored) unless v_lands.
struct CacheWrite {
  int slot = 0;
  bool v_lands = true;
};

// What a row's attention reads: slots [0, n_slots) of (layer, seq).
struct SlotsRead {
  int n_slots = 0, layer = 0, seq = 0;
  bool operator==(const SlotsRead&) const = default;
};

// Attention's score scale and accumulator width for a segment, and the kernel mutant it runs
// (kernels.h; None: the model's kernels).
struct Numerics {
  float scale = 0.0f;
  bool fp64 = false;
  kernels::Mutant mutant = kernels::Mutant::None;
};

// Variations are static, stateless objects that nothing deletes: no virtual destructor, so
// each can be a constant (faults.cpp).
class Variation {
 public:
  // Positions: the position a row's q and k are rotated at.
  virtual int rope_position(const RowSite& r) const { return r.pos; }
  // The cache write: K and V of the row at position pos go to slot pos.
  virtual CacheWrite cache_write(const RowSite& r) const { return {r.pos, true}; }
  // Slots read, layer read: a row at position pos attends to slots 0..pos of its own layer and
  // sequence (the causal mask).
  virtual SlotsRead slots_read(const RowSite& r) const { return {r.pos + 1, r.layer, r.seq}; }
  // A segment's attention numerics (asked with its first row): float, scaled by 1/sqrt(d_head).
  virtual Numerics attention_numerics(const RowSite& r) const;
  // Whether a call's products go through a library GEMM instead of the invariant kernel.
  virtual bool library_products(bool /*all_decode*/) const { return false; }
  // Whether a call's block LayerNorms sum their mean and variance from the last index back.
  virtual bool reversed_layernorm(bool /*all_decode*/) const { return false; }
  // The row of its segment whose residual stream gives a segment's logits (asked with the
  // segment's first row): its last. The engine keeps the answer inside the call's rows.
  virtual int logits_row(const RowSite& r) const { return r.seg_n - 1; }
  // How many parts the fc_out product's k reduction is split into on `threads` threads, each
  // summed alone and then added: one, the kernel's own order, whatever the thread count.
  virtual int fc_out_k_parts(int /*threads*/) const { return 1; }
  // The sampler (generate's cached loop and the reporter's replay of it): whether a draw at
  // step s > 0 uses the coin of step s - 1 instead of its own.
  virtual bool stale_coin() const { return false; }

  // The sliding window (window.h), cached path: the slot of the sinks-and-ring cache that holds
  // `pos`, for the row's write and for every read. window_slot.
  virtual int ring_slot(int pos, const WindowSpec& w) const { return window_slot(pos, w); }
  // The one point full recompute asks (of the active fault, not of the model): the window W its
  // mask uses. It exists so that a fault can make the reference itself wrong, and shows that
  // props' comparison does not trust either side (docs/sliding-window.md). W itself.
  virtual int recompute_window(int window) const { return window; }

  // Between calls: a new request on `seq` starts on an empty cache; truncate, fork and
  // rollback as KvCache does them.
  virtual void start_request(KvCache& cache, int seq) const;
  virtual void truncate(KvCache& cache, int seq, int p) const;
  virtual void fork(KvCache& cache, int src, int dst, int prefix_len) const;
  // Speculative decoding's rollback (Engine::rollback) to `keep` tokens: this variation's own
  // truncate (a rollback built on truncate shares its bugs; a fault of the rollback alone
  // overrides this point).
  virtual void rollback(KvCache& cache, int seq, int keep) const;

  // The paged cache (paged_cache.h) asks these. How many of a full block's tokens its prefix
  // cache key covers (with its parent's hash): all of them.
  virtual int block_key_tokens(int block_size) const { return block_size; }
  // Whether the first write into a block another table holds, or the prefix cache keys, copies
  // it first.
  virtual bool copy_on_write() const { return true; }
  // Whether fork counts a reference to every block it shares, the last one included.
  virtual bool fork_counts_last_block() const { return true; }
  // The block-table entry a write into `slot` goes through: slot / block_size.
  virtual int write_entry(int slot, int block_size) const { return slot / block_size; }
  // Whether evicting a cached block takes it out of the prefix cache's registry.
  virtual bool evict_unregisters() const { return true; }
  // Whether releasing a sequence registers its partly filled last block as if it were full.
  virtual bool registers_partial_block() const { return false; }

  // The quantized cache (quant_cache.h) asks these. After a call leaves `cursor` tokens, the
  // slots below the answer are stored quantized: with a residual of R rows, whole groups of R
  // (R * floor(cursor / R)); with none, all of them.
  virtual int kv_flush(int cursor, int residual) const {
    return residual == 0 ? cursor : cursor / residual * residual;
  }
  // How many consecutive floats of a (d_model) row share one int8 scale: one head's d_head.
  virtual int kv_scale_group(int d_head, int /*d_model*/) const { return d_head; }
};

// The coin a draw uses under the stale-coin fault: the previous draw's (`previous`, which then
// takes this draw's own), the first draw (`first`) its own. generate()'s cached loop and the
// reporter's replay of it (props/scenario.cpp) both draw through this.
inline float stale_coin_draw(float own, float& previous, bool first) {
  const float used = first ? own : previous;
  previous = own;
  return used;
}

// The model as written: every variation point at its default.
const Variation& model_variation();

}  // namespace miniinfer
