// KvCache: storage, cursors and the bookkeeping operations (truncate, reset, fork).
#include "engine/kv_cache.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "base/error.h"

namespace miniinfer {

KvCache::KvCache(int n_layer, int batch, int n_head, int d_head, int capacity)
    : n_layer_(n_layer), batch_(batch), n_head_(n_head), d_head_(d_head), capacity_(capacity) {
  if (batch <= 0) fail("kv cache: batch size must be positive, got {}", batch);
  if (capacity <= 0) fail("kv cache: capacity must be positive, got {}", capacity);
  guard_ = std::max<size_t>(256, static_cast<size_t>(d_model()));
  size_ = static_cast<size_t>(n_layer) * batch * capacity * d_model();
  storage_.assign(2 * size_ + 3 * guard_, 0.0f);
  k_ = storage_.data() + guard_;
  v_ = k_ + size_ + guard_;
  std::fill_n(storage_.data(), guard_, kGuardValue);
  std::fill_n(k_ + size_, guard_, kGuardValue);
  std::fill_n(v_ + size_, guard_, kGuardValue);
  cursor_.assign(static_cast<size_t>(batch), 0);
  floor_.assign(static_cast<size_t>(batch), 0);
  positions_ = capacity;
}

void KvCache::set_window(const WindowSpec& w, int positions) {
  if (w.sinks + w.ring != capacity_)
    fail("kv cache: a window of {} sink and {} ring slots needs capacity {}, not {}", w.sinks, w.ring,
         w.sinks + w.ring, capacity_);
  window_ = w;
  positions_ = positions;
}

bool KvCache::holds(int seq, int pos) const {
  if (pos < 0 || pos >= cursor(seq)) return false;
  return !window_.on() || pos < window_.sinks || pos >= floor_[static_cast<size_t>(seq)];
}

void KvCache::check_seq(int seq) const {
  if (seq < 0 || seq >= batch_) fail("sequence {} out of range (batch size {})", seq, batch_);
}

void KvCache::check_row(int layer, int seq, int head, int slot) const {
  if (layer < 0 || layer >= n_layer_) fail("kv cache: layer {} out of range (0..{})", layer, n_layer_ - 1);
  if (head < 0 || head >= n_head_) fail("kv cache: head {} out of range (0..{})", head, n_head_ - 1);
  if (slot < 0 || slot >= std::min(cursor(seq), capacity_))
    fail("kv cache: sequence {} holds {} tokens, slot {} is not one of them", seq, cursor(seq), slot);
}

int KvCache::cursor(int seq) const {
  check_seq(seq);
  return cursor_[static_cast<size_t>(seq)];
}

void check_positions(int seq, int first, int n, int capacity) {
  const int last = first + n - 1;
  if (last >= capacity)
    fail("sequence {}: position {} exceeds the cache capacity {} (slots 0..{})", seq, last, capacity, capacity - 1);
}

void KvCache::check_room(int seq, int n) const { check_positions(seq, cursor(seq), n, positions_); }

// With a window, the ring keeps the last `ring` positions: older ones are overwritten.
void KvCache::advance(int seq, int n) {
  check_room(seq, n);
  const size_t s = static_cast<size_t>(seq);
  cursor_[s] += n;
  if (window_.on()) floor_[s] = std::max(floor_[s], cursor_[s] - window_.ring);
}

std::span<const float> KvCache::k_row(int layer, int seq, int head, int slot) const {
  check_row(layer, seq, head, slot);
  return {k_slab(layer, seq) + static_cast<size_t>(slot) * d_model() + static_cast<size_t>(head) * d_head_,
          static_cast<size_t>(d_head_)};
}

std::span<const float> KvCache::v_row(int layer, int seq, int head, int slot) const {
  check_row(layer, seq, head, slot);
  return {v_slab(layer, seq) + static_cast<size_t>(slot) * d_model() + static_cast<size_t>(head) * d_head_,
          static_cast<size_t>(d_head_)};
}

void KvCache::reset() {
  std::fill(cursor_.begin(), cursor_.end(), 0);
  std::fill(floor_.begin(), floor_.end(), 0);
}

void KvCache::reset(int seq) {
  check_seq(seq);
  cursor_[static_cast<size_t>(seq)] = 0;
  floor_[static_cast<size_t>(seq)] = 0;
}

// The next query, at position p, reads ring positions window_low(p)..p-1: they must still be
// there. A rollback of k rows needs k <= spare + 1 (docs/sliding-window.md).
void KvCache::check_window_reach(int seq, int p, const char* what) const {
  if (!window_.on()) return;
  const int low = window_low(p, window_), floor = floor_[static_cast<size_t>(seq)];
  if (low < p && low < floor)
    fail("sequence {}: cannot {} to {} tokens: position {} (read by the next query) was overwritten in the "
         "window's ring of {} slots, which holds positions {}..{}",
         seq, what, p, low, window_.ring, std::max(floor, window_.sinks), cursor(seq) - 1);
}

void KvCache::truncate(int seq, int p) {
  if (p < 0 || p > cursor(seq))
    fail("sequence {}: cannot truncate to {} tokens, it holds {}", seq, p, cursor(seq));
  check_window_reach(seq, p, "truncate");
  cursor_[static_cast<size_t>(seq)] = p;
}

void KvCache::fork(int src, int dst, int prefix_len) {
  check_seq(dst);
  if (src == dst) fail("fork: source and destination are both sequence {}", src);
  if (prefix_len < 0 || prefix_len > cursor(src))
    fail("fork: sequence {} holds {} tokens, cannot fork a prefix of {}", src, cursor(src), prefix_len);
  check_window_reach(src, prefix_len, "fork a prefix");
  const int slots = window_.on() ? capacity_ : prefix_len;
  const size_t n = static_cast<size_t>(slots) * d_model();
  for (int l = 0; l < n_layer_; ++l) {
    std::copy_n(k_slab(l, src), n, k_slab(l, dst));
    std::copy_n(v_slab(l, src), n, v_slab(l, dst));
  }
  cursor_[static_cast<size_t>(dst)] = prefix_len;
  floor_[static_cast<size_t>(dst)] = floor_[static_cast<size_t>(src)];
}

bool KvCache::guards_intact() const {
  const auto intact = [&](const float* p) {
    for (size_t i = 0; i < guard_; ++i)
      if (std::bit_cast<uint32_t>(p[i]) != std::bit_cast<uint32_t>(kGuardValue)) return false;
    return true;
  };
  return intact(storage_.data()) && intact(k_ + size_) && intact(v_ + size_);
}

// Whether a held position lies in `slot`: a sink below the cursor, or a ring slot of one of the
// consecutive held ring positions.
bool KvCache::holds_slot(int seq, int slot) const {
  const int cursor = this->cursor(seq);
  if (!window_.on() || slot < window_.sinks) return slot < cursor;
  const int first = std::max(window_.sinks, floor_[static_cast<size_t>(seq)]);
  const int held = cursor - first;
  const int R = window_.ring;
  return held > 0 && ((slot - window_slot(first, window_)) % R + R) % R < held;
}

void KvCache::poison_unused(int seq, float value) {
  const size_t D = static_cast<size_t>(d_model());
  for (int slot = 0; slot < capacity_; ++slot) {
    if (holds_slot(seq, slot)) continue;
    for (int l = 0; l < n_layer_; ++l) {
      std::fill_n(k_slab(l, seq) + slot * D, D, value);
      std::fill_n(v_slab(l, seq) + slot * D, D, value);
    }
  }
}

}  // namespace miniinfer
