// Attention over a 16-bit KV cache (KvView::type kF16 / kBF16), on every ISA: hand-checked
// widening, the reference on 16-bit storage, every kernel against it, and bit-equality
// with the float kernel run on the widened values (the kernels promise exactly that).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/ref/ops_ref.h"

namespace vlserve::kernels {
namespace {

struct Shape {
  int64_t n_q, num_heads, num_kv_heads, head_dim, length;
};

// `length` positions of K and V, [length, num_kv_heads, head_dim], as 16-bit bits in
// blocks of `block_size` (every block its own allocation, offset by one element so rows
// are misaligned), plus the same values widened to float in the same blocks.
struct Kv16 {
  Kv16(const Shape& s, DType type, int64_t block_size, uint32_t seed) : type(type) {
    const int64_t row = s.num_kv_heads * s.head_dim;
    const int64_t num_blocks = (s.length + block_size - 1) / block_size;
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.5f);
    for (int64_t b = 0; b < num_blocks; ++b) {
      for (int kv = 0; kv < 2; ++kv) {
        bits[kv].emplace_back(block_size * row + 1, 0);
        wide[kv].emplace_back(block_size * row + 1, 0.0f);
        for (int64_t i = 1; i <= block_size * row; ++i) {
          const float x = dist(rng);
          bits[kv][b][i] = type == DType::kF16 ? F32ToF16(x) : F32ToBf16(x);
          wide[kv][b][i] =
              type == DType::kF16 ? F16ToF32(bits[kv][b][i]) : Bf16ToF32(bits[kv][b][i]);
        }
      }
      for (int kv = 0; kv < 2; ++kv) {
        bits_ptr[kv].push_back(bits[kv][b].data() + 1);
        wide_ptr[kv].push_back(wide[kv][b].data() + 1);
      }
    }
    view16 = KvView{bits_ptr[0].data(), bits_ptr[1].data(), block_size, s.length, type};
    view32 = KvView{wide_ptr[0].data(), wide_ptr[1].data(), block_size, s.length, DType::kF32};
  }
  DType type;
  std::vector<std::vector<uint16_t>> bits[2];
  std::vector<std::vector<float>> wide[2];
  std::vector<const void*> bits_ptr[2], wide_ptr[2];
  KvView view16, view32;
};

std::vector<float> Normal(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

class AttentionKv16Test : public ::testing::Test {
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

// One visible key: every head's output is that key's value row, widened exactly. The
// values are chosen by hand (their float values written out here, not computed by the
// converters under test), and cover a subnormal half, a negative and a tail element.
TEST_F(AttentionKv16Test, OneVisibleKeyGivesItsValueWidenedExactly) {
  struct Case {
    DType type;
    std::vector<uint16_t> bits;  // V of the first position
    std::vector<float> want;
  };
  const Case cases[] = {
      {DType::kF16,
       {0x3C00, 0xC000, 0x3555, 0x0001, 0x7BFF, 0x8400, 0x3800, 0x4248, 0x0000, 0xBC00, 0x2E66,
        0x5640, 0x3C01, 0x03FF, 0xC900, 0x1400, 0x4500, 0x3BFF, 0x6400},
       {1.0f, -2.0f, 0.333251953125f, 5.9604644775390625e-8f, 65504.0f, -6.103515625e-5f, 0.5f,
        3.140625f, 0.0f, -1.0f, 0.0999755859375f, 100.0f, 1.0009765625f, 6.09755516052246094e-5f,
        -10.0f, 0.0009765625f, 5.0f, 0.99951171875f, 1024.0f}},
      {DType::kBF16,
       {0x3F80, 0xC000, 0x3EAB, 0x0001, 0x7F7F, 0x8080, 0x3F00, 0x4049, 0x0000, 0xBF80, 0x3DCD,
        0x42C8, 0x3F81, 0x4780, 0xC120, 0x3A80, 0x40A0, 0x3F7F, 0x4480},
       {1.0f, -2.0f, 0.333984375f, 9.18354961579912115e-41f, 3.38953138925153548e+38f,
        -1.17549435082228751e-38f, 0.5f, 3.140625f, 0.0f, -1.0f, 0.10009765625f, 100.0f, 1.0078125f,
        65536.0f, -10.0f, 0.0009765625f, 5.0f, 0.99609375f, 1024.0f}},
  };
  for (const Case& c : cases) {
    const int64_t hd = static_cast<int64_t>(c.bits.size());      // 19: vector part + tail
    std::vector<uint16_t> k(3 * hd, 0x3C00), v(3 * hd, 0x4000);  // 3 positions
    for (int64_t d = 0; d < hd; ++d) v[d] = c.bits[d];
    const void* kb = k.data();
    const void* vb = v.data();
    const KvView view{&kb, &vb, 3, 3, c.type};
    const std::vector<float> q = Normal(2 * hd, 7);
    for (Isa isa : Isas()) {
      ForceIsa(isa);
      for (int64_t n_q : {1, 2}) {  // decode kernel, and (scalar) the row-tile kernel
        SCOPED_TRACE(testing::Message()
                     << IsaName(isa) << " " << Info(c.type).name << " n_q " << n_q);
        const std::vector<int32_t> pos(n_q, 0);
        std::vector<float> out(n_q * hd);
        Attention(q.data(), n_q, 1, 1, hd, view, pos.data(), 0.5f, out.data());
        for (int64_t i = 0; i < n_q; ++i) {
          for (int64_t d = 0; d < hd; ++d) ASSERT_EQ(out[i * hd + d], c.want[d]) << "d " << d;
        }
      }
    }
  }
}

TEST_F(AttentionKv16Test, EveryIsaMatchesReferenceAndEqualsFloatKernelOnWidenedValues) {
  const Shape shapes[] = {
      {1, 14, 2, 64, 300},  // decode, GQA group 7 (row-tile kernel)
      {1, 4, 2, 64, 90},    // decode, 2 rows per kv head (few-row kernel)
      {40, 8, 1, 13, 57},   // MQA, odd head_dim (tails), several tiles
      {33, 6, 2, 80, 33},   // prefill = kv, head_dim 80
      {3, 2, 1, 128, 130},  // head_dim 128
      {1, 9, 3, 64, 1200},  // decode over a long history: split-key path
      {2, 4, 2, 32, 600},   // 4 rows per kv head, split keys
  };
  for (DType type : {DType::kF16, DType::kBF16}) {
    for (const Shape& s : shapes) {
      Kv16 kv(s, type, 16, static_cast<uint32_t>(s.length));
      const std::vector<float> q = Normal(s.n_q * s.num_heads * s.head_dim, 9);
      std::vector<int32_t> pos(s.n_q);
      for (int64_t i = 0; i < s.n_q; ++i) pos[i] = static_cast<int32_t>(s.length - s.n_q + i);
      const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
      std::vector<float> want(q.size()), want32(q.size());
      ref::Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.view16,
                     pos.data(), scale, want.data());
      ref::Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.view32,
                     pos.data(), scale, want32.data());
      ASSERT_EQ(want, want32) << "the reference must widen exactly";
      for (Isa isa : Isas()) {
        ForceIsa(isa);
        SCOPED_TRACE(testing::Message()
                     << IsaName(isa) << " " << Info(type).name << " n_q " << s.n_q << " heads "
                     << s.num_heads << "/" << s.num_kv_heads << " hd " << s.head_dim << " len "
                     << s.length);
        std::vector<float> got(q.size()), got32(q.size());
        Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.view16, pos.data(),
                  scale, got.data());
        Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.view32, pos.data(),
                  scale, got32.data());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-5) << i;
        ASSERT_EQ(got, got32);
        ThreadPool three(3);
        std::vector<float> threaded(q.size());
        Attention(q.data(), s.n_q, s.num_heads, s.num_kv_heads, s.head_dim, kv.view16, pos.data(),
                  scale, threaded.data(), &three);
        ASSERT_EQ(threaded, got);
      }
    }
  }
}

// Timing, not a check (--gtest_also_run_disabled_tests): one decode step's attention over
// 8192 positions in 8 layers' caches (more than the last-level cache, as in a model), each
// KV type in turn, several rounds. Reports the best single-thread CPU time (immune to
// preemption on a shared machine; memory stalls count) and wall time on the default pool.
TEST_F(AttentionKv16Test, DISABLED_DecodeThroughputByKvType) {
  constexpr int kLayers = 8;
  ThreadPool single(1);
  for (const Shape& s : {Shape{1, 9, 3, 64, 8192}, Shape{1, 12, 2, 128, 8192}}) {
    std::vector<std::unique_ptr<Kv16>> f16, bf16;
    for (int l = 0; l < kLayers; ++l) {
      f16.push_back(std::make_unique<Kv16>(s, DType::kF16, 16, 100 + l));
      bf16.push_back(std::make_unique<Kv16>(s, DType::kBF16, 16, 200 + l));
    }
    const std::vector<float> q = Normal(s.num_heads * s.head_dim, 3);
    const int32_t pos = static_cast<int32_t>(s.length - 1);
    std::vector<float> out(q.size());
    double best_cpu[3] = {1e30, 1e30, 1e30}, best_wall[3] = {1e30, 1e30, 1e30};
    for (int round = 0; round < 7; ++round) {
      for (int t = 0; t < 3; ++t) {
        auto view = [&](int l) -> const KvView& {
          return t == 0 ? f16[l]->view32 : t == 1 ? f16[l]->view16 : bf16[l]->view16;
        };
        timespec c0, c1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        for (int l = 0; l < kLayers; ++l) {
          Attention(q.data(), 1, s.num_heads, s.num_kv_heads, s.head_dim, view(l), &pos, 0.125f,
                    out.data(), &single);
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        best_cpu[t] =
            std::min(best_cpu[t], (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) * 1e-6);
        const auto w0 = std::chrono::steady_clock::now();
        for (int l = 0; l < kLayers; ++l) {
          Attention(q.data(), 1, s.num_heads, s.num_kv_heads, s.head_dim, view(l), &pos, 0.125f,
                    out.data());
        }
        best_wall[t] = std::min(best_wall[t], std::chrono::duration<double, std::milli>(
                                                  std::chrono::steady_clock::now() - w0)
                                                  .count());
      }
    }
    const char* names[3] = {"f32", "f16", "bf16"};
    for (int t = 0; t < 3; ++t) {
      std::printf(
          "%s decode heads %ld/%ld hd %ld kv %ld x %d layers, kv %-4s: 1 thread CPU "
          "%.2f ms (f32/this %.2fx); %d threads wall %.2f ms (f32/this %.2fx)\n",
          std::string(IsaName(ActiveIsa())).c_str(), static_cast<long>(s.num_heads),
          static_cast<long>(s.num_kv_heads), static_cast<long>(s.head_dim),
          static_cast<long>(s.length), kLayers, names[t], best_cpu[t], best_cpu[0] / best_cpu[t],
          DefaultThreadPool().num_threads(), best_wall[t], best_wall[0] / best_wall[t]);
    }
  }
}

}  // namespace
}  // namespace vlserve::kernels
