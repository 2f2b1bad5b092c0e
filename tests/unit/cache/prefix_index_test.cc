// Prefix index: chain-hash properties (what must and must not match) and the index's life
// cycle with the block pool (register, share, evict on demand).
#include "cache/prefix_index.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace vlserve {
namespace {

std::vector<BlockHash> Chain(const std::vector<int32_t>& tokens,
                             const std::vector<ContentSpan>& spans = {}, int64_t max = 1000) {
  std::vector<BlockHash> h;
  ExtendBlockHashes(tokens, spans, 16, max, &h);
  return h;
}

std::vector<int32_t> Iota(int n, int32_t start = 100) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Number of leading equal hashes.
size_t Common(const std::vector<BlockHash>& a, const std::vector<BlockHash>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

TEST(BlockHashTest, OnlyFullBlocksAndDeterministic) {
  EXPECT_EQ(Chain(Iota(15)).size(), 0u);
  EXPECT_EQ(Chain(Iota(16)).size(), 1u);
  EXPECT_EQ(Chain(Iota(47)).size(), 2u);
  EXPECT_EQ(Chain(Iota(47), {}, 1).size(), 1u);  // max_blocks caps
  EXPECT_EQ(Chain(Iota(48)), Chain(Iota(48)));
  EXPECT_EQ(Chain(Iota(48))[0].Hex().size(), 64u);
  // Extending an existing chain gives the same hashes as computing it at once.
  std::vector<BlockHash> h;
  const std::vector<int32_t> t = Iota(64);
  ExtendBlockHashes(t, {}, 16, 1, &h);
  ExtendBlockHashes(t, {}, 16, 3, &h);
  ExtendBlockHashes(t, {}, 16, 100, &h);
  EXPECT_EQ(h, Chain(t));
}

TEST(BlockHashTest, ChangeInABlockChangesItAndEverythingAfter) {
  const std::vector<int32_t> a = Iota(64);
  std::vector<int32_t> b = a;
  b[20] = 7;  // block 1
  const auto ha = Chain(a), hb = Chain(b);
  EXPECT_EQ(Common(ha, hb), 1u);
  for (size_t j = 1; j < 4; ++j) EXPECT_NE(ha[j], hb[j]) << j;
  // Same block contents at another place in the chain: different hash (parent differs).
  std::vector<int32_t> c = Iota(16, 116);  // == a's block 1 alone
  EXPECT_NE(Chain(c)[0], ha[1]);
}

TEST(BlockHashTest, ImagesOfEqualSizeAtTheSamePlaceDiffer) {
  std::vector<int32_t> t = Iota(64);
  for (int p = 20; p < 44; ++p) t[p] = -1;  // placeholders are identical in both
  const auto hx = Chain(t, {ContentSpan{20, 24, "x-hash"}});
  const auto hy = Chain(t, {ContentSpan{20, 24, "y-hash"}});
  const auto hx2 = Chain(t, {ContentSpan{20, 24, "x-hash"}});
  EXPECT_EQ(hx, hx2);
  EXPECT_EQ(Common(hx, hy), 1u);  // block 0 is text only; block 1 holds [20, 32) of the image
  // The same image one token later (a different layout) also differs from block 1 on.
  const auto shifted = Chain(t, {ContentSpan{21, 23, "x-hash"}});
  EXPECT_EQ(Common(hx, shifted), 1u);
  // A span's identity counts, not just which positions are images.
  EXPECT_NE(Chain(t)[1], hx[1]);
}

TEST(BlockHashTest, UnnamedImageStopsTheChain) {
  std::vector<int32_t> t = Iota(64);
  std::vector<BlockHash> h;
  EXPECT_FALSE(ExtendBlockHashes(t, std::vector<ContentSpan>{{40, 4, ""}}, 16, 100, &h));
  EXPECT_EQ(h.size(), 2u);  // blocks 0 and 1 end before the span
}

TEST(PrefixIndexTest, InsertMatchAndEvictOnDemand) {
  BlockPool pool(4);
  PrefixIndex index(&pool);
  const auto h = Chain(Iota(48));  // 3 blocks
  auto blocks = pool.Allocate(3);
  ASSERT_TRUE(blocks.ok());
  for (int j = 0; j < 3; ++j) EXPECT_TRUE(index.Insert(h[j], (*blocks)[j]));
  EXPECT_FALSE(index.Insert(h[0], 3));  // already indexed: the duplicate stays private
  EXPECT_EQ(index.size(), 3);
  EXPECT_EQ(index.Match(h), *blocks);
  // A chain that diverges in block 1 matches only block 0.
  std::vector<int32_t> other = Iota(48);
  other[17] = 1;
  EXPECT_EQ(index.Match(Chain(other)), std::vector<int32_t>{(*blocks)[0]});

  // The request finishes: blocks stay indexed with refcount 0 and count as free.
  pool.Free(*blocks);
  EXPECT_EQ(pool.EvictableCount(), 3);
  EXPECT_EQ(pool.num_free(), 4);
  EXPECT_EQ(index.Match(h), *blocks);

  // Reviving block 0 (a hit) protects it; allocating 2 takes the free block, then evicts
  // the least recently freed cached block that is not in use.
  pool.IncRef((*blocks)[0]);
  auto more = pool.Allocate(2);
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(index.evictions(), 1);
  EXPECT_EQ(index.size(), 2);
  EXPECT_EQ(index.Match(h), std::vector<int32_t>{(*blocks)[0]});  // block 1 is gone
  EXPECT_FALSE(index.Contains(h[1]));
  EXPECT_TRUE(index.Contains(h[2]));
}

}  // namespace
}  // namespace vlserve
