// AttentionBidirectional (kernels/attention_bidir.h) against a double-precision
// softmax(scale·q·kᵀ)·v computed here: every ISA, strided rows, tails around the bf16
// kernel's 32-query panels and 14-key / 8-dim tiles, the bf16 variant within its rounding
// bound, and bit-identical results for 1, 2 and 3 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/attention_bidir.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels {
namespace {

struct Shape {
  int64_t n, heads, head_dim, ld;
};

struct Qkv {
  std::vector<float> q, k, v;
};

Qkv Make(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Qkv d;
  for (auto* x : {&d.q, &d.k, &d.v}) {
    x->resize(s.n * s.ld);
    for (auto& f : *x) f = normal(rng);
  }
  return d;
}

// Max |out - ref| over the valid entries, relative to max |v|. With round_bf16 the
// reference first rounds q, k and v to bf16 (what the bf16 path multiplies), so that only
// the rounding of the probabilities and the f32 accumulation remain as differences.
double MaxError(const Shape& s, const Qkv& d_in, const std::vector<float>& out, float scale,
                bool round_bf16 = false) {
  Qkv d = d_in;
  if (round_bf16) {
    for (auto* x : {&d.q, &d.k, &d.v}) {
      for (float& f : *x) f = Bf16ToF32(F32ToBf16(f));
    }
  }
  double err = 0, vmax = 0;
  for (float x : d.v) vmax = std::max(vmax, double{std::fabs(x)});
  std::vector<double> p(s.n);
  for (int64_t h = 0; h < s.heads; ++h) {
    for (int64_t i = 0; i < s.n; ++i) {
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < s.n; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < s.head_dim; ++c) {
          dot += double{d.q[i * s.ld + h * s.head_dim + c]} * d.k[j * s.ld + h * s.head_dim + c];
        }
        p[j] = scale * dot;
        mx = std::max(mx, p[j]);
      }
      for (int64_t j = 0; j < s.n; ++j) sum += p[j] = std::exp(p[j] - mx);
      for (int64_t c = 0; c < s.head_dim; ++c) {
        double o = 0;
        for (int64_t j = 0; j < s.n; ++j) o += p[j] / sum * d.v[j * s.ld + h * s.head_dim + c];
        err = std::max(err, std::fabs(o - out[i * s.ld + h * s.head_dim + c]));
      }
    }
  }
  return err / vmax;
}

class AttentionBidirTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = ActiveIsa(); }
  void TearDown() override { ForceIsa(saved_); }
  Isa saved_ = Isa::kScalar;
};

TEST_F(AttentionBidirTest, MatchesReferenceOnEveryIsa) {
  const Shape shapes[] = {{1, 1, 8, 8}, {5, 2, 20, 48}, {17, 3, 16, 50}, {70, 2, 64, 128},
                          {250, 2, 64, 128}};  // > 2 query blocks of 112, with a tail
  ThreadPool pool(2);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaAvailable(isa)) continue;
    ForceIsa(isa);
    for (const Shape& s : shapes) {
      const Qkv d = Make(s, static_cast<uint32_t>(s.n));
      const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
      for (bool bf16 : {false, true}) {
        std::vector<float> out(s.n * s.ld, 12345.0f);
        AttentionBidirectional(d.q.data(), d.k.data(), d.v.data(), s.n, s.heads, s.head_dim,
                               s.ld, scale, bf16, out.data(), &pool);
        // bf16 rounds q, k (scores off by ~2⁻⁸·|s|), probabilities and v: ~1% of max |v|.
        const bool rounded = bf16 && isa == Isa::kAvx512 && internal::HasAvx512Bf16();
        EXPECT_LE(MaxError(s, d, out, scale), rounded ? 3e-2 : 2e-5)
            << IsaName(isa) << " n=" << s.n << " hd=" << s.head_dim << " bf16=" << bf16;
        // Columns past the heads (row stride > width) are left alone.
        if (s.ld > s.heads * s.head_dim) {
          EXPECT_EQ(out[s.heads * s.head_dim], 12345.0f);
        }
      }
    }
  }
}

// The bf16 path against a reference that rounds its operands the same way: what is left
// is the bf16 rounding of the probabilities (≤ 2⁻⁹ relative each) and f32 sums, so the
// bound is ~20× tighter than the one above. Shapes cover the 32-query panels, the 14-key
// score tiles and the 8-dim output tiles with tails, odd n (a key pair with one key),
// odd head_dim (a dim pair with one dim) and the SigLIP-so400m head_dim of 72.
TEST_F(AttentionBidirTest, Bf16MatchesBf16RoundedReference) {
  if (!IsaAvailable(Isa::kAvx512) || !internal::HasAvx512Bf16()) {
    GTEST_SKIP() << "needs AVX512_BF16";
  }
  ForceIsa(Isa::kAvx512);
  const Shape shapes[] = {{1, 1, 8, 8},    {2, 1, 2, 2},      {31, 2, 9, 20},  {33, 3, 72, 216},
                          {47, 1, 20, 24}, {129, 2, 64, 130}, {301, 1, 72, 72}};
  ThreadPool pool(2);
  for (const Shape& s : shapes) {
    Qkv d = Make(s, static_cast<uint32_t>(7 * s.n + s.head_dim));
    // Peaked attention rows too: large scores make a few probabilities dominate.
    for (float& f : d.q) f *= 3.0f;
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    std::vector<float> out(s.n * s.ld, 12345.0f);
    AttentionBidirectional(d.q.data(), d.k.data(), d.v.data(), s.n, s.heads, s.head_dim, s.ld,
                           scale, true, out.data(), &pool);
    EXPECT_LE(MaxError(s, d, out, scale, /*round_bf16=*/true), 1.5e-3)
        << "n=" << s.n << " heads=" << s.heads << " hd=" << s.head_dim;
    if (s.ld > s.heads * s.head_dim) {
      EXPECT_EQ(out[s.heads * s.head_dim], 12345.0f);
    }
  }
}

TEST_F(AttentionBidirTest, BitIdenticalForAnyThreadCount) {
  const Shape s{150, 5, 32, 160};
  const Qkv d = Make(s, 9);
  for (bool bf16 : {false, true}) {
    std::vector<float> base;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> out(s.n * s.ld, 0.0f);
      AttentionBidirectional(d.q.data(), d.k.data(), d.v.data(), s.n, s.heads, s.head_dim, s.ld,
                             0.125f, bf16, out.data(), &pool);
      if (threads == 1) {
        base = out;
      } else {
        EXPECT_EQ(std::memcmp(base.data(), out.data(), out.size() * sizeof(float)), 0)
            << threads << " threads, bf16=" << bf16;
      }
    }
  }
}

}  // namespace
}  // namespace vlserve::kernels
