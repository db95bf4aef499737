// The KV cache: preallocated K and V storage for every (layer, sequence, slot), a cursor per
// sequence, and sentinel guard regions (ggml style) around both buffers so a test can prove
// no write ever lands outside them. Forward writes K and V straight into their slots.
#pragma once
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "engine/kv_store.h"
#include "engine/window.h"

namespace miniinfer {

class KvCache final : public KvStore {
 public:
  // Guard floats on each side of K and of V; at least one row (d_model floats) wide, so even a
  // write one slot past the last sequence's capacity lands in a guard, not in V or the heap.
  static constexpr float kGuardValue = -1.2345678e37f;

  KvCache() = default;
  KvCache(int n_layer, int batch, int n_head, int d_head, int capacity);
  // k_ and v_ point into storage_: a copy would point into the original. Moving is safe (the
  // vector hands its buffer over, and the pointers with it); copying is not offered.
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&&) noexcept = default;

  int n_layer() const { return n_layer_; }
  int batch() const { return batch_; }
  int n_head() const { return n_head_; }
  int d_head() const { return d_head_; }
  int d_model() const { return n_head_ * d_head_; }
  int capacity() const { return capacity_; }  // slots per sequence
  // A sliding window (window.h): the slab becomes S sink slots and a ring of w.ring slots
  // (capacity() must be S + ring), and a sequence may run to `positions` positions. Set once,
  // on an empty cache.
  void set_window(const WindowSpec& w, int positions);
  const WindowSpec& window() const { return window_; }
  int positions() const { return positions_; }  // a sequence's positions at most
  // Whether `seq` still holds position `pos`: below its cursor and, with a window, a sink or
  // one of the ring's positions not yet overwritten (nor lost to a truncation).
  bool holds(int seq, int pos) const;

  // Tokens held by sequence `seq`: slots [0, cursor) are valid, the next token goes to `cursor`.
  int cursor(int seq) const override;
  // Throws Error "sequence 2: position 512 exceeds the cache capacity 512 (slots 0..511)" if
  // `n` more tokens do not fit.
  void check_room(int seq, int n) const;
  void advance(int seq, int n);  // cursor += n, after check_room

  // (layer, seq) slab: (capacity, n_head * d_head) floats, slot-major; head h of slot s is at
  // s * d_model + h * d_head. Rows at or past the cursor hold whatever was last written.
  float* k_slab(int layer, int seq) { return k_ + offset(layer, seq); }
  float* v_slab(int layer, int seq) { return v_ + offset(layer, seq); }
  const float* k_slab(int layer, int seq) const { return k_ + offset(layer, seq); }
  const float* v_slab(int layer, int seq) const { return v_ + offset(layer, seq); }
  // KvStore: slot s of the slab (a slot past the capacity lands in the guard, where
  // guards_intact sees it), and the slab as a view.
  float* k_write(int layer, int seq, int slot) override {
    return k_slab(layer, seq) + static_cast<size_t>(slot) * d_model();
  }
  float* v_write(int layer, int seq, int slot) override {
    return v_slab(layer, seq) + static_cast<size_t>(slot) * d_model();
  }
  kernels::KvView k_view(int layer, int seq) const override {
    return kernels::contiguous_view(k_slab(layer, seq), static_cast<size_t>(d_model()));
  }
  kernels::KvView v_view(int layer, int seq) const override {
    return kernels::contiguous_view(v_slab(layer, seq), static_cast<size_t>(d_model()));
  }
  // One (layer, seq, head, slot) row of d_head floats. Throws Error unless layer, head and
  // seq are in range and the slot is below the sequence's cursor.
  std::span<const float> k_row(int layer, int seq, int head, int slot) const;
  std::span<const float> v_row(int layer, int seq, int head, int slot) const;

  void reset();          // every cursor to 0
  void reset(int seq);   // cursor of `seq` to 0
  // Keep the first p tokens of `seq` (0 <= p <= cursor); later slots are simply overwritten.
  // With a window, throws Error naming the lost position if the ring no longer holds one that
  // the next query (at p) reads.
  void truncate(int seq, int p);
  // dst becomes a copy of src's first prefix_len tokens (every layer), cursor = prefix_len.
  // With a window the whole slab is copied (the ring's slots are not in position order), under
  // truncate's condition.
  void fork(int src, int dst, int prefix_len);

  // True while every guard float still holds kGuardValue.
  bool guards_intact() const;
  // Test aid: `value` (NaN by default) into every slot at or past the cursor of `seq`, so a
  // read past the cursor would poison the logits, and a reset cache holds nothing of its past.
  void poison_unused(int seq, float value = std::numeric_limits<float>::quiet_NaN());

 private:
  size_t offset(int layer, int seq) const {
    return (static_cast<size_t>(layer) * batch_ + seq) * static_cast<size_t>(capacity_) * d_model();
  }
  void check_seq(int seq) const;
  void check_row(int layer, int seq, int head, int slot) const;
  void check_window_reach(int seq, int p, const char* what) const;
  bool holds_slot(int seq, int slot) const;

  int n_layer_ = 0, batch_ = 0, n_head_ = 0, d_head_ = 0, capacity_ = 0;
  size_t guard_ = 0;             // floats in each guard region
  size_t size_ = 0;              // floats in K (and in V): L * B * capacity * d_model
  std::vector<float> storage_;   // guard | K: (L, B, capacity, H, d_head) | guard | V: same | guard
  float* k_ = nullptr;           // storage_.data() + guard_
  float* v_ = nullptr;           // k_ + size_ + guard_
  std::vector<int> cursor_;      // (B)
  WindowSpec window_;            // off unless set_window
  int positions_ = 0;            // cursor limit: capacity_ without a window
  std::vector<int> floor_;       // (B) with a window: ring positions below it are gone
};

}  // namespace miniinfer
