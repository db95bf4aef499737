// The paged KV cache (PagedAttention's layout), beside the contiguous KvCache: K and V live in
// fixed-size blocks of one shared pool, and each sequence has a block table mapping its logical
// blocks (slot / block_size) to physical ones. On top of the pool:
//   - a prefix cache: every full block is registered under a hash chain over its token ids and
//     its parent block's hash, so a new request whose prompt starts with full blocks some
//     earlier sequence computed maps those blocks instead of computing them (Engine::submit);
//   - fork shares blocks (reference counts), and the first write into a shared or registered
//     block copies it first (copy-on-write): a registered block is never written in place;
//   - eviction: blocks no table holds stay registered (a later prompt may hit them) until the
//     pool needs them, least recently released first;
//   - preemption: when even eviction cannot make room for a call, a sequence the call does not
//     touch gives up its blocks and keeps only its tokens; it is recomputed, through the same
//     cached path, the next time it is used.
// Invariance: attention reads the rows through a block table (kernels::KvView), and every
// kernel computes each output element in the same order whatever the block size and wherever
// the rows lie, so the paged cache's bytes are the contiguous cache's and full recompute's
// (docs/paged-cache.md).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace miniinfer {

struct PagedOptions {
  int block_size = 16;          // slots per block: a power of two dividing the capacity
  int pool_blocks = 0;          // blocks in the pool; 0: batch * capacity / block_size
  uint64_t placement_seed = 0;  // 0: the free list in block order; else shuffled with Rng(seed)
  bool prefix_caching = true;   // register full blocks and reuse them in submit()
};

// Where a sequence's slot lives: for reports ("slot 17: block 1 of the table, physical 5,
// offset 1, shared by 2").
struct BlockSlot {
  int logical = 0;   // slot / block_size
  int physical = -1; // the pool block; -1 if the sequence holds no block there (preempted)
  int offset = 0;    // slot % block_size
  int refs = 0;      // tables holding the physical block
  bool registered = false;  // in the prefix cache
};

// What the pool has done since the engine was made or reset.
struct PagedStats {
  int64_t hit_tokens = 0;   // tokens submit() reused from the prefix cache
  int64_t hits = 0;         // submit() calls that reused at least one block
  int64_t evictions = 0;    // registered blocks evicted for reuse
  int64_t preemptions = 0;  // sequences that gave up their blocks
  int64_t recomputes = 0;   // preempted sequences recomputed on their next use
  int64_t copies = 0;       // copy-on-write copies
  int blocks_in_use = 0;    // blocks some table holds, now
  int blocks_cached = 0;    // blocks no table holds but the prefix cache keeps, now
  int blocks_free = 0;      // the rest
};

}  // namespace miniinfer
