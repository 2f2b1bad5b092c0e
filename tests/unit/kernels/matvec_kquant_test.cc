// Decode-path (n = 1) kernels at model-like shapes, and the AVX-512 Q8_K activation
// quantizer against the scalar reference (bit for bit).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/ref/quant_ref.h"

namespace vlserve::kernels {
namespace internal {
void QuantizeActRowQ8KAvx512(const float* x, int64_t cols, ActQ8K* dst);
}  // namespace internal
namespace {

TEST(MatVecKQuantTest, Q8KQuantizerMatchesReferenceBitForBit) {
  if (!IsaAvailable(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t cols = 256 * 6;
  std::vector<float> x(cols);
  for (auto& v : x) v = normal(rng);
  // Block 1: all zero; block 2: ties of +a and -a (the first one decides the sign);
  // block 3: values exactly halfway between levels; block 4: one huge outlier.
  std::fill(x.begin() + 256, x.begin() + 512, 0.0f);
  x[512 + 3] = -4.0f;
  x[512 + 100] = 4.0f;
  for (int j = 0; j < 256; ++j) x[768 + j] = static_cast<float>(j % 20) - 9.5f;
  x[768] = -127.0f;  // iscale = 1 exactly: every other value is a rounding tie
  x[1024 + 7] = 1e4f;
  std::vector<ActQ8K> want(cols / 256), got(cols / 256);
  ref::QuantizeActQ8K(x.data(), want.data(), cols);
  internal::QuantizeActRowQ8KAvx512(x.data(), cols, got.data());
  for (size_t b = 0; b < want.size(); ++b) {
    EXPECT_EQ(std::memcmp(want[b].qs, got[b].qs, 256), 0) << "block " << b;
    EXPECT_EQ(std::memcmp(want[b].bsums, got[b].bsums, sizeof(want[b].bsums)), 0) << b;
    EXPECT_EQ(want[b].d, got[b].d) << "block " << b;
  }
  // max is -4 (the first of the tie): iscale = -127 / -4 > 0, so d > 0.
  EXPECT_GT(got[2].d, 0.0f);
}

// y = W·x for one token against a double reference from the dequantized weights, with the
// activation-rounding bound of matmul_test.cc. Rows are not a multiple of the 4-row tile,
// and there are enough to span several work units and the prefetch distance.
TEST(MatVecKQuantTest, ModelShapesMatchReference) {
  struct IsaRestore {  // also on an early ASSERT return
    Isa saved = ActiveIsa();
    ~IsaRestore() { ForceIsa(saved); }
  } restore;
  ThreadPool pool(2);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DType type :
       {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_0, DType::kQ4_0, DType::kQ5_0}) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{203, 1536}, {67, 2048}}) {
      std::vector<float> wf(rows * cols);
      for (auto& v : wf) v = normal(rng);
      const int64_t rb = RowBytes(type, cols);
      std::vector<uint8_t> w(rb * rows);
      Quantize(type, wf.data(), w.data(), rows * cols);
      std::vector<float> deq(rows * cols);
      Dequantize(type, w.data(), deq.data(), rows * cols);
      std::vector<float> x(cols);
      for (auto& v : x) v = normal(rng);
      const int64_t blk = Info(type).block_size;
      for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
        if (!IsaAvailable(isa)) continue;
        ForceIsa(isa);
        std::vector<float> y(rows, NAN);
        MatMul(WeightView{type, w.data(), rows, cols}, x.data(), 1, y.data(), &pool);
        for (int64_t r = 0; r < rows; ++r) {
          double want = 0, tol = 1e-5;
          for (int64_t k = 0; k < cols; ++k) want += double(deq[r * cols + k]) * x[k];
          for (int64_t b = 0; b < cols; b += blk) {
            double amax = 0, wsum = 0, asum = 0;
            for (int64_t k = b; k < b + blk; ++k) {
              amax = std::max(amax, double(std::fabs(x[k])));
              wsum += std::fabs(deq[r * cols + k]);
              asum += std::fabs(deq[r * cols + k] * x[k]);
            }
            tol += wsum * amax / 254.0 * 1.001 + 2e-5 * asum;
          }
          ASSERT_NEAR(y[r], want, tol) << Info(type).name << " " << rows << "x" << cols << " row "
                                       << r << " " << IsaName(isa);
        }
      }
    }
  }
}

}  // namespace
}  // namespace vlserve::kernels
