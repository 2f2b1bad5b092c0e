#include "cache/block_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace vlserve {
namespace {

TEST(BlockTableTest, BlocksNeededEdgeCases) {
  BlockTable t;                     // block_size 16
  EXPECT_EQ(t.BlocksNeeded(0), 0);  // nothing to store, nothing to allocate
  EXPECT_EQ(t.BlocksNeeded(1), 1);
  EXPECT_EQ(t.BlocksNeeded(16), 1);  // exactly one full block
  EXPECT_EQ(t.BlocksNeeded(17), 2);
  EXPECT_EQ(t.BlocksNeeded(32), 2);
  EXPECT_EQ(t.BlocksNeeded(33), 3);

  t.Append(std::vector<int32_t>{7}, 16);  // the sequence exactly fills block 7
  EXPECT_EQ(t.num_tokens, 16);
  EXPECT_EQ(t.BlocksNeeded(0), 0);
  EXPECT_EQ(t.BlocksNeeded(1), 1);  // at the boundary the next token needs a new block

  BlockTable u;
  u.Append(std::vector<int32_t>{3}, 5);  // 11 free slots left in block 3
  EXPECT_EQ(u.BlocksNeeded(11), 0);
  EXPECT_EQ(u.BlocksNeeded(12), 1);
  EXPECT_EQ(u.BlocksNeeded(11 + 16), 1);
  EXPECT_EQ(u.BlocksNeeded(11 + 17), 2);
}

TEST(BlockTableTest, OtherBlockSizeAndSlots) {
  BlockTable t;
  t.block_size = 4;
  EXPECT_EQ(t.BlocksNeeded(9), 3);
  t.Append(std::vector<int32_t>{5, 2, 9}, 9);
  EXPECT_EQ(t.Capacity(), 12);
  EXPECT_EQ(t.SlotOf(0), 5 * 4 + 0);
  EXPECT_EQ(t.SlotOf(3), 5 * 4 + 3);
  EXPECT_EQ(t.SlotOf(4), 2 * 4 + 0);
  EXPECT_EQ(t.SlotOf(10), 9 * 4 + 2);
  EXPECT_EQ(t.BlocksNeeded(3), 0);
  EXPECT_EQ(t.BlocksNeeded(4), 1);
}

TEST(BlockPoolTest, AllocateAndFreeAccounting) {
  BlockPool pool(10);
  EXPECT_EQ(pool.num_blocks(), 10);
  EXPECT_EQ(pool.block_size(), 16);
  EXPECT_EQ(pool.num_free(), 10);
  EXPECT_EQ(pool.num_used(), 0);
  EXPECT_DOUBLE_EQ(pool.Usage(), 0.0);

  auto a = pool.Allocate(3);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (std::vector<int32_t>{0, 1, 2}));  // fresh pool hands out low ids first
  auto b = pool.Allocate(4);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_EQ(pool.num_used(), 7);
  EXPECT_DOUBLE_EQ(pool.Usage(), 0.7);
  for (int32_t id : *a) EXPECT_EQ(pool.RefCount(id), 1);

  std::set<int32_t> all(a->begin(), a->end());
  all.insert(b->begin(), b->end());
  EXPECT_EQ(all.size(), 7u);  // no block handed out twice

  pool.Free(*a);
  EXPECT_EQ(pool.num_free(), 6);
  for (int32_t id : *a) EXPECT_EQ(pool.RefCount(id), 0);
  auto zero = pool.Allocate(0);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->empty());
  EXPECT_EQ(pool.num_free(), 6);
}

TEST(BlockPoolTest, ExhaustionIsAnErrorAndChangesNothing) {
  BlockPool pool(4);
  auto a = pool.Allocate(3);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(pool.CanAllocate(2));
  auto fail = pool.Allocate(2);
  ASSERT_FALSE(fail.ok());
  EXPECT_EQ(fail.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(fail.status().message().find("out of blocks"), std::string::npos);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_EQ(pool.num_used(), 3);
  // The one remaining block is still there and is the only one handed out.
  auto last = pool.Allocate(1);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, std::vector<int32_t>{3});
  EXPECT_EQ(pool.num_free(), 0);
}

TEST(BlockPoolTest, RefCountsShareBlocks) {
  BlockPool pool(4);
  auto a = pool.Allocate(2);
  ASSERT_TRUE(a.ok());
  const int32_t shared = (*a)[0];
  pool.IncRef(shared);
  pool.IncRef(shared);
  EXPECT_EQ(pool.RefCount(shared), 3);
  pool.Free(shared);
  pool.Free(shared);
  EXPECT_EQ(pool.num_free(), 2);  // still referenced once
  EXPECT_EQ(pool.RefCount(shared), 1);
  pool.Free(shared);
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_EQ(pool.RefCount(shared), 0);
}

TEST(BlockPoolTest, GrowAndReleaseTable) {
  BlockPool pool(3, 4);
  BlockTable t;
  t.block_size = 4;
  ASSERT_TRUE(pool.Grow(t, 5).ok());  // 5 tokens -> 2 blocks
  EXPECT_EQ(t.blocks.size(), 2u);
  EXPECT_EQ(t.num_tokens, 5);
  ASSERT_TRUE(pool.Grow(t, 3).ok());  // fills the second block, no new block
  EXPECT_EQ(t.blocks.size(), 2u);
  EXPECT_EQ(pool.num_free(), 1);

  Status s = pool.Grow(t, 5);  // 13 tokens would need 4 blocks; only 3 exist
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(t.blocks.size(), 2u);  // unchanged on failure
  EXPECT_EQ(t.num_tokens, 8);
  EXPECT_EQ(pool.num_free(), 1);

  pool.Release(t);
  EXPECT_TRUE(t.blocks.empty());
  EXPECT_EQ(t.num_tokens, 0);
  EXPECT_EQ(pool.num_free(), 3);
}

TEST(BlockPoolTest, CachedBlocksStayEvictableAndAreReclaimedLru) {
  BlockPool pool(3);
  std::vector<int32_t> evicted;
  pool.SetEvictionCallback([&](int32_t b) { evicted.push_back(b); });
  auto a = pool.Allocate(3);
  ASSERT_TRUE(a.ok());
  pool.MarkCached(0);
  pool.MarkCached(1);
  pool.Free(1);  // cached, freed first -> evicted first
  pool.Free(0);
  EXPECT_EQ(pool.EvictableCount(), 2);
  EXPECT_EQ(pool.num_free(), 2);  // evictable blocks count as available
  EXPECT_TRUE(pool.IsCached(1));

  // A prefix hit revives block 0 from the LRU list.
  pool.IncRef(0);
  EXPECT_EQ(pool.RefCount(0), 1);
  EXPECT_EQ(pool.EvictableCount(), 1);
  EXPECT_EQ(pool.num_free(), 1);

  pool.Free(2);  // plain block -> free list, preferred over evicting
  auto b = pool.Allocate(1);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, std::vector<int32_t>{2});
  EXPECT_TRUE(evicted.empty());

  auto c = pool.Allocate(1);  // only cached block 1 is left: it is evicted
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, std::vector<int32_t>{1});
  EXPECT_EQ(evicted, std::vector<int32_t>{1});
  EXPECT_FALSE(pool.IsCached(1));
  EXPECT_EQ(pool.EvictableCount(), 0);
  EXPECT_EQ(pool.num_free(), 0);
}

TEST(BlockPoolTest, LruOrderFollowsFreeOrder) {
  BlockPool pool(4);
  std::vector<int32_t> evicted;
  pool.SetEvictionCallback([&](int32_t b) { evicted.push_back(b); });
  auto a = pool.Allocate(4);
  ASSERT_TRUE(a.ok());
  for (int32_t b : {0, 1, 2, 3}) pool.MarkCached(b);
  for (int32_t b : {2, 0, 3, 1}) pool.Free(b);
  auto c = pool.Allocate(3);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(evicted, (std::vector<int32_t>{2, 0, 3}));
  EXPECT_EQ(pool.EvictableCount(), 1);
}

}  // namespace
}  // namespace vlserve
