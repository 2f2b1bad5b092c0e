// Encoder-output cache: keys, LRU-by-bytes bound, counters, concurrent misses.
#include "cache/encoder_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace vlserve {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

EncoderOutput Output(int64_t rows, int64_t hidden, float fill) {
  EncoderOutput o;
  o.embeddings = std::make_shared<const std::vector<float>>(rows * hidden, fill);
  o.rows = rows;
  o.hidden = hidden;
  return o;
}

TEST(EncoderKeyTest, Sha256KnownAnswer) {
  // FIPS 180-2 test vector.
  EXPECT_EQ(Sha256Hex(Bytes("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(EncoderKeyTest, EveryPartChangesTheKey) {
  const std::string k = EncoderCacheKey(Bytes("image"), "pre-a", "tower-1");
  EXPECT_EQ(k.size(), 64u);
  EXPECT_EQ(k, EncoderCacheKey(Bytes("image"), "pre-a", "tower-1"));
  EXPECT_NE(k, EncoderCacheKey(Bytes("imagf"), "pre-a", "tower-1"));
  EXPECT_NE(k, EncoderCacheKey(Bytes("image"), "pre-b", "tower-1"));
  EXPECT_NE(k, EncoderCacheKey(Bytes("image"), "pre-a", "tower-2"));
  // Moving bytes between fields must not collide (length-prefixed fields).
  EXPECT_NE(EncoderCacheKey(Bytes("ab"), "c", "d"), EncoderCacheKey(Bytes("a"), "bc", "d"));
  EXPECT_NE(EncoderCacheKey(Bytes("a"), "b", "cd"), EncoderCacheKey(Bytes("a"), "bc", "d"));
  EXPECT_NE(k, Sha256Hex(Bytes("image")));  // domain-separated from a plain content hash
  // Incremental == one shot.
  EncoderKeyBuilder b;
  b.Update(std::string_view("ima"));
  b.Update(std::string_view(""));
  b.Update(std::string_view("ge"));
  EXPECT_EQ(b.Finish("pre-a", "tower-1"), k);
}

TEST(EncoderCacheTest, LookupAfterMissRecountsTheMissAsAHit) {
  EncoderCache cache(1 << 20);
  EXPECT_FALSE(cache.Lookup("a").has_value());  // the server's lookup: a miss
  EXPECT_FALSE(cache.LookupAfterMiss("a").has_value());  // still absent: nothing counted
  EXPECT_EQ(cache.Stats().misses, 1);
  EXPECT_EQ(cache.Stats().hits, 0);
  ASSERT_TRUE(cache.Insert("a", Output(4, 3, 7)).ok());  // another request encoded it
  EXPECT_FALSE(cache.Lookup("b").has_value());
  std::optional<EncoderOutput> v = cache.LookupAfterMiss("b");
  EXPECT_FALSE(v.has_value());
  v = cache.LookupAfterMiss("a");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ((*v->embeddings)[0], 7.0f);
  // One miss (b) and one hit (a, recounted) for two images.
  EXPECT_EQ(cache.Stats().hits, 1);
  EXPECT_EQ(cache.Stats().misses, 1);
}

TEST(EncoderCacheTest, LruBoundedByBytes) {
  const int64_t one = Output(100, 10, 0).Bytes();  // 4000 bytes of floats + overhead
  EncoderCache cache(2 * one + 10);                // room for two
  ASSERT_TRUE(cache.Insert("a", Output(100, 10, 1)).ok());
  ASSERT_TRUE(cache.Insert("b", Output(100, 10, 2)).ok());
  ASSERT_TRUE(cache.Lookup("a").has_value());  // a is now the most recently used
  ASSERT_TRUE(cache.Insert("c", Output(100, 10, 3)).ok());
  EXPECT_FALSE(cache.Lookup("b").has_value());  // b was least recently used
  auto a = cache.Lookup("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ((*a->embeddings)[0], 1.0f);
  EXPECT_EQ(a->rows, 100);
  EXPECT_EQ(a->hidden, 10);
  EXPECT_TRUE(cache.Lookup("c").has_value());
  EncoderCacheStats s = cache.Stats();
  EXPECT_EQ(s.hits, 3);
  EXPECT_EQ(s.misses, 1);
  EXPECT_EQ(s.evictions, 1);
  EXPECT_EQ(s.insertions, 3);
  EXPECT_EQ(s.entries, 2);
  EXPECT_EQ(s.bytes, 2 * one);
  EXPECT_LE(s.bytes, s.capacity_bytes);

  // Too large for the whole cache: not stored, nothing evicted.
  ASSERT_TRUE(cache.Insert("huge", Output(1000, 10, 4)).ok());
  EXPECT_FALSE(cache.Lookup("huge").has_value());
  EXPECT_EQ(cache.Stats().entries, 2);
  // Replacing a key keeps one entry for it.
  ASSERT_TRUE(cache.Insert("a", Output(100, 10, 5)).ok());
  EXPECT_EQ((*cache.Lookup("a")->embeddings)[0], 5.0f);
  EXPECT_EQ(cache.Stats().entries, 2);
  cache.Clear();
  EXPECT_EQ(cache.Stats().bytes, 0);
  EXPECT_FALSE(cache.Lookup("a").has_value());
}

TEST(EncoderCacheTest, EvictedValueStaysAliveForItsUser) {
  EncoderCache cache(Output(10, 10, 0).Bytes());
  ASSERT_TRUE(cache.Insert("a", Output(10, 10, 7)).ok());
  auto held = cache.Lookup("a");
  ASSERT_TRUE(cache.Insert("b", Output(10, 10, 8)).ok());  // evicts a
  EXPECT_FALSE(cache.Lookup("a").has_value());
  EXPECT_EQ((*held->embeddings)[99], 7.0f);
}

TEST(EncoderCacheTest, RejectsMismatchedShapes) {
  EncoderCache cache(1 << 20);
  EncoderOutput bad = Output(10, 10, 0);
  bad.rows = 11;
  EXPECT_EQ(cache.Insert("x", bad).code(), StatusCode::kInvalidArgument);
  EncoderOutput seg = Output(10, 10, 0);
  seg.segment_rows = {4, 5};
  EXPECT_EQ(cache.Insert("x", seg).code(), StatusCode::kInvalidArgument);
  seg.segment_rows = {4, 6};
  EXPECT_TRUE(cache.Insert("x", seg).ok());
  EXPECT_EQ(cache.Insert("y", EncoderOutput{}).code(), StatusCode::kInvalidArgument);
}

TEST(EncoderCacheTest, DisabledCacheStoresNothing) {
  EncoderCache cache(0);
  ASSERT_TRUE(cache.Insert("a", Output(1, 1, 1)).ok());
  EXPECT_FALSE(cache.Lookup("a").has_value());
  int computed = 0;
  for (int i = 0; i < 2; ++i) {
    auto r = cache.GetOrCompute("a", [&]() -> StatusOr<EncoderOutput> {
      ++computed;
      return Output(1, 1, 1);
    });
    ASSERT_TRUE(r.ok());
  }
  EXPECT_EQ(computed, 2);
}

TEST(EncoderCacheTest, ConcurrentMissesComputeOnce) {
  EncoderCache cache(1 << 20);
  std::atomic<int> computed{0}, hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      bool hit = false;
      auto r = cache.GetOrCompute(
          "img",
          [&]() -> StatusOr<EncoderOutput> {
            ++computed;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            return Output(4, 4, 3);
          },
          &hit);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ((*r->embeddings)[5], 3.0f);
      if (hit) ++hits;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(computed.load(), 1);
  EXPECT_EQ(hits.load(), 5);
  EXPECT_EQ(cache.Stats().misses, 1);
  EXPECT_EQ(cache.Stats().hits, 5);

  // Errors are passed on and not cached.
  auto err = cache.GetOrCompute("bad", []() -> StatusOr<EncoderOutput> {
    return InvalidArgumentError("broken image");
  });
  EXPECT_EQ(err.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(cache.Lookup("bad").has_value());
}

}  // namespace
}  // namespace vlserve
