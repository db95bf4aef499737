// PagedKvCache: the pool, the block tables, reference counts, the free list and the prefix
// cache's registry; copy-on-write, eviction and preemption (paged_cache.h, docs/paged-cache.md).
#include "engine/paged_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "base/error.h"
#include "base/rng.h"

namespace miniinfer {

PagedKvCache::PagedKvCache(int n_layer, int batch, int n_head, int d_head, int capacity, PagedOptions options)
    : n_layer_(n_layer),
      batch_(batch),
      n_head_(n_head),
      d_head_(d_head),
      capacity_(capacity),
      options_(options) {
  const int bs = options.block_size;
  if (batch <= 0) fail("paged cache: batch size must be positive, got {}", batch);
  if (bs <= 0 || (bs & (bs - 1)) != 0) fail("paged cache: block size {} is not a power of two", bs);
  if (capacity <= 0 || capacity % bs != 0)
    fail("paged cache: block size {} does not divide the capacity {}", bs, capacity);
  block_size_ = bs;
  shift_ = std::countr_zero(static_cast<unsigned>(bs));
  entries_ = capacity / bs;
  pool_blocks_ = options.pool_blocks == 0 ? batch * entries_ : options.pool_blocks;
  if (pool_blocks_ < entries_)
    fail(
        "paged cache: a pool of {} blocks of {} slots cannot hold one full sequence of {} slots (it needs "
        "{})",
        pool_blocks_, bs, capacity, entries_);
  const size_t floats = static_cast<size_t>(n_layer) * pool_blocks_ * bs * d_model();
  k_pool_.assign(floats, 0.0f);
  v_pool_.assign(floats, 0.0f);
  spill_.assign(static_cast<size_t>(d_model()), 0.0f);
  // Physical placement: block order, or a seeded shuffle (Fisher-Yates with our own Rng), so a
  // test can prove placement changes no byte.
  initial_free_.resize(static_cast<size_t>(pool_blocks_));
  std::iota(initial_free_.begin(), initial_free_.end(), 0);
  if (options.placement_seed != 0) {
    Rng rng(options.placement_seed);
    for (size_t i = initial_free_.size() - 1; i > 0; --i)
      std::swap(initial_free_[i], initial_free_[rng.below(static_cast<uint32_t>(i + 1))]);
  }
  reset();
}

void PagedKvCache::reset() {
  blocks_.assign(static_cast<size_t>(pool_blocks_), Block{});
  free_.assign(initial_free_.begin(), initial_free_.end());
  lru_.clear();
  registry_.clear();
  const size_t B = static_cast<size_t>(batch_);
  table_.assign(B, std::vector<int>(static_cast<size_t>(entries_), 0));
  held_.assign(B, 0);
  cursor_.assign(B, 0);
  tokens_.assign(B, std::vector<int>(static_cast<size_t>(capacity_), 0));
  preempted_.assign(B, 0);
  last_use_.assign(B, 0);
  clock_ = 0;
  stats_ = PagedStats{};
}

void PagedKvCache::check_seq(int seq) const {
  if (seq < 0 || seq >= batch_) fail("sequence {} out of range (batch size {})", seq, batch_);
}

int PagedKvCache::cursor(int seq) const {
  check_seq(seq);
  return cursor_[static_cast<size_t>(seq)];
}

void PagedKvCache::check_room(int seq, int n) const { check_positions(seq, cursor(seq), n, capacity_); }

std::span<const int> PagedKvCache::tokens(int seq) const {
  check_seq(seq);
  return {tokens_[static_cast<size_t>(seq)].data(), static_cast<size_t>(cursor_[static_cast<size_t>(seq)])};
}

bool PagedKvCache::preempted(int seq) const {
  check_seq(seq);
  return preempted_[static_cast<size_t>(seq)] != 0;
}

float* PagedKvCache::write_row(std::vector<float>& pool, int layer, int seq, int slot) {
  if (slot < 0 || slot >= capacity_) return spill_.data();
  const int e = var_->write_entry(slot, block_size_);
  if (e < 0 || e >= held(seq)) return spill_.data();
  return pool.data() + row_offset(layer, table_[static_cast<size_t>(seq)][static_cast<size_t>(e)],
                                  slot & (block_size_ - 1));
}

kernels::KvView PagedKvCache::view(const std::vector<float>& pool, int layer, int seq) const {
  return kernels::KvView{pool.data() + row_offset(layer, 0, 0), table_[static_cast<size_t>(seq)].data(),
                         shift_, static_cast<size_t>(d_model())};
}

// ---- the prefix cache's keys --------------------------------------------------------------

uint64_t PagedKvCache::block_hash(uint64_t parent, std::span<const int> key) const {
  uint64_t h = mix64(parent ^ 0x70726566697863ULL);  // "prefixc"
  for (int t : key) h = mix64(h ^ (0x100000000ULL | static_cast<uint32_t>(t)));
  return mix64(h + key.size());
}

std::span<const int> PagedKvCache::key_of(std::span<const int> block_tokens) const {
  const int n = std::clamp(var_->block_key_tokens(block_size_), 0, block_size_);
  return block_tokens.first(static_cast<size_t>(n));
}

void PagedKvCache::register_block(int b, uint64_t parent, std::span<const int> block_tokens) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (blk.registered) return;
  const auto key = key_of(block_tokens);
  const uint64_t h = block_hash(parent, key);
  // One block per key: a second sequence that computed the same prefix keeps its own copy
  // unregistered (and a hash collision with another key is never registered over it).
  if (registry_.count(h)) return;
  blk.registered = true;
  blk.hash = h;
  blk.parent = parent;
  blk.key.assign(key.begin(), key.end());
  registry_[h] = b;
}

void PagedKvCache::unregister(int b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  const auto it = registry_.find(blk.hash);
  if (it != registry_.end() && it->second == b) registry_.erase(it);
  blk.registered = false;
  blk.key.clear();
}

// ---- blocks ---------------------------------------------------------------------------------

int PagedKvCache::allocate() {
  int b;
  if (!free_.empty()) {
    b = free_.front();
    free_.pop_front();
  } else {
    if (lru_.empty()) fail("paged cache: no block to allocate (a reserve miscounted)");
    b = lru_.front();
    lru_.erase(lru_.begin());
    Block& blk = blocks_[static_cast<size_t>(b)];
    blk.cached = false;
    ++stats_.evictions;
    if (var_->evict_unregisters())
      unregister(b);
    else
      blk.registered = false;  // the registry still points here (the evict-stale fault)
  }
  blocks_[static_cast<size_t>(b)].refs = 1;
  return b;
}

void PagedKvCache::release(int b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (blk.refs <= 0) return;  // only a fault's miscount gets here: the block is already back
  if (--blk.refs > 0) return;
  if (blk.registered) {
    blk.cached = true;
    lru_.push_back(b);
  } else {
    free_.push_back(b);
  }
}

void PagedKvCache::release_from(int seq, int entry) {
  std::vector<int>& t = table_[static_cast<size_t>(seq)];
  for (int e = held(seq) - 1; e >= entry; --e) {
    release(t[static_cast<size_t>(e)]);
    t[static_cast<size_t>(e)] = 0;
  }
  held_[static_cast<size_t>(seq)] = static_cast<size_t>(std::min(entry, held(seq)));
}

void PagedKvCache::copy_block(int to, int from) {
  const size_t n = static_cast<size_t>(block_size_) * d_model();
  for (int l = 0; l < n_layer_; ++l) {
    std::copy_n(k_pool_.data() + row_offset(l, from, 0), n, k_pool_.data() + row_offset(l, to, 0));
    std::copy_n(v_pool_.data() + row_offset(l, from, 0), n, v_pool_.data() + row_offset(l, to, 0));
  }
}

void PagedKvCache::preempt(int seq) {
  release_from(seq, 0);
  preempted_[static_cast<size_t>(seq)] = 1;
  ++stats_.preemptions;
}

// ---- reserve ----------------------------------------------------------------------------------

int PagedKvCache::blocks_needed(std::span<const SlotWrites> writes, const std::vector<int>& refs) const {
  int need = 0, solo_copy = 0;
  for (const SlotWrites& w : writes) {
    const int last = std::min(w.last, capacity_ - 1);
    if (last < 0 || w.first > last) continue;
    const int end = last / block_size_ + 1;  // entries the sequence must hold after the call
    if (preempted(w.seq)) {
      need += std::max(end, entries_for(cursor(w.seq)));  // recomputed from nothing
      continue;
    }
    const int h = held(w.seq);
    need += std::max(0, end - h);
    if (!var_->copy_on_write()) continue;
    const int e0 =
        std::max(0, std::min(var_->write_entry(std::max(w.first, 0), block_size_), w.first / block_size_));
    for (int e = e0; e < std::min(end, h); ++e) {
      const int b = table_[static_cast<size_t>(w.seq)][static_cast<size_t>(e)];
      // A copy of a block another table holds costs a block; a copy of a registered block only
      // this table holds gives the old one back to the cache at once: one block, for a moment.
      if (refs[static_cast<size_t>(b)] > 1)
        ++need;
      else if (blocks_[static_cast<size_t>(b)].registered)
        solo_copy = 1;
    }
  }
  return need + solo_copy;
}

void PagedKvCache::check_fits(std::span<const SlotWrites> writes, std::span<const int> keep) const {
  // If every sequence outside `keep` gave up its blocks: the references left, and what is free.
  std::vector<int> refs(static_cast<size_t>(pool_blocks_), 0);
  for (int seq = 0; seq < batch_; ++seq) {
    if (std::find(keep.begin(), keep.end(), seq) == keep.end()) continue;
    for (int e = 0; e < held(seq); ++e)
      ++refs[static_cast<size_t>(table_[static_cast<size_t>(seq)][static_cast<size_t>(e)])];
  }
  int kept = 0;
  for (int r : refs) kept += r > 0;
  const int need = blocks_needed(writes, refs);
  if (kept + need > pool_blocks_)
    fail("pool of {} blocks of {} slots cannot hold this call: it needs {}", pool_blocks_, block_size_,
         kept + need);
}

bool PagedKvCache::ready(std::span<const SlotWrites> writes) const {
  // The same ranges reserve walks below, asking only whether it would copy or allocate.
  for (const SlotWrites& w : writes) {
    const int last = std::min(w.last, capacity_ - 1);
    if (last < 0 || w.first > last) continue;
    const int end = last / block_size_ + 1;
    if (held(w.seq) < end) return false;
    if (!var_->copy_on_write()) continue;
    const int e0 = std::max(0, std::min(var_->write_entry(std::max(w.first, 0), block_size_), w.first / block_size_));
    for (int e = e0; e < end; ++e) {
      const Block& blk = blocks_[static_cast<size_t>(table_[static_cast<size_t>(w.seq)][static_cast<size_t>(e)])];
      if (blk.refs > 1 || blk.registered) return false;
    }
  }
  return true;
}

void PagedKvCache::reserve(std::span<const SlotWrites> writes, std::span<const int> keep) {
  check_fits(writes, keep);
  std::vector<int> refs(blocks_.size());
  const auto need_now = [&] {
    for (size_t b = 0; b < blocks_.size(); ++b) refs[b] = blocks_[b].refs;
    return blocks_needed(writes, refs);
  };
  // Preempt the least recently used sequences outside the call until the call fits.
  while (need_now() > static_cast<int>(free_.size() + lru_.size())) {
    int victim = -1;
    for (int seq = 0; seq < batch_; ++seq) {
      if (held(seq) == 0 || std::find(keep.begin(), keep.end(), seq) != keep.end()) continue;
      if (victim < 0 || last_use_[static_cast<size_t>(seq)] < last_use_[static_cast<size_t>(victim)])
        victim = seq;
    }
    if (victim < 0) fail("paged cache: no sequence left to preempt (check_fits miscounted)");
    preempt(victim);
  }
  for (const SlotWrites& w : writes) {
    const int last = std::min(w.last, capacity_ - 1);
    if (last < 0 || w.first > last) continue;
    if (preempted(w.seq)) fail("paged cache: sequence {} is preempted: recompute it before writing", w.seq);
    std::vector<int>& t = table_[static_cast<size_t>(w.seq)];
    const int end = last / block_size_ + 1;
    // Copy-on-write: a block another table holds, or that the prefix cache keys, is copied
    // before its first write, so no other holder (and no later hit) sees the write.
    if (var_->copy_on_write()) {
      const int e0 =
          std::max(0, std::min(var_->write_entry(std::max(w.first, 0), block_size_), w.first / block_size_));
      for (int e = e0; e < std::min(end, held(w.seq)); ++e) {
        const int b = t[static_cast<size_t>(e)];
        const Block& blk = blocks_[static_cast<size_t>(b)];
        if (blk.refs <= 1 && !blk.registered) continue;
        const int nb = allocate();
        copy_block(nb, b);
        t[static_cast<size_t>(e)] = nb;
        release(b);
        ++stats_.copies;
      }
    }
    while (held(w.seq) < end) {
      t[held_[static_cast<size_t>(w.seq)]] = allocate();
      ++held_[static_cast<size_t>(w.seq)];
    }
  }
}

// ---- sequences ------------------------------------------------------------------------------

void PagedKvCache::advance(int seq, std::span<const int> tokens) {
  const int n = static_cast<int>(tokens.size());
  check_room(seq, n);
  const size_t s = static_cast<size_t>(seq);
  const int c0 = cursor_[s];
  std::copy(tokens.begin(), tokens.end(), tokens_[s].begin() + c0);
  cursor_[s] = c0 + n;
  // Register the blocks this call filled, each keyed by its parent's hash and its tokens (none
  // unless the call crossed a block's end).
  if (!options_.prefix_caching || cursor_[s] / block_size_ == c0 / block_size_) return;
  const int full = std::min(cursor_[s] / block_size_, held(seq));
  uint64_t parent = 0;
  for (int e = 0; e < full; ++e) {
    const std::span<const int> block(tokens_[s].data() + static_cast<size_t>(e) * block_size_,
                                     static_cast<size_t>(block_size_));
    if (e >= c0 / block_size_) register_block(table_[s][static_cast<size_t>(e)], parent, block);
    parent = block_hash(parent, key_of(block));
  }
}

std::vector<int> PagedKvCache::take_for_recompute(int seq) {
  const auto held_tokens = tokens(seq);
  std::vector<int> out(held_tokens.begin(), held_tokens.end());
  release_from(seq, 0);
  cursor_[static_cast<size_t>(seq)] = 0;
  preempted_[static_cast<size_t>(seq)] = 0;
  ++stats_.recomputes;
  return out;
}

int PagedKvCache::map_prefix(int seq, std::span<const int> tokens, int max_tokens) {
  check_seq(seq);
  const size_t s = static_cast<size_t>(seq);
  if (!options_.prefix_caching || cursor_[s] != 0 || held(seq) != 0) return 0;
  uint64_t parent = 0;
  int e = 0;
  for (; (e + 1) * block_size_ <= std::min(max_tokens, static_cast<int>(tokens.size())); ++e) {
    const auto key =
        key_of(tokens.subspan(static_cast<size_t>(e) * block_size_, static_cast<size_t>(block_size_)));
    const uint64_t h = block_hash(parent, key);
    const auto it = registry_.find(h);
    if (it == registry_.end()) break;
    const int b = it->second;
    Block& blk = blocks_[static_cast<size_t>(b)];
    // The stored key, not only the hash: a collision is never a hit.
    if (blk.parent != parent || !std::equal(key.begin(), key.end(), blk.key.begin(), blk.key.end())) break;
    if (blk.refs == 0) {
      if (blk.cached) {
        lru_.erase(std::find(lru_.begin(), lru_.end(), b));
        blk.cached = false;
      } else {
        free_.erase(std::find(free_.begin(), free_.end(), b));  // only a stale entry points at a free block
      }
    }
    ++blk.refs;
    table_[s][static_cast<size_t>(e)] = b;
    held_[s] = static_cast<size_t>(e + 1);
    parent = h;
  }
  const int hit = e * block_size_;
  std::copy_n(tokens.begin(), hit, tokens_[s].begin());
  cursor_[s] = hit;
  preempted_[s] = 0;
  return hit;
}

void PagedKvCache::reset(int seq) {
  check_seq(seq);
  const size_t s = static_cast<size_t>(seq);
  // The partial-block-full fault: the partly filled last block is keyed as if it were full.
  const int c = cursor_[s];
  if (options_.prefix_caching && var_->registers_partial_block() && c % block_size_ != 0 &&
      held(seq) > c / block_size_) {
    uint64_t parent = 0;
    for (int e = 0; e <= c / block_size_; ++e) {
      const std::span<const int> block(tokens_[s].data() + static_cast<size_t>(e) * block_size_,
                                       static_cast<size_t>(block_size_));
      if (e == c / block_size_) register_block(table_[s][static_cast<size_t>(e)], parent, block);
      parent = block_hash(parent, key_of(block));
    }
  }
  release_from(seq, 0);
  cursor_[s] = 0;
  preempted_[s] = 0;
}

void PagedKvCache::truncate(int seq, int p) {
  if (p < 0 || p > cursor(seq))
    fail("sequence {}: cannot truncate to {} tokens, it holds {}", seq, p, cursor(seq));
  cursor_[static_cast<size_t>(seq)] = p;
  if (!preempted(seq)) release_from(seq, entries_for(p));
}

void PagedKvCache::check_fork(int src, int dst, int prefix_len) const {
  check_seq(dst);
  if (src == dst) fail("fork: source and destination are both sequence {}", src);
  if (prefix_len < 0 || prefix_len > cursor(src))
    fail("fork: sequence {} holds {} tokens, cannot fork a prefix of {}", src, cursor(src), prefix_len);
}

void PagedKvCache::fork(int src, int dst, int prefix_len) {
  check_fork(src, dst, prefix_len);
  if (preempted(src) && prefix_len > 0)
    fail("paged cache: fork from preempted sequence {}: recompute it first", src);
  reset(dst);
  const size_t s = static_cast<size_t>(src), d = static_cast<size_t>(dst);
  const int n = entries_for(prefix_len);
  for (int e = 0; e < n; ++e) {
    const int b = table_[s][static_cast<size_t>(e)];
    table_[d][static_cast<size_t>(e)] = b;
    if (e < n - 1 || var_->fork_counts_last_block()) ++blocks_[static_cast<size_t>(b)].refs;
  }
  held_[d] = static_cast<size_t>(n);
  std::copy_n(tokens_[s].begin(), prefix_len, tokens_[d].begin());
  cursor_[d] = prefix_len;
}

void PagedKvCache::note_use(int seq) {
  check_seq(seq);
  last_use_[static_cast<size_t>(seq)] = ++clock_;
}

void PagedKvCache::count_hit(int tokens) {
  if (tokens <= 0) return;
  ++stats_.hits;
  stats_.hit_tokens += tokens;
}

// ---- introspection --------------------------------------------------------------------------

BlockSlot PagedKvCache::locate(int seq, int slot) const {
  check_seq(seq);
  if (slot < 0 || slot >= capacity_) fail("paged cache: slot {} out of range (0..{})", slot, capacity_ - 1);
  BlockSlot at;
  at.logical = slot >> shift_;
  at.offset = slot & (block_size_ - 1);
  if (at.logical < held(seq)) {
    at.physical = table_[static_cast<size_t>(seq)][static_cast<size_t>(at.logical)];
    at.refs = blocks_[static_cast<size_t>(at.physical)].refs;
    at.registered = blocks_[static_cast<size_t>(at.physical)].registered;
  }
  return at;
}

PagedStats PagedKvCache::stats() const {
  PagedStats st = stats_;
  st.blocks_in_use = static_cast<int>(
      std::count_if(blocks_.begin(), blocks_.end(), [](const Block& b) { return b.refs > 0; }));
  st.blocks_cached = static_cast<int>(lru_.size());
  st.blocks_free = pool_blocks_ - st.blocks_in_use - st.blocks_cached;
  return st;
}

std::span<const int> PagedKvCache::table(int seq) const {
  check_seq(seq);
  return {table_[static_cast<size_t>(seq)].data(), held_[static_cast<size_t>(seq)]};
}

int PagedKvCache::refs(int block) const {
  if (block < 0 || block >= pool_blocks_)
    fail("paged cache: block {} out of range (0..{})", block, pool_blocks_ - 1);
  return blocks_[static_cast<size_t>(block)].refs;
}

bool PagedKvCache::registered(int block) const {
  refs(block);  // range check
  return blocks_[static_cast<size_t>(block)].registered;
}

std::string PagedKvCache::check() const {
  const size_t P = static_cast<size_t>(pool_blocks_);
  std::vector<int> holders(P, 0), in_free(P, 0), in_lru(P, 0);
  for (int seq = 0; seq < batch_; ++seq) {
    const size_t s = static_cast<size_t>(seq);
    if (preempted_[s] && held(seq) > 0)
      return fmt::format("sequence {} is preempted but holds {} blocks", seq, held(seq));
    if (!preempted_[s] && held(seq) < entries_for(cursor_[s]))
      return fmt::format("sequence {} holds {} tokens in {} blocks of {} slots", seq, cursor_[s], held(seq),
                         block_size_);
    for (int e = 0; e < held(seq); ++e) ++holders[static_cast<size_t>(table_[s][static_cast<size_t>(e)])];
  }
  for (int b : free_) ++in_free[static_cast<size_t>(b)];
  for (int b : lru_) ++in_lru[static_cast<size_t>(b)];
  for (size_t b = 0; b < P; ++b) {
    const Block& blk = blocks_[b];
    if (blk.refs != holders[b])
      return fmt::format("block {}: refcount {} but {} tables hold it", b, blk.refs, holders[b]);
    if (blk.refs > 0 && in_free[b] + in_lru[b] > 0) return fmt::format("block {} is both held and free", b);
    if (blk.refs == 0 && in_free[b] + in_lru[b] != 1)
      return fmt::format("block {} is held by no table and listed {} times as free or cached", b,
                         in_free[b] + in_lru[b]);
    if (in_lru[b] && !blk.registered) return fmt::format("block {} is cached but not registered", b);
    if (in_free[b] && blk.registered) return fmt::format("block {} is free but registered", b);
    if (blk.cached != (in_lru[b] == 1))
      return fmt::format("block {}: cached flag disagrees with the cache list", b);
    if (blk.registered) {
      const auto it = registry_.find(blk.hash);
      if (it == registry_.end() || it->second != static_cast<int>(b))
        return fmt::format("block {} is registered but the registry does not point at it", b);
      if (block_hash(blk.parent, blk.key) != blk.hash)
        return fmt::format("block {}: its stored tokens do not hash to its key", b);
    }
  }
  for (const auto& [h, b] : registry_)
    if (!blocks_[static_cast<size_t>(b)].registered || blocks_[static_cast<size_t>(b)].hash != h)
      return fmt::format("the registry points at block {}, which is not registered under that hash", b);
  // A registered block a sequence holds in full must hold that sequence's tokens, chained.
  for (int seq = 0; seq < batch_; ++seq) {
    const size_t s = static_cast<size_t>(seq);
    uint64_t parent = 0;
    for (int e = 0; e < std::min(held(seq), cursor_[s] / block_size_); ++e) {
      const auto key = key_of(
          {tokens_[s].data() + static_cast<size_t>(e) * block_size_, static_cast<size_t>(block_size_)});
      const Block& blk = blocks_[static_cast<size_t>(table_[s][static_cast<size_t>(e)])];
      if (blk.registered &&
          (blk.parent != parent || !std::equal(key.begin(), key.end(), blk.key.begin(), blk.key.end())))
        return fmt::format(
            "block {} (sequence {}, entry {}) is registered under tokens the sequence does not hold there",
            table_[s][static_cast<size_t>(e)], seq, e);
      parent = block_hash(parent, key);
    }
  }
  return "";
}

void PagedKvCache::poison_unused(float value) {
  // covered[b]: the slots of block b some holder has below its cursor.
  std::vector<int> covered(static_cast<size_t>(pool_blocks_), 0);
  for (int seq = 0; seq < batch_; ++seq)
    for (int e = 0; e < held(seq); ++e) {
      const int b = table_[static_cast<size_t>(seq)][static_cast<size_t>(e)];
      const int in = std::clamp(cursor_[static_cast<size_t>(seq)] - e * block_size_, 0, block_size_);
      covered[static_cast<size_t>(b)] = std::max(covered[static_cast<size_t>(b)], in);
    }
  const size_t D = static_cast<size_t>(d_model());
  for (int b = 0; b < pool_blocks_; ++b) {
    if (blocks_[static_cast<size_t>(b)].registered) continue;  // a later prefix hit reads it
    for (int l = 0; l < n_layer_; ++l) {
      const size_t from = row_offset(l, b, covered[static_cast<size_t>(b)]),
                   to = row_offset(l, b, 0) + block_size_ * D;
      std::fill(k_pool_.begin() + static_cast<long>(from), k_pool_.begin() + static_cast<long>(to), value);
      std::fill(v_pool_.begin() + static_cast<long>(from), v_pool_.begin() + static_cast<long>(to), value);
    }
  }
  std::fill(spill_.begin(), spill_.end(), value);
}

}  // namespace miniinfer
