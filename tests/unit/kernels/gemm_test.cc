// The packed float GEMM (kernels/gemm_float.h) against a double-precision reference
// computed here, over shapes that exercise every tail: token counts around the 14-token
// register tile and 112-token work tile, rows around the 32-row panel and 128-row tile,
// odd k and k across the 256-element k blocks, misaligned weights and activations; and
// bit-identical results for 1, 2 and 3 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_float.h"
#include "kernels/kernels.h"

namespace vlserve::kernels {
namespace {

struct Case {
  DType type;
  int64_t rows, cols, n;
};

struct Data {
  std::vector<uint8_t> w_bytes;  // one spare element in front: misaligned weights
  std::vector<float> w_values;   // the weights as the reference sees them
  std::vector<float> x;          // one spare float in front: misaligned activations
};

Data MakeData(const Case& c, uint32_t seed) {
  Data d;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int64_t elem = c.type == DType::kF32 ? 4 : 2;
  d.w_bytes.resize((c.rows * c.cols + 1) * elem);
  d.w_values.resize(c.rows * c.cols);
  std::vector<float> src(c.rows * c.cols);
  for (auto& v : src) v = uni(rng);
  Quantize(c.type, src.data(), d.w_bytes.data() + elem, c.rows * c.cols);
  Dequantize(c.type, d.w_bytes.data() + elem, d.w_values.data(), c.rows * c.cols);
  d.x.resize(c.n * c.cols + 1);
  for (auto& v : d.x) v = uni(rng);
  return d;
}

// Asserts |y - ref| <= tol_rel · Σ|w·x| for every element, in double.
void ExpectClose(const Case& c, const Data& d, const std::vector<float>& y, double tol_rel) {
  const float* x = d.x.data() + 1;
  int bad = 0;
  for (int64_t t = 0; t < c.n; ++t) {
    for (int64_t r = 0; r < c.rows; ++r) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < c.cols; ++k) {
        const double p = double{d.w_values[r * c.cols + k]} * x[t * c.cols + k];
        ref += p;
        mag += std::fabs(p);
      }
      const double got = y[t * c.rows + r];
      if (!(std::fabs(got - ref) <= tol_rel * mag + 1e-30) && ++bad <= 5) {
        ADD_FAILURE() << Info(c.type).name << " " << c.rows << "x" << c.cols << " n=" << c.n
                      << " at token " << t << " row " << r << ": got " << got << ", want " << ref;
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

double Tolerance(DType type) {
  // F32 / F16 / widened BF16: one float FMA chain (≤ ~1e-6 relative for these k).
  // vdpbf16ps rounds activations to bf16: ≤ 2⁻⁹ relative per product, asserted 2⁻⁸.
  if (type == DType::kBF16 && internal::HasAvx512Bf16()) return 1.0 / 256;
  return 2e-6;
}

class GemmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsaAvailable(Isa::kAvx512)) GTEST_SKIP() << "the packed GEMM needs AVX-512";
    saved_ = ActiveIsa();
    ForceIsa(Isa::kAvx512);
  }
  void TearDown() override {
    if (IsaAvailable(Isa::kAvx512)) ForceIsa(saved_);
  }
  Isa saved_ = Isa::kScalar;
};

TEST_F(GemmTest, MatchesReferenceOnTails) {
  ThreadPool pool(2);
  const int64_t rows_list[] = {1, 31, 33, 161};
  const int64_t cols_list[] = {1, 7, 16, 17, 257, 600};
  const int64_t n_list[] = {1, 13, 14, 15, 29, 113, 130};
  uint32_t seed = 1;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t rows : rows_list) {
      for (int64_t cols : cols_list) {
        for (int64_t n : n_list) {
          // Keep the double reference quick: big shapes only with a few token counts.
          if (rows * cols * n > 4'000'000 && n != 130) continue;
          const Case c{type, rows, cols, n};
          const Data d = MakeData(c, seed++);
          const int64_t elem = type == DType::kF32 ? 4 : 2;
          const WeightView w{type, d.w_bytes.data() + elem, rows, cols};
          std::vector<float> y(n * rows, std::nanf(""));
          internal::GemmFloat(w, d.x.data() + 1, n, y.data(), &pool);
          ExpectClose(c, d, y, Tolerance(type));
        }
      }
    }
  }
}

TEST_F(GemmTest, MatMulRoutesPrefillAndMatchesReference) {
  // Through the public API at n >= kGemmMinTokens (the vision-tower shapes scaled down).
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16}) {
    const Case c{type, 96, 192, internal::GemmMinTokens(type) + 3};
    const Data d = MakeData(c, 77);
    const int64_t elem = type == DType::kF32 ? 4 : 2;
    std::vector<float> y(c.n * c.rows);
    MatMul(WeightView{type, d.w_bytes.data() + elem, c.rows, c.cols}, d.x.data() + 1, c.n,
           y.data());
    ExpectClose(c, d, y, Tolerance(type));
  }
}

TEST_F(GemmTest, BitIdenticalForAnyThreadCount) {
  for (DType type : {DType::kF32, DType::kBF16}) {
    const Case c{type, 300, 520, 270};  // several row tiles, token tiles and k blocks
    const Data d = MakeData(c, 5);
    const int64_t elem = type == DType::kF32 ? 4 : 2;
    const WeightView w{type, d.w_bytes.data() + elem, c.rows, c.cols};
    std::vector<float> base;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> y(c.n * c.rows);
      MatMul(w, d.x.data() + 1, c.n, y.data(), &pool);
      if (threads == 1) {
        base = y;
      } else {
        EXPECT_EQ(std::memcmp(base.data(), y.data(), y.size() * sizeof(float)), 0)
            << Info(type).name << " differs with " << threads << " threads";
      }
    }
  }
}

// RunGemmAvx512 with row strides wider than the data (weights, x and y).
TEST_F(GemmTest, StridedSpecMatchesReference) {
  const int64_t rows = 45, cols = 37, n = 31, ldw = 50, ldx = 41, ldy = 47;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> w(rows * ldw), x(n * ldx);
  for (auto* v : {&w, &x}) {
    for (auto& f : *v) f = uni(rng);
  }
  std::vector<float> y(n * ldy, -7.0f);
  const internal::GemmSpec spec{internal::GemmLayout::kF32, w.data(), ldw * 4, rows, cols,
                                x.data(), ldx, n, y.data(), ldy};
  internal::RunGemmAvx512(spec, nullptr);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (int64_t c = 0; c < cols; ++c) {
        ref += double{w[r * ldw + c]} * x[t * ldx + c];
        mag += std::fabs(double{w[r * ldw + c]} * x[t * ldx + c]);
      }
      ASSERT_NEAR(y[t * ldy + r], ref, 2e-6 * mag) << " t=" << t << " r=" << r;
    }
    for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(y[t * ldy + r], -7.0f);  // untouched
  }
}

}  // namespace
}  // namespace vlserve::kernels
