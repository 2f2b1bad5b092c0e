#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <thread>
#include <vector>

namespace vlserve {
namespace {

TEST(ThreadPoolTest, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 64, 1000, 1001}) {
      for (int64_t grain : {1, 4, 16}) {
        std::vector<std::atomic<int>> hits(n);
        pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
          EXPECT_EQ(b % grain, 0);
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
      }
    }
  }
}

TEST(ThreadPoolTest, RunCallsEveryThreadIndex) {
  ThreadPool pool(4);
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<std::atomic<int>> seen(4);
    pool.Run([&](int t, int n) {
      EXPECT_EQ(n, 4);
      seen[t].fetch_add(1);
    });
    for (auto& s : seen) ASSERT_EQ(s.load(), 1);
  }
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialised) {
  ThreadPool pool(2);
  std::vector<int64_t> sums(4, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 200; ++rep) {
        std::vector<int64_t> part(2, 0);
        pool.ParallelFor(1000, 1, [&](int64_t b, int64_t e) {
          int64_t s = 0;
          for (int64_t i = b; i < e; ++i) s += i;
          part[b == 0 ? 0 : 1] += s;
        });
        sums[c] += part[0] + part[1];
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int64_t s : sums) EXPECT_EQ(s, 200 * 999 * 1000 / 2);
}

TEST(ThreadPoolTest, ChunkRangePartitionsExactly) {
  for (int parts = 1; parts <= 5; ++parts) {
    int64_t expected_begin = 0;
    for (int i = 0; i < parts; ++i) {
      int64_t b, e;
      ChunkRange(103, 8, i, parts, &b, &e);
      EXPECT_EQ(b, expected_begin);
      EXPECT_LE(b, e);
      expected_begin = e;
    }
    EXPECT_EQ(expected_begin, 103);
  }
}

}  // namespace
}  // namespace vlserve
