// Attention: the reference against a naive softmax written here, then every ISA's kernel
// against the reference for paged layouts, GQA, causal masks, tails and thread counts.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/ref/ops_ref.h"

namespace vlserve::kernels {
namespace {

std::vector<float> Normal(int64_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Shape {
  int64_t n_q, num_heads, num_kv_heads, head_dim, length;
};

// K and V for `length` positions, contiguous [length, num_kv_heads, head_dim], plus a
// paged copy in blocks of `block_size` whose memory order is shuffled.
struct KvData {
  KvData(const Shape& s, int64_t block_size, uint32_t seed)
      : row(s.num_kv_heads * s.head_dim),
        k(Normal(s.length * row, seed, 1.5f)),
        v(Normal(s.length * row, seed + 1)) {
    const int64_t num_blocks = (s.length + block_size - 1) / block_size;
    std::vector<int64_t> order(num_blocks);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(seed));
    pool_k.assign(num_blocks * block_size * row + 3, 0.0f);  // +3: misaligned blocks
    pool_v.assign(num_blocks * block_size * row + 3, 0.0f);
    for (int64_t b = 0; b < num_blocks; ++b) {
      float* kb = pool_k.data() + 3 + order[b] * block_size * row;
      float* vb = pool_v.data() + 3 + order[b] * block_size * row;
      const int64_t n = std::min(block_size, s.length - b * block_size) * row;
      std::copy_n(k.data() + b * block_size * row, n, kb);
      std::copy_n(v.data() + b * block_size * row, n, vb);
      k_blocks.push_back(kb);
      v_blocks.push_back(vb);
    }
    k_one = k.data();
    v_one = v.data();
    paged = KvView{k_blocks.data(), v_blocks.data(), block_size, s.length};
    contiguous = KvView{&k_one, &v_one, s.length, s.length};
  }
  int64_t row;
  std::vector<float> k, v, pool_k, pool_v;
  std::vector<const void*> k_blocks, v_blocks;
  const void* k_one;
  const void* v_one;
  KvView paged, contiguous;
};

// Textbook attention over contiguous K/V: full score row, softmax, weighted sum.
std::vector<float> Naive(const Shape& s, const std::vector<float>& q, const KvData& kv,
                         const int32_t* pos, float scale) {
  std::vector<float> out(q.size());
  const int64_t group = s.num_heads / s.num_kv_heads;
  for (int64_t i = 0; i < s.n_q; ++i) {
    for (int64_t h = 0; h < s.num_heads; ++h) {
      const int64_t kvh = h / group;
      std::vector<long double> w(s.length, 0.0L);
      long double mx = -INFINITY;
      for (int64_t t = 0; t < s.length; ++t) {
        if (pos != nullptr && t > pos[i]) continue;
        long double dot = 0;
        for (int64_t d = 0; d < s.head_dim; ++d) {
          dot += static_cast<long double>(q[(i * s.num_heads + h) * s.head_dim + d]) *
                 kv.k[t * kv.row + kvh * s.head_dim + d];
        }
        w[t] = dot * scale;
        mx = std::max(mx, w[t]);
      }
      long double total = 0;
      for (int64_t t = 0; t < s.length; ++t) {
        w[t] = (pos != nullptr && t > pos[i]) ? 0.0L : std::exp(w[t] - mx);
        total += w[t];
      }
      for (int64_t d = 0; d < s.head_dim; ++d) {
        long double acc = 0;
        for (int64_t t = 0; t < s.length; ++t) acc += w[t] * kv.v[t * kv.row + kvh * s.head_dim + d];
        out[(i * s.num_heads + h) * s.head_dim + d] = static_cast<float>(acc / total);
      }
    }
  }
  return out;
}

std::vector<int32_t> CausalPositions(const Shape& s) {  // the last n_q positions
  std::vector<int32_t> pos(s.n_q);
  for (int64_t i = 0; i < s.n_q; ++i) pos[i] = static_cast<int32_t>(s.length - s.n_q + i);
  return pos;
}

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol) << "at " << i;
  }
}

class AttentionTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = ActiveIsa(); }
  void TearDown() override { ForceIsa(saved_); }
  static std::vector<Isa> Isas() {
    std::vector<Isa> v;
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (IsaAvailable(isa)) v.push_back(isa);
    }
    return v;
  }
  Isa saved_ = Isa::kScalar;
};

TEST_F(AttentionTest, ReferenceMatchesNaiveSoftmax) {
  for (bool causal : {false, true}) {
    const Shape s{5, 4, 2, 8, 23};
    KvData kv(s, 16, 1);
    const std::vector<float> q = Normal(s.n_q * s.num_heads * s.head_dim, 2);
    const std::vector<int32_t> pos = CausalPositions(s);
    const int32_t* p = causal ? pos.data() : nullptr;
    std::vector<float> got(q.size());
    ref::Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged, p, 0.35f,
                   got.data());
    ExpectNear(got, Naive(s, q, kv, p, 0.35f), 1e-6);
  }
  // One visible key: the output is exactly that key's value.
  const Shape s{1, 2, 1, 4, 9};
  KvData kv(s, 4, 3);
  const std::vector<float> q = Normal(8, 4);
  const int32_t pos0 = 0;
  std::vector<float> got(8);
  ref::Attention(q.data(), 1, 2, 1, 4, kv.paged, &pos0, 1.0f, got.data());
  for (int d = 0; d < 4; ++d) {
    EXPECT_FLOAT_EQ(got[d], kv.v[d]);
    EXPECT_FLOAT_EQ(got[4 + d], kv.v[d]);
  }
}

TEST_F(AttentionTest, EveryIsaMatchesReferenceAndPagingIsExact) {
  const Shape shapes[] = {
      {1, 14, 2, 64, 300},   // decode, GQA group 7
      {7, 4, 4, 16, 40},     // MHA, short
      {40, 8, 1, 13, 57},    // MQA, odd head_dim (tails), several tiles
      {33, 6, 2, 80, 33},    // prefill = kv, head_dim 80
      {3, 2, 1, 128, 130},   // head_dim 128
      {20, 3, 3, 72, 20},    // SigLIP-so400m head_dim
      {1, 9, 3, 64, 1200},   // decode over a long history: split-key path, 5 chunks + tail
      {2, 4, 2, 32, 600},    // 2 queries x group 2 = 4 rows per kv head, split keys
  };
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    for (const Shape& s : shapes) {
      for (bool causal : {false, true}) {
        SCOPED_TRACE(testing::Message() << IsaName(isa) << " n_q " << s.n_q << " heads "
                                        << s.num_heads << "/" << s.num_kv_heads << " hd "
                                        << s.head_dim << " len " << s.length << " causal "
                                        << causal);
        KvData kv(s, 16, static_cast<uint32_t>(s.length));
        const std::vector<float> q = Normal(s.n_q * s.num_heads * s.head_dim, 9);
        const std::vector<int32_t> pos = CausalPositions(s);
        const int32_t* p = causal ? pos.data() : nullptr;
        const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
        std::vector<float> want(q.size()), paged(q.size()), flat(q.size());
        ref::Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.contiguous,
                       p, scale, want.data());
        Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged, p, scale,
                  paged.data());
        Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.contiguous, p,
                  scale, flat.data());
        ExpectNear(paged, want, 2e-5);
        ASSERT_EQ(paged, flat);  // the block layout must not change a single bit
      }
    }
  }
}

// Split-key decode (<= 4 rows per kv head over >= 512 positions) on a thread whose
// kernel scratch has never been grown by a larger call: the scratch must fit RunTileFew
// on every ISA. (It did not on the scalar kernels for 4 rows at small head_dim, an
// overflow that depended on which thread had run what before; AddressSanitizer, which
// runs the unit tests in CI, catches it here deterministically.)
TEST_F(AttentionTest, SplitKeyDecodeFitsAFreshThreadsScratch) {
  const Shape shapes[] = {{1, 4, 1, 8, 512}, {2, 4, 2, 32, 600}, {1, 9, 3, 64, 1200}};
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    for (const Shape& s : shapes) {
      SCOPED_TRACE(testing::Message() << IsaName(isa) << " hd " << s.head_dim);
      KvData kv(s, 16, static_cast<uint32_t>(s.length));
      const std::vector<float> q = Normal(s.n_q * s.num_heads * s.head_dim, 21);
      const std::vector<int32_t> pos = CausalPositions(s);
      const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
      std::vector<float> want(q.size()), got(q.size());
      ref::Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.contiguous,
                     pos.data(), scale, want.data());
      std::thread fresh([&] {
        ThreadPool one(1);  // runs the work on this new thread
        Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged,
                  pos.data(), scale, got.data(), &one);
      });
      fresh.join();
      ExpectNear(got, want, 2e-5);
    }
  }
}

TEST_F(AttentionTest, ArbitraryPositionsAndExtremeScores) {
  const Shape s{9, 4, 2, 32, 70};
  KvData kv(s, 5, 77);
  std::vector<float> q = Normal(s.n_q * s.num_heads * s.head_dim, 78, 6.0f);  // peaky softmax
  const std::vector<int32_t> pos = {0, 69, 3, 64, 63, 65, 1, 12, 40};
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    std::vector<float> want(q.size()), got(q.size());
    ref::Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged,
                   pos.data(), 1.0f, want.data());
    Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged, pos.data(),
              1.0f, got.data());
    ExpectNear(got, want, 5e-5);
  }
}

void ExpectThreadIndependent(const Shape& s, const std::vector<Isa>& isas) {
  KvData kv(s, 16, 5);
  const std::vector<float> q = Normal(s.n_q * s.num_heads * s.head_dim, 6);
  const std::vector<int32_t> pos = CausalPositions(s);
  for (Isa isa : isas) {
    ForceIsa(isa);
    for (const int32_t* p : {static_cast<const int32_t*>(nullptr), pos.data()}) {
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        std::vector<float> out(q.size());
        Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged, p, 0.125f,
                  out.data(), &pool);
        if (first.empty()) {
          first = out;
        } else {
          ASSERT_EQ(out, first) << IsaName(isa) << " threads " << threads;
        }
      }
    }
  }
}

TEST_F(AttentionTest, ResultsDoNotDependOnThreadCount) {
  // Prefill tiles, and a decode long enough for the split-key path.
  for (const Shape& s : {Shape{70, 6, 2, 64, 150}, Shape{1, 9, 3, 64, 700}}) {
    ExpectThreadIndependent(s, Isas());
  }
}

// Timing, not a check: run with --gtest_also_run_disabled_tests. Reports wall time on
// the default pool and, because shared machines are often oversubscribed, also the CPU
// time of a single-threaded run (what one core delivers when it is not interrupted).
double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

TEST_F(AttentionTest, DISABLED_Throughput) {
  ThreadPool single(1);
  struct Times {
    double wall_ms, cpu_ms;
  };
  auto measure = [&](const Shape& s, bool causal, int reps) {
    KvData kv(s, 16, 1);
    const std::vector<float> q = Normal(s.n_q * s.num_heads * s.head_dim, 2);
    const std::vector<int32_t> pos = CausalPositions(s);
    std::vector<float> out(q.size());
    const int32_t* p = causal ? pos.data() : nullptr;
    Times best{1e30, 1e30};
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged, p, 0.125f,
                out.data(), &DefaultThreadPool());
      best.wall_ms = std::min(best.wall_ms, std::chrono::duration<double, std::milli>(
                                                std::chrono::steady_clock::now() - t0).count());
      const double c0 = CpuMs();
      Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.paged, p, 0.125f,
                out.data(), &single);
      best.cpu_ms = std::min(best.cpu_ms, CpuMs() - c0);
    }
    return best;
  };
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    const char* name = IsaName(isa).data();  // views a string literal: NUL-terminated
    const Times v = measure(Shape{1024, 12, 12, 64, 1024}, false, 5);
    const double gflop = 4.0 * 1024 * 1024 * 64 * 12 / 1e9;
    std::printf("%-7s vision n_q=kv=1024 12 heads hd 64: %d threads %.1f ms (%.1f GFLOP/s); "
                "1 thread CPU %.1f ms (%.1f GFLOP/s)\n",
                name, DefaultThreadPool().num_threads(), v.wall_ms, gflop / v.wall_ms * 1e3,
                v.cpu_ms, gflop / v.cpu_ms * 1e3);
    for (const Shape& d : {Shape{1, 14, 2, 64, 4096}, Shape{1, 32, 8, 128, 4096},
                           Shape{1, 32, 32, 128, 4096}}) {
      const Times t = measure(d, true, 20);
      std::printf("%-7s decode heads %ld/%ld hd %ld kv 4096: %d threads %.3f ms; "
                  "1 thread CPU %.3f ms\n",
                  name, d.num_heads, d.num_kv_heads, d.head_dim,
                  DefaultThreadPool().num_threads(), t.wall_ms, t.cpu_ms);
    }
  }
}

}  // namespace
}  // namespace vlserve::kernels
