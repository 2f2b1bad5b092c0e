// MatMul on every ISA this CPU has, for every weight type, against a double-precision
// reference computed here from the dequantized weights. Tolerances bound the error of
// the activation rounding each kernel performs (int8 blocks, bf16) plus float rounding.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/matmul_fused.h"

namespace vlserve::kernels {
namespace {

const DType kTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0,
                        DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                        DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaAvailable(isa)) out.push_back(isa);
  }
  return out;
}

// Restores the ISA a test started with.
class IsaGuard {
 public:
  IsaGuard() : saved_(ActiveIsa()) {}
  ~IsaGuard() { ForceIsa(saved_); }

 private:
  Isa saved_;
};

struct Problem {
  DType type;
  int64_t rows, cols, n;
  std::vector<uint8_t> w;
  std::vector<float> wf;       // dequantized weights
  std::vector<float> x_store;  // x lives at x_store.data() + 1: deliberately misaligned
  const float* x() const { return x_store.data() + 1; }
};

Problem MakeProblem(DType type, int64_t rows, int64_t cols, int64_t n, uint32_t seed) {
  Problem p{type, rows, cols, n, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(rows * cols);
  for (auto& v : w) v = normal(rng);
  p.w.resize(RowBytes(type, cols) * rows);
  for (int64_t r = 0; r < rows; ++r) {
    Quantize(type, w.data() + r * cols, p.w.data() + r * RowBytes(type, cols), cols);
  }
  p.wf.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    Dequantize(type, p.w.data() + r * RowBytes(type, cols), p.wf.data() + r * cols, cols);
  }
  p.x_store.resize(n * cols + 1);
  for (auto& v : p.x_store) v = normal(rng) * 0.5f;
  // Outliers make per-block activation scales differ widely.
  for (int64_t i = 7; i < n * cols; i += 97) p.x_store[1 + i] *= 8.0f;
  return p;
}

// Per-element bound: the kernel may round each activation to int8 with step
// amax(block)/127 (error <= half a step), or to bf16 (relative 2^-9).
double Tolerance(const Problem& p, int64_t t, int64_t r, Isa isa) {
  const float* x = p.x() + t * p.cols;
  const float* w = p.wf.data() + r * p.cols;
  double abs_sum = 0;
  for (int64_t k = 0; k < p.cols; ++k) abs_sum += std::fabs(double(w[k]) * x[k]);
  double tol = 2e-5 * abs_sum + 1e-5;
  if (isa == Isa::kScalar) return tol;
  const bool k_quant = p.type == DType::kQ4_K || p.type == DType::kQ5_K || p.type == DType::kQ6_K;
  const bool q32 = p.type == DType::kQ8_0 || p.type == DType::kQ4_0 || p.type == DType::kQ4_1 ||
                   p.type == DType::kQ5_0 || p.type == DType::kQ5_1;
  if (p.type == DType::kBF16) return tol + abs_sum * std::ldexp(1.0, -8);
  if (!k_quant && !q32) return tol;
  const int64_t block = k_quant ? 256 : 32;
  for (int64_t b = 0; b < p.cols; b += block) {
    float amax = 0;
    for (int64_t k = b; k < b + block; ++k) amax = std::max(amax, std::fabs(x[k]));
    double wsum = 0;
    for (int64_t k = b; k < b + block; ++k) wsum += std::fabs(w[k]);
    tol += wsum * amax / 254.0 * 1.001;
  }
  return tol;
}

void CheckMatMul(const Problem& p, Isa isa, ThreadPool* pool, const void* prepacked = nullptr) {
  std::vector<float> y(p.n * p.rows, NAN);
  WeightView w{p.type, p.w.data(), p.rows, p.cols};
  w.prepacked = prepacked;
  MatMul(w, p.x(), p.n, y.data(), pool);
  for (int64_t t = 0; t < p.n; ++t) {
    for (int64_t r = 0; r < p.rows; ++r) {
      double want = 0;
      for (int64_t k = 0; k < p.cols; ++k) {
        want += double(p.wf[r * p.cols + k]) * p.x()[t * p.cols + k];
      }
      const double got = y[t * p.rows + r];
      ASSERT_NEAR(got, want, Tolerance(p, t, r, isa))
          << Info(p.type).name << " isa=" << IsaName(isa) << " rows=" << p.rows
          << " cols=" << p.cols << " n=" << p.n << " t=" << t << " r=" << r;
    }
  }
}

TEST(MatMulTest, EveryTypeEveryIsaMatchesReference) {
  IsaGuard guard;
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (DType type : kTypes) {
    const int64_t blk = std::max<int64_t>(Info(type).block_size, 32);
    const bool k_quant = Info(type).block_size == 256;
    // cols: one block, an odd number of 32-blocks, model-like widths; F32/F16/BF16 also
    // get widths that are not a multiple of the vector length.
    std::vector<int64_t> cols_list = k_quant ? std::vector<int64_t>{256, 768}
                                             : std::vector<int64_t>{32, 96, 576};
    if (Info(type).block_size == 1) cols_list.push_back(45);
    for (int64_t cols : cols_list) {
      if (cols % blk != 0 && Info(type).block_size != 1) continue;
      for (int64_t rows : {1, 37}) {
        for (int64_t n : {1, 2, 9}) {
          const Problem p = MakeProblem(type, rows, cols, n, seed++);
          for (Isa isa : AvailableIsas()) {
            ForceIsa(isa);
            CheckMatMul(p, isa, &pool);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

// K-quant matvec at the extremes of its integer ranges: every level at its maximum (all
// bits set) against activations of -1 (Q8_K -127 everywhere). The AVX-512 kernels pack
// 4-term vpdpbusd sums into int16 (|Σ| <= 63 · 127 · 4 for Q6_K), so a wrong bound would
// saturate here and miss the reference by far more than rounding.
TEST(MatMulTest, KQuantMatvecAtExtremeLevels) {
  IsaGuard guard;
  ThreadPool pool(2);
  const int64_t rows = 8, cols = 512;
  for (DType type : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    std::vector<uint8_t> w(RowBytes(type, cols) * rows, 0xFF);
    const int64_t block = RowBytes(type, 256);
    for (int64_t b = 0; b < rows * cols / 256; ++b) {
      uint8_t* blk = w.data() + b * block;
      const uint16_t one = 0x3C00, small = 0x2000;  // f16 1.0, and 2^-7 for dmin
      if (type == DType::kQ6_K) {
        std::memcpy(blk + 208, &one, 2);
        for (int i = 0; i < 16; ++i) blk[192 + i] = 0x7F;  // int8 scales at +127
      } else {
        std::memcpy(blk, &one, 2);
        std::memcpy(blk + 2, &small, 2);
      }
    }
    std::vector<float> wf(rows * cols), x(cols, -1.0f), y(rows, 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      Dequantize(type, w.data() + r * RowBytes(type, cols), wf.data() + r * cols, cols);
    }
    for (Isa isa : AvailableIsas()) {
      ForceIsa(isa);
      MatMul(WeightView{type, w.data(), rows, cols}, x.data(), 1, y.data(), &pool);
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          ref += double{wf[r * cols + c]} * x[c];
          mag += std::fabs(double{wf[r * cols + c]});
        }
        EXPECT_NEAR(y[r], ref, 1e-5 * mag)
            << Info(type).name << " " << IsaName(isa) << " row " << r;
      }
    }
  }
}

TEST(MatMulTest, LargerTileShapes) {
  IsaGuard guard;
  ThreadPool pool(3);
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                     DType::kQ4_K, DType::kQ6_K}) {
    const Problem p = MakeProblem(type, 70, 512, 19, 99);
    for (Isa isa : AvailableIsas()) {
      ForceIsa(isa);
      CheckMatMul(p, isa, &pool);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(MatMulTest, ResultsIndependentOfThreadCount) {
  IsaGuard guard;
  ThreadPool p1(1), p2(2), p3(3);
  for (DType type : kTypes) {
    const int64_t cols = Info(type).block_size == 256 ? 512 : 192;
    const Problem p = MakeProblem(type, 83, cols, 6, 7);
    for (Isa isa : AvailableIsas()) {
      ForceIsa(isa);
      std::vector<float> y1(p.n * p.rows), y2(y1.size()), y3(y1.size());
      const WeightView w{type, p.w.data(), p.rows, p.cols};
      MatMul(w, p.x(), p.n, y1.data(), &p1);
      MatMul(w, p.x(), p.n, y2.data(), &p2);
      MatMul(w, p.x(), p.n, y3.data(), &p3);
      EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * 4), 0)
          << Info(type).name << " " << IsaName(isa);
      EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * 4), 0)
          << Info(type).name << " " << IsaName(isa);
    }
  }
}

// Decode-sized calls (n * cols < 2^16) have every pool thread quantize the activations
// for itself (matmul.cc). For the kernels that path feeds, including the prepacked
// ones: bit-identical results for 1-4 threads, and two callers on their own pools at the
// same time get what each gets alone (each thread must write only its own scratch).
TEST(MatMulTest, PerThreadActivationsMatchAcrossThreadCountsAndCallers) {
  IsaGuard guard;
  ThreadPool p1(1), p2(2), p3(3), p4(4);
  uint32_t seed = 900;
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kBF16,
                     DType::kQ6_K}) {
    for (int64_t n : {1, 3, 8}) {
      const Problem p = MakeProblem(type, 72, 512, n, seed++);
      for (Isa isa : AvailableIsas()) {
        ForceIsa(isa);
        const AlignedBuffer<uint8_t> packed =
            PrepackWeights(WeightView{p.type, p.w.data(), p.rows, p.cols});
        WeightView w{p.type, p.w.data(), p.rows, p.cols};
        if (packed.size() > 0) w.prepacked = packed.data();
        const std::string where = std::string(Info(type).name) + " " +
                                  std::string(IsaName(isa)) + " n=" + std::to_string(n);
        std::vector<float> want(n * p.rows);
        MatMul(w, p.x(), n, want.data(), &p1);
        for (ThreadPool* pool : {&p2, &p3, &p4}) {
          std::vector<float> got(want.size());
          MatMul(w, p.x(), n, got.data(), pool);
          EXPECT_EQ(got, want) << where << " threads=" << pool->num_threads();
        }
        // A second input on another caller thread at the same time.
        const Problem q = MakeProblem(type, 72, 512, n, seed + 1000);
        std::vector<float> want_q(n * p.rows);
        MatMul(w, q.x(), n, want_q.data(), &p1);
        for (int round = 0; round < 20; ++round) {
          std::vector<float> got(want.size()), got_q(want.size());
          std::thread other([&] { MatMul(w, q.x(), n, got_q.data(), &p3); });
          MatMul(w, p.x(), n, got.data(), &p2);
          other.join();
          ASSERT_EQ(got, want) << where << " round " << round;
          ASSERT_EQ(got_q, want_q) << where << " round " << round;
        }
        double err = 0;
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t r = 0; r < p.rows; ++r) {
            double ref = 0;
            for (int64_t k = 0; k < p.cols; ++k) {
              ref += double(p.wf[r * p.cols + k]) * p.x()[t * p.cols + k];
            }
            err = std::max(err, std::fabs(want[t * p.rows + r] - ref) / Tolerance(p, t, r, isa));
          }
        }
        EXPECT_LE(err, 1.0) << where;
      }
    }
  }
}

TEST(MatMulTest, NullPoolUsesDefault) {
  const Problem p = MakeProblem(DType::kQ8_0, 5, 64, 2, 3);
  std::vector<float> y(p.n * p.rows);
  MatMul(WeightView{p.type, p.w.data(), p.rows, p.cols}, p.x(), p.n, y.data());
  double want = 0;
  for (int64_t k = 0; k < p.cols; ++k) want += double(p.wf[k]) * p.x()[k];
  EXPECT_NEAR(y[0], want, Tolerance(p, 0, 0, Isa::kAvx512));
}

// n >= 64 takes the repacked-panel prefill kernel on AVX-512 for Q8_0/Q4_0/Q5_0; rows
// 53 and 16 exercise the partial 16-row panel and the single-panel path.
TEST(MatMulTest, PrefillSizedBatchesMatchReference) {
  IsaGuard guard;
  ThreadPool pool(2);
  uint32_t seed = 500;
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_1, DType::kF16}) {
    for (int64_t rows : {53, 16}) {
      const Problem p = MakeProblem(type, rows, 96, 70, seed++);
      for (Isa isa : AvailableIsas()) {
        ForceIsa(isa);
        CheckMatMul(p, isa, &pool);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// MatMulFused over matrices sharing x gives exactly what separate MatMul calls give.
TEST(MatMulTest, FusedEqualsSeparateCalls) {
  IsaGuard guard;
  ThreadPool pool(2);
  for (DType type : {DType::kQ8_0, DType::kQ4_K, DType::kF32}) {
    const int64_t cols = Info(type).block_size == 256 ? 256 : 64;
    for (int64_t n : {1, 5, 66}) {
      const Problem a = MakeProblem(type, 40, cols, n, 7), b = MakeProblem(type, 24, cols, n, 8);
      for (Isa isa : AvailableIsas()) {
        ForceIsa(isa);
        const WeightView ws[2] = {{type, a.w.data(), a.rows, cols}, {type, b.w.data(), b.rows, cols}};
        std::vector<float> ya(n * a.rows), yb(n * b.rows), fa(ya.size()), fb(yb.size());
        MatMul(ws[0], a.x(), n, ya.data(), &pool);
        MatMul(ws[1], a.x(), n, yb.data(), &pool);
        float* const ys[2] = {fa.data(), fb.data()};
        MatMulFused(ws, ys, 2, a.x(), n, &pool);
        EXPECT_EQ(fa, ya) << Info(type).name << " n=" << n << " " << IsaName(isa);
        EXPECT_EQ(fb, yb) << Info(type).name << " n=" << n << " " << IsaName(isa);
      }
    }
  }
}

}  // namespace
}  // namespace vlserve::kernels

namespace vlserve::kernels {
namespace {

// Repeated weight rows times repeated tokens must give bit-identical outputs wherever
// they fall in the register tiling (interior tiles reduce several rows at once, edge tiles
// one by one; a different addition tree would make results depend on the row chunking).
// Row r repeats row r % 5, token t repeats token t % 3.
TEST(MatMulTest, RepeatedRowsAndTokensGiveIdenticalOutputs) {
  IsaGuard guard;
  ThreadPool pool(2);
  constexpr int64_t kRowPeriod = 5, kTokenPeriod = 3, rows = 43;
  for (DType type : kTypes) {
    const int64_t cols = Info(type).block_size == 256 ? 512 : 160;
    for (int64_t n : {1, 7, 13}) {
      Problem p = MakeProblem(type, rows, cols, n, 11 + static_cast<uint32_t>(n));
      const int64_t row_bytes = RowBytes(type, cols);
      for (int64_t r = kRowPeriod; r < rows; ++r) {
        std::memcpy(p.w.data() + r * row_bytes, p.w.data() + (r % kRowPeriod) * row_bytes,
                    row_bytes);
      }
      std::vector<float> x(p.x(), p.x() + n * cols);
      for (int64_t t = kTokenPeriod; t < n; ++t) {
        std::copy_n(x.begin() + (t % kTokenPeriod) * cols, cols, x.begin() + t * cols);
      }
      for (Isa isa : AvailableIsas()) {
        ForceIsa(isa);
        std::vector<float> y(n * rows, NAN);
        MatMul(WeightView{type, p.w.data(), rows, cols}, x.data(), n, y.data(), &pool);
        int64_t mismatches = 0, first = -1;
        for (int64_t i = 0; i < n * rows; ++i) {
          const float want = y[(i / rows % kTokenPeriod) * rows + i % rows % kRowPeriod];
          if (std::memcmp(&y[i], &want, 4) != 0 && mismatches++ == 0) first = i;
        }
        EXPECT_EQ(mismatches, 0) << Info(type).name << " n=" << n << " " << IsaName(isa)
                                 << ", first at t=" << first / rows << " r=" << first % rows;
      }
    }
  }
}

}  // namespace
}  // namespace vlserve::kernels

namespace vlserve::kernels {
namespace {

// Q8_0 prepacked once for the AVX-512 VNNI kernel: every n (decode included) against the
// float reference, and bit-identical to the per-call repack (n >= 8) it replaces; other
// ISAs ignore the prepacked copy.
TEST(MatMulTest, PrepackedQ8_0MatchesReferenceAndPerCallRepack) {
  IsaGuard guard;
  if (!IsaAvailable(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  if (const char* env = std::getenv("VLSERVE_PREPACK"); env && std::string(env) == "0") {
    GTEST_SKIP() << "VLSERVE_PREPACK=0 turns prepacking off";
  }
  ThreadPool pool(2);
  uint32_t seed = 40;
  for (int64_t rows : {1, 16, 37, 53}) {
    for (int64_t cols : {32, 160, 576}) {
      // 250: more than one 240-token block of the prepacked kernel, with a ragged tail.
      for (int64_t n : {1, 3, 8, 13, 250}) {
        const Problem p = MakeProblem(DType::kQ8_0, rows, cols, n, seed++);
        ForceIsa(Isa::kAvx512);
        const AlignedBuffer<uint8_t> packed =
            PrepackWeights(WeightView{p.type, p.w.data(), p.rows, p.cols});
        ASSERT_GT(packed.size(), 0u);
        for (Isa isa : AvailableIsas()) {
          ForceIsa(isa);
          CheckMatMul(p, isa, &pool, packed.data());
          if (HasFatalFailure()) return;
        }
        ForceIsa(Isa::kAvx512);
        if (n >= 8) {
          WeightView w{p.type, p.w.data(), p.rows, p.cols};
          std::vector<float> repacked(n * rows), pre(n * rows);
          MatMul(w, p.x(), n, repacked.data(), &pool);
          w.prepacked = packed.data();
          MatMul(w, p.x(), n, pre.data(), &pool);
          EXPECT_EQ(pre, repacked) << "rows=" << rows << " cols=" << cols << " n=" << n;
        }
      }
    }
  }
  // Types without a prepacked kernel are not prepacked.
  const Problem q4 = MakeProblem(DType::kQ4_1, 16, 64, 1, 1);
  EXPECT_EQ(PrepackWeights(WeightView{q4.type, q4.w.data(), 16, 64}).size(), 0u);
}

// For Q4_0 / Q4_K, whose prepacked copy has the file's byte count: the AVX-512 MatMul
// on the copy against the float reference; then, on the int8 panel kernel, bit-identical
// to the same kernel reading the file's layout, else each token bit-identical to a
// single-token call (a token's arithmetic must not depend on its place in the batch).
void CheckPrepackedSameSize(const Problem& p, ThreadPool* pool, bool panel_kernel) {
  ForceIsa(Isa::kAvx512);
  const AlignedBuffer<uint8_t> packed =
      PrepackWeights(WeightView{p.type, p.w.data(), p.rows, p.cols});
  ASSERT_EQ(packed.size(), p.w.size());
  CheckMatMul(p, Isa::kAvx512, pool, packed.data());
  if (::testing::Test::HasFatalFailure()) return;
  WeightView w{p.type, p.w.data(), p.rows, p.cols};
  w.prepacked = packed.data();
  std::vector<float> batch(p.n * p.rows), one(p.rows);
  MatMul(w, p.x(), p.n, batch.data(), pool);
  const std::string where =
      "rows=" + std::to_string(p.rows) + " cols=" + std::to_string(p.cols) + " n=" +
      std::to_string(p.n);
  if (panel_kernel) {
    std::vector<float> file(p.n * p.rows);
    MatMul(WeightView{p.type, p.w.data(), p.rows, p.cols}, p.x(), p.n, file.data(), pool);
    EXPECT_EQ(batch, file) << where;
    return;
  }
  for (int64_t t = 0; t < p.n; ++t) {
    MatMul(w, p.x() + t * p.cols, 1, one.data(), pool);
    EXPECT_TRUE(std::equal(one.begin(), one.end(), batch.begin() + t * p.rows))
        << where << " token " << t;
  }
}

// Q4_0 prepacked into 4-row groups of 8/4/2/1-block groups: every n against the float
// reference, with column counts whose block counts exercise each group size (15 blocks
// = 8 + 4 + 2 + 1). On the dot-product kernel (fewer than 16 tokens; 48 when the
// columns are a multiple of 256) each token's result is bit-identical to a matrix-vector
// product of that token alone (its arithmetic must not depend on its place in the
// batch); on the int8 panel kernel (its panels unpacked from the prepacked copy) it is
// bit-identical to the same kernel reading the file's layout.
TEST(MatMulTest, PrepackedQ4_0AndQ5_0MatchReferenceAndOtherPaths) {
  IsaGuard guard;
  if (!IsaAvailable(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  if (const char* env = std::getenv("VLSERVE_PREPACK"); env && std::string(env) == "0") {
    GTEST_SKIP() << "VLSERVE_PREPACK=0 turns prepacking off";
  }
  ThreadPool pool(2);
  uint32_t seed = 70;
  for (DType type : {DType::kQ4_0, DType::kQ5_0})
  for (int64_t rows : {4, 20, 52}) {
    for (int64_t cols : {32, 64, 128, 224, 256, 480, 576, 800}) {
      for (int64_t n : {1, 3, 6, 13, 16, 21, 50}) {
        const Problem p = MakeProblem(type, rows, cols, n, seed++);
        CheckPrepackedSameSize(p, &pool, /*panel_kernel=*/n >= (cols % 256 == 0 ? 48 : 16));
        if (HasFatalFailure()) return;
      }
    }
  }
  // Row counts that are not a multiple of the 4-row groups keep the file's layout.
  const Problem odd = MakeProblem(DType::kQ4_0, 18, 64, 1, 1);
  EXPECT_EQ(PrepackWeights(WeightView{odd.type, odd.w.data(), 18, 64}).size(), 0u);
}

// Q4_K prepacked into 4-row groups with sub-block-interleaved levels: every n against the
// float reference, each token bit-identical to a single-token call, and with weights at
// the extremes (all levels 15 and 6-bit scales / mins 63) so that no int16 / int32 sum
// can overflow unnoticed.
TEST(MatMulTest, PrepackedQ4_KMatchesReferenceAndSingleTokenCalls) {
  IsaGuard guard;
  if (!IsaAvailable(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  if (const char* env = std::getenv("VLSERVE_PREPACK"); env && std::string(env) == "0") {
    GTEST_SKIP() << "VLSERVE_PREPACK=0 turns prepacking off";
  }
  ThreadPool pool(2);
  uint32_t seed = 90;
  for (int64_t rows : {4, 20, 36}) {
    for (int64_t cols : {256, 768, 2048}) {
      for (int64_t n : {1, 2, 5, 9}) {
        Problem p = MakeProblem(DType::kQ4_K, rows, cols, n, seed++);
        if (seed % 3 == 0) {  // extreme levels and scales in every block of row 0
          for (int64_t b = 0; b < cols / 256; ++b) {
            uint8_t* blk = p.w.data() + b * 144;
            std::memset(blk + 4, 0xff, 12);   // every 6-bit scale and min = 63
            std::memset(blk + 16, 0xff, 128);  // every level = 15
          }
          Dequantize(p.type, p.w.data(), p.wf.data(), cols);
        }
        CheckPrepackedSameSize(p, &pool, /*panel_kernel=*/false);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(MatMulTest, FusedPrepackedEqualsSeparateCalls) {
  IsaGuard guard;
  if (!IsaAvailable(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  ForceIsa(Isa::kAvx512);
  ThreadPool pool(3);
  const Problem a = MakeProblem(DType::kQ8_0, 40, 96, 5, 51);
  const Problem b = MakeProblem(DType::kQ8_0, 24, 96, 5, 52);
  WeightView ws[2] = {{a.type, a.w.data(), a.rows, 96}, {b.type, b.w.data(), b.rows, 96}};
  const AlignedBuffer<uint8_t> pa = PrepackWeights(ws[0]), pb = PrepackWeights(ws[1]);
  ws[0].prepacked = pa.data();
  ws[1].prepacked = pb.data();
  std::vector<float> ya(5 * 40), yb(5 * 24), fa(ya.size()), fb(yb.size());
  MatMul(ws[0], a.x(), 5, ya.data(), &pool);
  MatMul(ws[1], a.x(), 5, yb.data(), &pool);
  float* const ys[2] = {fa.data(), fb.data()};
  MatMulFused(ws, ys, 2, a.x(), 5, &pool);
  EXPECT_EQ(fa, ya);
  EXPECT_EQ(fb, yb);
}

}  // namespace
}  // namespace vlserve::kernels
