// Cache salts (docs/caching.md "Isolation"): each cache's key depends on the request's
// partition, so entries are shared only between equal salts, and the default partition
// ("" salt) keeps the keys it had before salts existed. The expected digests come from
// Python's hashlib over the documented layouts (f(s) = 8-byte little-endian length + s):
//
//   seed(salt) = sha256(b"vlserve.kv-salt.v1" + u64(len(salt)) + salt), 32 zero bytes for ""
//   H_0        = sha256(b"vlserve.kv-block.v1" + seed + u32(16) + u32 tokens 100..115)
//   encoder    = sha256(f(b"vlserve.encoder-output.v1") + f(salt) + content + u64(len) +
//                       f(preprocess) + f(mmproj))
//   response   = sha256(f(b"vlserve.response.v1") + f(canonical) + f(model) [+ f(salt)])
#include <gtest/gtest.h>

#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "cache/block_pool.h"
#include "cache/encoder_cache.h"
#include "cache/prefix_index.h"
#include "cache/response_cache.h"

namespace vlserve {
namespace {

std::vector<int32_t> Iota(int n, int32_t start = 100) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

std::vector<BlockHash> Chain(const std::vector<int32_t>& tokens, std::string_view salt) {
  std::vector<BlockHash> h;
  ExtendBlockHashes(tokens, {}, 16, 1000, &h, salt);
  return h;
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(CacheSaltTest, BlockChainMatchesIndependentSha256) {
  const std::vector<BlockHash> plain = Chain(Iota(32), "");
  const std::vector<BlockHash> salted = Chain(Iota(32), "tenant-a");
  ASSERT_EQ(plain.size(), 2u);
  ASSERT_EQ(salted.size(), 2u);
  // No salt: the chain of before (seed = zeros).
  EXPECT_EQ(plain[0].Hex(), "995a19801d57a6e5e6d083d5810f275f0c78ad6d9e951999e02f8e0655163a39");
  EXPECT_EQ(plain[1].Hex(), "4e8225b4d0fa77d64474166ba16bb59eafa92b90557bb70b7407cdd31227450c");
  EXPECT_EQ(salted[0].Hex(), "2881051ef6643dd99b9909c4f5ceb1f86ea51c13736dee6b0265df5e450310fb");
  EXPECT_EQ(salted[1].Hex(), "2675009ad16a4cc7421980851758f05728748bbfbeb0bbfd7d1a7f3060611666");
}

TEST(CacheSaltTest, DifferentSaltsShareNoBlockEqualSaltsShareAll) {
  const std::vector<int32_t> t = Iota(64);
  const auto none = Chain(t, ""), a = Chain(t, "a"), a2 = Chain(t, "a"), b = Chain(t, "b");
  EXPECT_EQ(a, a2);
  for (size_t j = 0; j < 4; ++j) {
    EXPECT_NE(a[j], b[j]) << j;
    EXPECT_NE(a[j], none[j]) << j;
  }
  // A chain extended in steps keeps its salt.
  std::vector<BlockHash> h;
  ExtendBlockHashes(t, {}, 16, 1, &h, "a");
  ExtendBlockHashes(t, {}, 16, 4, &h, "a");
  EXPECT_EQ(h, a);
}

TEST(CacheSaltTest, IndexMatchesOnlyTheSameSalt) {
  BlockPool pool(4);
  PrefixIndex index(&pool);
  const std::vector<int32_t> t = Iota(48);
  const auto a = Chain(t, "a");
  auto blocks = pool.Allocate(3);
  ASSERT_TRUE(blocks.ok());
  for (int j = 0; j < 3; ++j) ASSERT_TRUE(index.Insert(a[j], (*blocks)[j]));
  pool.Free(*blocks);
  EXPECT_EQ(index.Match(Chain(t, "a")), *blocks);
  EXPECT_TRUE(index.Match(Chain(t, "b")).empty());
  EXPECT_TRUE(index.Match(Chain(t, "")).empty());
  // The same content in another partition is a second entry of the same pool and index.
  auto other = pool.Allocate(1);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(index.Insert(Chain(t, "b")[0], (*other)[0]));
  EXPECT_EQ(index.size(), 4);
}

TEST(CacheSaltTest, EncoderKeyMatchesIndependentSha256) {
  EXPECT_EQ(EncoderCacheKey(Bytes("image"), "pre-a", "tower-1"),
            "08b426cb9c39cd28a9c4ed3bfd9f4625e73c83279dd5a81586c93b33e848c023");
  EXPECT_EQ(EncoderCacheKey(Bytes("image"), "pre-a", "tower-1", "tenant-a"),
            "ae180553280c7c45ce5f722e345ce31eb0754b77353b8b1620ed028dc8cf937b");
  EncoderKeyBuilder b("tenant-a");
  b.Update(std::string_view("im"));
  b.Update(std::string_view("age"));
  EXPECT_EQ(b.Finish("pre-a", "tower-1"),
            EncoderCacheKey(Bytes("image"), "pre-a", "tower-1", "tenant-a"));
  EXPECT_NE(EncoderCacheKey(Bytes("image"), "pre-a", "tower-1", "tenant-b"),
            EncoderCacheKey(Bytes("image"), "pre-a", "tower-1", "tenant-a"));
  // The salt is length-prefixed: bytes cannot move between it and the content.
  EXPECT_NE(EncoderCacheKey(Bytes("bc"), "p", "m", "a"),
            EncoderCacheKey(Bytes("c"), "p", "m", "ab"));
}

TEST(CacheSaltTest, EncoderCacheHitsOnlyUnderTheSameSalt) {
  EncoderCache cache(1 << 20);
  EncoderOutput o;
  o.embeddings = std::make_shared<const std::vector<float>>(12, 1.0f);
  o.rows = 4;
  o.hidden = 3;
  ASSERT_TRUE(cache.Insert(EncoderCacheKey(Bytes("img"), "p", "m", "a"), o).ok());
  EXPECT_TRUE(cache.Lookup(EncoderCacheKey(Bytes("img"), "p", "m", "a")).has_value());
  EXPECT_FALSE(cache.Lookup(EncoderCacheKey(Bytes("img"), "p", "m", "b")).has_value());
  EXPECT_FALSE(cache.Lookup(EncoderCacheKey(Bytes("img"), "p", "m")).has_value());
}

TEST(CacheSaltTest, ResponseKeyMatchesIndependentSha256) {
  EXPECT_EQ(ResponseCacheKey(R"({"a":1})", "model-x", ""),
            "5be74f7d27da6752428503837c267f5ac11e1a61b6b27c2c89768af51537b976");
  EXPECT_EQ(ResponseCacheKey(R"({"a":1})", "model-x", "tenant-a"),
            "4d1c02346a93952f82e05ce0eaaed416f0563a61ba005050aaef50e8f4a72b6c");
  // The body's own "cache_salt" is not part of the canonical request: the server passes
  // the partition (which includes it) as the salt.
  auto c = CanonicalRequestJson(R"({"a":1,"cache_salt":"tenant-a"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, R"({"a":1})");
}

TEST(CacheSaltTest, ResponseCacheHitsOnlyUnderTheSameSalt) {
  ResponseCache cache(1 << 20);
  const std::string body = R"({"messages":[{"role":"user","content":"hi"}],"temperature":0})";
  CachedResponse answer;
  answer.text = "hello";
  answer.finish_reason = "stop";
  cache.Insert(*ResponseCacheKeyForBody(body, "m", "a"), answer);
  EXPECT_TRUE(cache.Lookup(*ResponseCacheKeyForBody(body, "m", "a")).has_value());
  EXPECT_FALSE(cache.Lookup(*ResponseCacheKeyForBody(body, "m", "b")).has_value());
  EXPECT_FALSE(cache.Lookup(*ResponseCacheKeyForBody(body, "m")).has_value());
}

}  // namespace
}  // namespace vlserve
