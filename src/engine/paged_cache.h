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
#include <deque>
#include <limits>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/kv_store.h"
#include "engine/variation.h"

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
  int logical = 0;          // slot / block_size
  int physical = -1;        // the pool block; -1 if the sequence holds no block there (preempted)
  int offset = 0;           // slot % block_size
  int refs = 0;             // tables holding the physical block
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

// A call's writes into one sequence: slots [first, last] (PagedKvCache::reserve makes their
// blocks present and writable first).
struct SlotWrites {
  int seq = 0, first = 0, last = -1;
};

class PagedKvCache final : public KvStore {
 public:
  // Throws Error "paged cache: ..." if the block size is not a power of two dividing the
  // capacity, or the pool cannot hold one full sequence.
  PagedKvCache(int n_layer, int batch, int n_head, int d_head, int capacity, PagedOptions options);
  PagedKvCache(const PagedKvCache&) = delete;
  PagedKvCache& operator=(const PagedKvCache&) = delete;

  int n_layer() const { return n_layer_; }
  int batch() const { return batch_; }
  int d_model() const { return n_head_ * d_head_; }
  int capacity() const { return capacity_; }
  int block_size() const { return block_size_; }
  int pool_blocks() const { return pool_blocks_; }
  const PagedOptions& options() const { return options_; }
  // The variation points (variation.h) the pool asks: the model's, or a paged fault's.
  void set_variation(const Variation* var) { var_ = var; }

  // KvStore. A write at or past the capacity, or through a table entry the sequence does not
  // hold (only a fault asks for one), lands in a spill row that nothing reads.
  int cursor(int seq) const override;
  float* k_write(int layer, int seq, int slot) override { return write_row(k_pool_, layer, seq, slot); }
  float* v_write(int layer, int seq, int slot) override { return write_row(v_pool_, layer, seq, slot); }
  kernels::KvView k_view(int layer, int seq) const override { return view(k_pool_, layer, seq); }
  kernels::KvView v_view(int layer, int seq) const override { return view(v_pool_, layer, seq); }

  // Sequence state. A preempted sequence keeps its cursor and token ids but holds no block.
  void check_room(int seq, int n) const;       // as KvCache::check_room
  std::span<const int> tokens(int seq) const;  // the ids of slots [0, cursor)
  bool preempted(int seq) const;
  // Makes the blocks of every write present (allocating them) and writable (copying a shared or
  // registered block first), evicting cached blocks and preempting sequences not in `keep` as
  // needed. Throws Error, having changed nothing, if even that cannot make room.
  void reserve(std::span<const SlotWrites> writes, std::span<const int> keep);
  // True when reserve(writes, ...) would change nothing: every block the writes touch is
  // present and neither shared nor registered (a decode inside its own last block). Allocates
  // nothing: the engine's fast path for most calls.
  bool ready(std::span<const SlotWrites> writes) const;
  // Throws Error naming the pool unless reserve(writes, keep) can succeed once every preempted
  // sequence in `keep` is recomputed; changes nothing.
  void check_fits(std::span<const SlotWrites> writes, std::span<const int> keep) const;
  // After a call wrote tokens at slots [cursor, cursor + n): cursor += n, the ids recorded, and
  // every block that became full registered in the prefix cache.
  void advance(int seq, std::span<const int> tokens);
  // A preempted sequence's recompute starts: it forgets its cursor (its ids stay readable
  // through the returned copy) and becomes an empty live sequence.
  std::vector<int> take_for_recompute(int seq);
  // Maps the longest chain of full blocks of `tokens` (at most max_tokens of them) the prefix
  // cache holds into the empty sequence `seq`; returns the tokens mapped (the new cursor).
  int map_prefix(int seq, std::span<const int> tokens, int max_tokens);

  void reset();         // a fresh pool: every sequence empty, nothing cached, stats zero
  void reset(int seq);  // seq gives up its blocks (full ones stay cached) and is empty
  void truncate(int seq, int p);
  void fork(int src, int dst, int prefix_len);  // dst shares src's blocks over [0, prefix_len)
  // Throws Error unless fork(src, dst, prefix_len) is a valid fork (a preempted src aside).
  void check_fork(int src, int dst, int prefix_len) const;
  void note_use(int seq);                       // for the choice of whom to preempt: the least recently used
  void count_hit(int tokens);                   // a submit that reused `tokens` tokens

  // Introspection.
  BlockSlot locate(int seq, int slot) const;
  PagedStats stats() const;
  std::span<const int> table(int seq) const;  // the physical blocks seq holds, logical order
  int refs(int block) const;
  bool registered(int block) const;
  // "" if the bookkeeping is consistent, else the first inconsistency found, in one line.
  std::string check() const;
  // `value` into every slot no sequence holds below its cursor, except in blocks the prefix
  // cache keeps (a later hit reads them).
  void poison_unused(float value = std::numeric_limits<float>::quiet_NaN());

 private:
  struct Block {
    int refs = 0;
    bool registered = false;  // in registry_ under hash
    bool cached = false;      // refs 0 and in lru_
    uint64_t hash = 0, parent = 0;
    std::vector<int> key;  // the token ids the hash covers
  };

  void check_seq(int seq) const;
  size_t row_offset(int layer, int block, int offset) const {
    return ((static_cast<size_t>(layer) * pool_blocks_ + block) * block_size_ + offset) * d_model();
  }
  float* write_row(std::vector<float>& pool, int layer, int seq, int slot);
  kernels::KvView view(const std::vector<float>& pool, int layer, int seq) const;
  int held(int seq) const { return static_cast<int>(held_[static_cast<size_t>(seq)]); }
  int entries_for(int slots) const { return (slots + block_size_ - 1) / block_size_; }
  uint64_t block_hash(uint64_t parent, std::span<const int> key) const;
  std::span<const int> key_of(std::span<const int> block_tokens) const;
  // Blocks a reserve needs now (new and copied), given the holders it counts.
  int blocks_needed(std::span<const SlotWrites> writes, const std::vector<int>& refs) const;
  int allocate();                         // a free block, else the least recently released cached one
  void release(int block);                // refs--, and to the free list or the cache at 0
  void release_from(int seq, int entry);  // the seq's entries [entry, held)
  void preempt(int seq);
  void copy_block(int to, int from);
  void register_block(int block, uint64_t parent, std::span<const int> block_tokens);
  void unregister(int block);

  int n_layer_ = 0, batch_ = 0, n_head_ = 0, d_head_ = 0, capacity_ = 0;
  int block_size_ = 0, shift_ = 0, pool_blocks_ = 0, entries_ = 0;  // entries_: capacity / block_size
  PagedOptions options_;
  const Variation* var_ = &model_variation();
  std::vector<float> k_pool_, v_pool_;          // (L, P, block_size, D) each
  std::vector<float> spill_;                    // (D): writes that land nowhere
  std::vector<Block> blocks_;                   // (P)
  std::vector<int> initial_free_;               // the free list's order after reset
  std::deque<int> free_;                        // refs 0, unregistered: allocated first, front first
  std::vector<int> lru_;                        // refs 0, registered: evicted front first
  std::unordered_map<uint64_t, int> registry_;  // hash -> block
  std::vector<std::vector<int>> table_;         // (B, entries_): physical blocks; entries past held_ are 0
  std::vector<size_t> held_;                    // (B) entries a sequence holds
  std::vector<int> cursor_;                     // (B)
  std::vector<std::vector<int>> tokens_;        // (B, capacity) token ids; past the cursor, stale or 0
  std::vector<char> preempted_;                 // (B)
  std::vector<int64_t> last_use_;               // (B)
  int64_t clock_ = 0;
  PagedStats stats_;
};

}  // namespace miniinfer
