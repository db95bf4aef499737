// Tracing: what forward computed, per call, layer, head and absolute position, for diffing the
// cached path against full recompute where they first diverge. The caller owns a Trace and
// hands a pointer to the Engine (or GenerateOptions); null means off and costs one pointer
// test per layer. Records align by (step, layer, head, pos, kind) across the two paths.
#pragma once
#include <algorithm>
#include <vector>

namespace miniinfer {

// How a forward call reached the cache: full recompute, a chunk on an empty cache, one token
// on a non-empty cache, a longer chunk on a non-empty cache, or speculative decoding's verify
// call (Engine::verify: the last accepted token and the drafts, every row's logits).
enum class Pass { Uncached, Prefill, Decode, Resume, Verify };
const char* to_string(Pass pass);

enum class TraceKind {
  Q,         // query row after RoPE: (d_head)
  K,         // key row after RoPE, as written: (d_head)
  V,         // value row, as written: (d_head)
  Probs,     // attention probabilities over the slots the row attended: (n_slots)
  AttnOut,   // this head's attention output, before o_proj: (d_head)
  BlockOut,  // the residual stream after the block: (d_model); head = -1
  KRead,     // a key row as attention read it from the cache (pos = slot): (d_head)
  VRead,     // a value row as attention read it from the cache (pos = slot): (d_head)
  Ln1,       // the first LayerNorm's output, attention's input: (d_model); head = -1
  Ln2,       // the second LayerNorm's output, the MLP's input: (d_model); head = -1
  Mlp,       // the MLP's output before the residual add: (d_model); head = -1
  FinalLn,   // the final LayerNorm's output a logits row is computed from: (d_model); head = -1,
             // layer = n_layer - 1, pos = the segment's last position; from_seq/from_pos/from_row
             // name the row of the call it was taken from
};
const char* to_string(TraceKind kind);

struct TraceRecord {
  int step = -1;  // Trace::step when recorded (generate sets it to the generation step)
  int call = 0;   // forward calls since the trace was attached, from 0
  Pass pass = Pass::Uncached;
  int seq = 0;    // sequence index in the batch (the uncached path reports the caller's seq)
  int layer = 0;
  int head = -1;
  int pos = 0;    // absolute position of the row in its sequence (the slot for KRead/VRead)
  TraceKind kind = TraceKind::Q;
  std::vector<float> data;
  // FinalLn: the row of the call the logits were computed from (its sequence and position);
  // KRead/VRead: the sequence whose rows attention read (from_pos unused).
  int from_seq = -1, from_pos = -1, from_row = -1;
};

struct Trace {
  std::vector<int> positions;  // absolute positions (and slots) to record; empty = all
  bool cache_reads = true;     // also record KRead/VRead rows
  int step = -1;               // stamped on records; set by the caller (generate: the step)
  int seq = 0;                 // stamped on uncached records (generate: the sequence index)
  int calls = 0;               // forward calls recorded so far
  std::vector<TraceRecord> records;

  bool wants(int pos) const {
    return positions.empty() || std::find(positions.begin(), positions.end(), pos) != positions.end();
  }
};

}  // namespace miniinfer
