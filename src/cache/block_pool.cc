#include "cache/block_pool.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/check.h"

namespace vlserve {

int64_t BlockTable::BlocksNeeded(int64_t new_tokens) const {
  CHECK_GE(new_tokens, 0);
  CHECK_GT(block_size, 0);
  const int64_t total = num_tokens + new_tokens;
  const int64_t blocks_for_total = (total + block_size - 1) / block_size;
  return std::max<int64_t>(0, blocks_for_total - static_cast<int64_t>(blocks.size()));
}

void BlockTable::Append(std::span<const int32_t> new_blocks, int64_t new_tokens) {
  CHECK_EQ(BlocksNeeded(new_tokens), static_cast<int64_t>(new_blocks.size()));
  blocks.insert(blocks.end(), new_blocks.begin(), new_blocks.end());
  num_tokens += new_tokens;
}

int64_t BlockTable::SlotOf(int64_t pos) const {
  CHECK_GE(pos, 0);
  CHECK_LT(pos, Capacity());
  return static_cast<int64_t>(blocks[pos / block_size]) * block_size + pos % block_size;
}

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      ref_count_(num_blocks, 0),
      cached_(num_blocks, false),
      lru_prev_(num_blocks, kNone),
      lru_next_(num_blocks, kNone) {
  CHECK_GE(num_blocks, 0);
  CHECK_GT(block_size, 0);
  // Reverse order so that a fresh pool hands out 0, 1, 2, ... (easy to read in traces).
  free_list_.reserve(num_blocks);
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_list_.push_back(b);
}

void BlockPool::CheckBlock(int32_t block) const {
  CHECK(block >= 0 && block < num_blocks_)
      << "block id " << block << " out of [0, " << num_blocks_ << ")";
}

StatusOr<std::vector<int32_t>> BlockPool::Allocate(int64_t n) {
  CHECK_GE(n, 0);
  if (n > num_free()) {
    return ResourceExhaustedError(
        fmt::format("KV cache out of blocks: need {}, {} available of {} ({} tokens each); "
                    "preempt a sequence or raise the KV cache size",
                    n, num_free(), num_blocks_, block_size_));
  }
  std::vector<int32_t> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    int32_t b;
    if (!free_list_.empty()) {
      b = free_list_.back();
      free_list_.pop_back();
    } else {
      b = EvictOldest();
    }
    ref_count_[b] = 1;
    out.push_back(b);
  }
  return out;
}

void BlockPool::IncRef(int32_t block) {
  CheckBlock(block);
  if (ref_count_[block] == 0) {
    CHECK(cached_[block]) << "IncRef on free block " << block;
    LruRemove(block);
  }
  ++ref_count_[block];
}

void BlockPool::Free(int32_t block) {
  CheckBlock(block);
  CHECK_GT(ref_count_[block], 0) << "double free of block " << block;
  if (--ref_count_[block] > 0) return;
  if (cached_[block]) {
    LruPushBack(block);
  } else {
    free_list_.push_back(block);
  }
}

void BlockPool::Free(std::span<const int32_t> blocks) {
  for (int32_t b : blocks) Free(b);
}

Status BlockPool::Grow(BlockTable& table, int64_t new_tokens) {
  CHECK_EQ(table.block_size, block_size_);
  const int64_t needed = table.BlocksNeeded(new_tokens);
  ASSIGN_OR_RETURN(std::vector<int32_t> blocks, Allocate(needed));
  table.Append(blocks, new_tokens);
  return OkStatus();
}

void BlockPool::Release(BlockTable& table) {
  Free(table.blocks);
  table.blocks.clear();
  table.num_tokens = 0;
}

void BlockPool::MarkCached(int32_t block) {
  CheckBlock(block);
  CHECK_GT(ref_count_[block], 0) << "MarkCached on unused block " << block;
  cached_[block] = true;
}

bool BlockPool::IsCached(int32_t block) const {
  CheckBlock(block);
  return cached_[block];
}

int32_t BlockPool::RefCount(int32_t block) const {
  CheckBlock(block);
  return ref_count_[block];
}

double BlockPool::Usage() const {
  return num_blocks_ == 0 ? 0.0 : static_cast<double>(num_used()) / num_blocks_;
}

void BlockPool::LruPushBack(int32_t block) {
  lru_prev_[block] = lru_tail_;
  lru_next_[block] = kNone;
  if (lru_tail_ != kNone) {
    lru_next_[lru_tail_] = block;
  } else {
    lru_head_ = block;
  }
  lru_tail_ = block;
  ++num_evictable_;
}

void BlockPool::LruRemove(int32_t block) {
  const int32_t prev = lru_prev_[block], next = lru_next_[block];
  if (prev != kNone) {
    lru_next_[prev] = next;
  } else {
    lru_head_ = next;
  }
  if (next != kNone) {
    lru_prev_[next] = prev;
  } else {
    lru_tail_ = prev;
  }
  lru_prev_[block] = lru_next_[block] = kNone;
  --num_evictable_;
}

int32_t BlockPool::EvictOldest() {
  CHECK_NE(lru_head_, kNone);
  const int32_t b = lru_head_;
  LruRemove(b);
  cached_[b] = false;
  if (on_evict_) on_evict_(b);
  return b;
}

}  // namespace vlserve
