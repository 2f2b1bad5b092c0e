// KV block allocation policy: which fixed-size KV blocks each sequence owns.
//
// src/models owns the physical KV memory (per layer, [num_blocks, block_size, kv_heads *
// head_dim]); this layer only hands out block ids and counts references, so it never
// touches tensors. Running out of blocks is a normal event: Allocate() returns
// RESOURCE_EXHAUSTED and changes nothing, and the scheduler answers by preempting.
//
// Block life cycle:
//   free --Allocate--> used (ref >= 1) --Free to 0--> free            (plain block)
//                                      --Free to 0--> cached (LRU)    (MarkCached block)
//   cached --IncRef--> used (a prefix-cache hit revives it)
//   cached --Allocate when the free list is empty--> used by someone else; the eviction
//          callback tells the prefix index to forget the block first.
// Cached blocks count as available: num_free() includes them.
//
// Not thread-safe: the engine thread owns the pool (docs/architecture.md "The engine step").
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/status.h"

namespace vlserve {

inline constexpr int32_t kDefaultKvBlockSize = 16;

// One sequence's view of its KV: blocks[i] holds token positions
// [i * block_size, (i + 1) * block_size). Invariant: num_tokens <= blocks.size() * block_size.
struct BlockTable {
  int32_t block_size = kDefaultKvBlockSize;
  std::vector<int32_t> blocks;
  int64_t num_tokens = 0;

  int64_t Capacity() const { return static_cast<int64_t>(blocks.size()) * block_size; }

  // How many more blocks must be appended so that the sequence can grow from num_tokens
  // to num_tokens + new_tokens. 0 when the last block still has room (or new_tokens == 0).
  int64_t BlocksNeeded(int64_t new_tokens) const;

  // Appends freshly allocated blocks and grows num_tokens by new_tokens.
  // CHECKs that the blocks are exactly enough: BlocksNeeded(new_tokens) == new_blocks.size().
  void Append(std::span<const int32_t> new_blocks, int64_t new_tokens);

  // Physical slot of token position `pos`: block id * block_size + offset in block.
  // This is the index into the models layer's [num_blocks * block_size, ...] KV buffer.
  int64_t SlotOf(int64_t pos) const;
};

class BlockPool {
 public:
  // Called with a cached block's id just before Allocate() reuses it for other content.
  using EvictionCallback = std::function<void(int32_t block)>;

  explicit BlockPool(int32_t num_blocks, int32_t block_size = kDefaultKvBlockSize);

  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // n blocks with reference count 1, or RESOURCE_EXHAUSTED (pool unchanged) when fewer
  // than n are available. Plain free blocks are used first (lowest ids first on a fresh
  // pool), then cached blocks in least-recently-freed order.
  StatusOr<std::vector<int32_t>> Allocate(int64_t n);
  bool CanAllocate(int64_t n) const { return n <= num_free(); }

  // Shares a block (refcount + 1). The block must be in use or cached; reviving a cached
  // block takes it off the LRU list.
  void IncRef(int32_t block);
  // Drops one reference; at 0 the block becomes free (or cached if MarkCached).
  void Free(int32_t block);
  void Free(std::span<const int32_t> blocks);

  // Allocates what `table` needs for new_tokens more tokens and appends it; on
  // RESOURCE_EXHAUSTED neither the pool nor the table changes.
  Status Grow(BlockTable& table, int64_t new_tokens);
  // Frees every block of the table and empties it (finish, cancel, preemption).
  void Release(BlockTable& table);

  // --- Hooks for the prefix index (cache/prefix_index.h) ---
  // Marks an in-use, full block as holding indexed content: when its last reference
  // goes it stays cached instead of free.
  void MarkCached(int32_t block);
  bool IsCached(int32_t block) const;  // marked (in use or on the LRU list)
  // Blocks with refcount 0 that still hold indexed content (reclaimable on demand).
  int32_t EvictableCount() const { return num_evictable_; }
  void SetEvictionCallback(EvictionCallback callback) { on_evict_ = std::move(callback); }

  int32_t RefCount(int32_t block) const;
  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return num_blocks_; }
  // Blocks Allocate() can hand out now: plain free + evictable.
  int32_t num_free() const { return static_cast<int32_t>(free_list_.size()) + num_evictable_; }
  int32_t num_used() const { return num_blocks_ - num_free(); }
  // Fraction of blocks referenced by some sequence, in [0, 1].
  double Usage() const;

 private:
  static constexpr int32_t kNone = -1;

  void CheckBlock(int32_t block) const;
  void LruPushBack(int32_t block);
  void LruRemove(int32_t block);
  int32_t EvictOldest();

  int32_t num_blocks_;
  int32_t block_size_;
  std::vector<int32_t> ref_count_;  // [num_blocks]
  std::vector<bool> cached_;        // [num_blocks] holds indexed content
  std::vector<int32_t> free_list_;  // stack; back() is handed out next
  // Intrusive doubly linked LRU list of evictable blocks: head = least recently freed.
  std::vector<int32_t> lru_prev_, lru_next_;  // [num_blocks]
  int32_t lru_head_ = kNone, lru_tail_ = kNone;
  int32_t num_evictable_ = 0;
  EvictionCallback on_evict_;
};

}  // namespace vlserve
