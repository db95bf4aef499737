// The sliding window with attention sinks (docs/sliding-window.md). A query at position p reads
// the first S positions (the sinks) and the last W - S positions up to p, in increasing position
// order, whichever path computes it: full recompute reads them from its scratch rows (slot =
// position), the cached path from S sink slots and a ring of recent ones. Both build the list
// of positions with window_position, so they sum the same terms in the same order.
#pragma once
#include <algorithm>

namespace miniinfer {

struct WindowSpec {
  int window = 0;  // W: positions a query reads at most, itself included; 0 = no window
  int sinks = 0;   // S: the first positions, read by every query (0 <= S < W)
  int ring = 0;    // slots of the ring after the sinks; 0: slot = position (full recompute's rows)
  bool on() const { return window > 0; }
};

// How many positions a query reads when the causal mask would give it `end` (positions 0..end-1).
inline int window_reads(int end, int window) { return std::min(end, window); }

// The j-th of the n positions a query with causal end `end` reads: the sinks, then the newest.
inline int window_position(int j, int end, int n, int sinks) { return j < sinks ? j : end - n + j; }

// The slot holding position `pos` in a cache of S sink slots and a ring of `ring` slots.
inline int window_slot(int pos, const WindowSpec& w) {
  return w.ring == 0 || pos < w.sinks ? pos : w.sinks + (pos - w.sinks) % w.ring;
}

// The lowest ring position a query at `pos` reads (pos + 1 when it reads none: pos < S).
inline int window_low(int pos, const WindowSpec& w) {
  return pos < w.sinks ? pos + 1 : std::max(w.sinks, pos - (w.window - w.sinks) + 1);
}

}  // namespace miniinfer
