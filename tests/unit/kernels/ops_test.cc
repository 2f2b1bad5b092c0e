// Element-wise / row ops: the scalar references against hand-computed values, then every
// ISA's kernels against the references over sizes, tails, misalignment and extreme inputs.
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "kernels/ref/ops_ref.h"

namespace vlserve::kernels {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Runs every available ISA; restores the previous choice afterwards.
class OpsIsaSweep : public ::testing::Test {
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

std::vector<int64_t> Sizes() {
  std::vector<int64_t> s;
  for (int64_t n = 1; n <= 70; ++n) s.push_back(n);
  for (int64_t n : {95, 127, 128, 129, 191, 255, 256, 257, 300, 1023, 4099}) s.push_back(n);
  return s;
}

std::vector<float> Normal(int64_t n, uint32_t seed, float stddev = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Activation inputs: a dense grid on [-12, 12], a log grid out to ±1e4, and noise.
std::vector<float> ActivationInputs() {
  std::vector<float> v;
  for (int i = -2400; i <= 2400; ++i) v.push_back(i * 0.005f);
  for (double m = 1e-6; m <= 1e4; m *= 1.07) {
    v.push_back(static_cast<float>(m));
    v.push_back(static_cast<float>(-m));
  }
  for (float x : Normal(997, 7, 3.0f)) v.push_back(x);
  v.push_back(0.0f);
  v.push_back(-0.0f);
  return v;
}

// |got - want| <= rtol |want| + atol, element-wise.
void ExpectClose(const float* got, const float* want, int64_t n, double rtol, double atol,
                 const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(std::isfinite(got[i]) || !std::isfinite(want[i]))
        << what << " [" << i << "] = " << got[i] << " want " << want[i];
    ASSERT_LE(std::fabs(static_cast<double>(got[i]) - want[i]), rtol * std::fabs(want[i]) + atol)
        << what << " [" << i << "] of " << n << ": got " << got[i] << " want " << want[i];
  }
}

// ---- references against values computed independently here ----

long double Sigmoid(long double x) { return 1.0L / (1.0L + std::exp(-x)); }

TEST(OpsRefTest, RmsNormAndLayerNormKnownVector) {
  const float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, -1};
  float y[4];
  ref::RmsNorm(x, w, 0.0f, 4, y);
  const double r = 1.0 / std::sqrt(7.5);  // mean of squares = 30 / 4
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], x[i] * r * w[i], 1e-7);
  ref::LayerNorm(x, nullptr, nullptr, 0.0f, 4, y);  // mean 2.5, biased var 1.25
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], (x[i] - 2.5) / std::sqrt(1.25), 1e-7);
  const float b[4] = {0.5f, 0, 0, -0.5f};
  ref::LayerNorm(x, w, b, 0.25f, 4, y);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], (x[i] - 2.5) / std::sqrt(1.5) * w[i] + b[i], 1e-7);
}

TEST(OpsRefTest, SoftmaxKnownValuesAndMasks) {
  float x[4] = {0.0f, std::log(2.0f), std::log(3.0f), -kInf};
  ref::Softmax(x, 4);
  EXPECT_NEAR(x[0], 1.0 / 6, 1e-7);
  EXPECT_NEAR(x[1], 2.0 / 6, 1e-7);
  EXPECT_NEAR(x[2], 3.0 / 6, 1e-7);
  EXPECT_EQ(x[3], 0.0f);
  float masked[3] = {-kInf, -kInf, -kInf};
  ref::Softmax(masked, 3);
  for (float v : masked) EXPECT_EQ(v, 0.0f);
}

TEST(OpsRefTest, ActivationsMatchTheirFormulas) {
  const long double kSqrt2OverPi = std::sqrt(2.0L / 3.14159265358979323846L);
  for (float x : {-6.0f, -3.0f, -1.0f, -0.5f, -1e-3f, 0.0f, 1e-3f, 0.5f, 1.0f, 3.0f, 6.0f}) {
    const long double v = x;
    const long double want_tanh =
        0.5L * v * (1.0L + std::tanh(kSqrt2OverPi * (v + 0.044715L * v * v * v)));
    const long double want_erf = 0.5L * v * (1.0L + std::erf(v / std::sqrt(2.0L)));
    const long double want_quick = v * Sigmoid(1.702L * v);
    const long double want_silu = v * Sigmoid(v);
    float a = x, b = x, c = x, d = x;
    ref::GeluTanh(&a, 1);
    ref::GeluErf(&b, 1);
    ref::QuickGelu(&c, 1);
    ref::Silu(&d, 1);
    EXPECT_NEAR(a, want_tanh, 1e-6 * std::fabs(want_tanh) + 1e-12) << x;
    EXPECT_NEAR(b, want_erf, 1e-6 * std::fabs(want_erf) + 1e-12) << x;
    EXPECT_NEAR(c, want_quick, 1e-6 * std::fabs(want_quick) + 1e-12) << x;
    EXPECT_NEAR(d, want_silu, 1e-6 * std::fabs(want_silu) + 1e-12) << x;
  }
  float one = 1.0f;
  ref::GeluErf(&one, 1);
  EXPECT_NEAR(one, 0.8413447460685429, 1e-7);  // Φ(1)
  float g[2] = {2.0f, -1.0f}, u[2] = {3.0f, 5.0f}, o[2];
  ref::SwiGlu(g, u, o, 2);
  EXPECT_NEAR(o[0], 2.0 * Sigmoid(2.0L) * 3.0, 1e-6);
  EXPECT_NEAR(o[1], -1.0 * Sigmoid(-1.0L) * 5.0, 1e-6);
}

TEST(OpsRefTest, RopeKnownRotations) {
  // pos 0 is the identity, in both styles.
  std::vector<float> x = Normal(2 * 8, 3), y = x;
  ref::Rope(y.data(), 2, 8, 8, 0, 10000.0f, RopeStyle::kNormal);
  EXPECT_EQ(x, y);
  ref::Rope(y.data(), 2, 8, 8, 0, 10000.0f, RopeStyle::kNeox);
  EXPECT_EQ(x, y);
  // Normal: pair i of dims 4 rotates by pos * 100^(-i/2) for base 100: i=0 → pos, i=1 → pos/10.
  float v[6] = {1, 0, 0, 1, 7, 8};
  ref::Rope(v, 1, 6, 4, 3, 100.0f, RopeStyle::kNormal);
  EXPECT_NEAR(v[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(v[1], std::sin(3.0), 1e-6);
  EXPECT_NEAR(v[2], -std::sin(0.3), 1e-6);
  EXPECT_NEAR(v[3], std::cos(0.3), 1e-6);
  EXPECT_EQ(v[4], 7.0f);  // beyond rope_dims: untouched
  EXPECT_EQ(v[5], 8.0f);
  // Neox: (x[i], x[i + 2]) pairs.
  float w[4] = {1, 1, 0, 0};
  ref::Rope(w, 1, 4, 4, 3, 100.0f, RopeStyle::kNeox);
  EXPECT_NEAR(w[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(w[2], std::sin(3.0), 1e-6);
  EXPECT_NEAR(w[1], std::cos(0.3), 1e-6);
  EXPECT_NEAR(w[3], std::sin(0.3), 1e-6);
}

TEST(OpsRefTest, MultiAxisRopeTakesEachPairFromItsAxis) {
  // Contiguous sections {1, 2, 1, 0} over 4 pairs (rope_dims 8): pair 0 -> t, 1-2 -> h,
  // 3 -> w. Pair i must equal plain RoPE at that axis' position.
  RopeSections mrope;
  mrope.pairs = {1, 2, 1, 0};
  EXPECT_EQ(mrope.AxisOfPair(0), 0);
  EXPECT_EQ(mrope.AxisOfPair(1), 1);
  EXPECT_EQ(mrope.AxisOfPair(2), 1);
  EXPECT_EQ(mrope.AxisOfPair(3), 2);
  EXPECT_EQ(mrope.AxisOfPair(4), 0);  // sections repeat past their sum
  const int32_t pos[4] = {5, 11, 23, 0};
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    const std::vector<float> x = Normal(2 * 10, 9);
    std::vector<float> got = x;
    ref::RopeMulti(got.data(), 2, 10, 8, pos, 1000.0f, style, mrope);
    for (int64_t i = 0; i < 4; ++i) {
      std::vector<float> want = x;
      ref::Rope(want.data(), 2, 10, 8, pos[mrope.AxisOfPair(i)], 1000.0f, style);
      for (int64_t h = 0; h < 2; ++h) {
        const int64_t a = style == RopeStyle::kNormal ? 2 * i : i;
        const int64_t b = style == RopeStyle::kNormal ? 2 * i + 1 : i + 4;
        EXPECT_EQ(got[h * 10 + a], want[h * 10 + a]) << "pair " << i;
        EXPECT_EQ(got[h * 10 + b], want[h * 10 + b]) << "pair " << i;
      }
    }
    EXPECT_EQ(got[8], x[8]);  // past rope_dims: not rotated
    EXPECT_EQ(got[19], x[19]);
  }
  // Interleaved (Qwen3-VL): h at i % 3 == 1 below 3 * pairs[1], w at i % 3 == 2 below
  // 3 * pairs[2], t elsewhere.
  RopeSections imrope;
  imrope.pairs = {2, 1, 1, 0};
  imrope.interleaved = true;
  const int32_t want_axes[6] = {0, 1, 2, 0, 0, 0};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(imrope.AxisOfPair(i), want_axes[i]) << i;
  // No sections: plain RoPE on axis 0.
  EXPECT_EQ(RopeSections{}.AxisOfPair(3), 0);
}

// ---- every ISA against the references ----

// Calls op on a copy of `in` placed `offset` floats past a 64-byte boundary.
template <class Op>
std::vector<float> RunAt(const std::vector<float>& in, int offset, Op op) {
  std::vector<float> buf(in.size() + 16);
  float* p = buf.data() + offset;
  std::copy(in.begin(), in.end(), p);
  op(p, static_cast<int64_t>(in.size()));
  return std::vector<float>(p, p + in.size());
}

struct Unary {
  const char* name;
  void (*fast)(float*, int64_t);
  void (*ref)(float*, int64_t);
};

TEST_F(OpsIsaSweep, ActivationsMatchReference) {
  const Unary ops[] = {{"Silu", Silu, ref::Silu},
                       {"GeluTanh", GeluTanh, ref::GeluTanh},
                       {"GeluErf", GeluErf, ref::GeluErf},
                       {"QuickGelu", QuickGelu, ref::QuickGelu}};
  const std::vector<float> in = ActivationInputs();
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    SCOPED_TRACE(std::string(IsaName(isa)));
    for (const Unary& op : ops) {
      std::vector<float> want = in;
      op.ref(want.data(), static_cast<int64_t>(want.size()));
      for (int offset : {0, 1, 3}) {
        std::vector<float> got = RunAt(in, offset, op.fast);
        // Deep in the negative tail (|result| < 1e-6) the float rounding of the exponent's
        // argument k·x adds |k·x|·~1.5e-7 relative error, as in PyTorch's float kernels.
        ExpectClose(got.data(), want.data(), static_cast<int64_t>(in.size()), 2e-6, 1e-12, op.name);
      }
      for (int64_t n : Sizes()) {  // tails and sizes
        const int64_t start = (static_cast<int64_t>(in.size()) - n) / 2;
        std::vector<float> part(in.begin() + start, in.begin() + start + n);
        std::vector<float> got = RunAt(part, 1, op.fast);
        ExpectClose(got.data(), want.data() + start, n, 2e-6, 1e-12, op.name);
      }
    }
  }
}

TEST_F(OpsIsaSweep, TailsDoNotTouchNeighbours) {
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    for (int64_t n : {1, 7, 15, 17, 33}) {
      std::vector<float> buf(n + 32, 5.0f);
      Silu(buf.data() + 8, n);
      Softmax(buf.data() + 8, n);
      for (int i = 0; i < 8; ++i) EXPECT_EQ(buf[i], 5.0f);
      for (int64_t i = n + 8; i < n + 32; ++i) EXPECT_EQ(buf[i], 5.0f) << IsaName(isa);
    }
  }
}

TEST_F(OpsIsaSweep, NormsMatchReference) {
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    SCOPED_TRACE(std::string(IsaName(isa)));
    for (int64_t n : Sizes()) {
      for (float mean : {0.0f, 100.0f}) {  // an offset stresses LayerNorm's variance
        const std::vector<float> x = Normal(n, 11 + n, 2.0f, mean);
        const std::vector<float> w = Normal(n, 12 + n), b = Normal(n, 13 + n);
        std::vector<float> want(n), got(n + 3);
        ref::RmsNorm(x.data(), w.data(), 1e-6f, n, want.data());
        RmsNorm(x.data(), w.data(), 1e-6f, n, got.data() + 3);
        ExpectClose(got.data() + 3, want.data(), n, 3e-6, 1e-6, "RmsNorm");
        ref::LayerNorm(x.data(), w.data(), b.data(), 1e-5f, n, want.data());
        LayerNorm(x.data(), w.data(), b.data(), 1e-5f, n, got.data() + 3);
        ExpectClose(got.data() + 3, want.data(), n, 1e-5, 2e-5, "LayerNorm");
        ref::LayerNorm(x.data(), nullptr, nullptr, 1e-5f, n, want.data());
        std::vector<float> inplace = x;  // y aliases x
        LayerNorm(inplace.data(), nullptr, nullptr, 1e-5f, n, inplace.data());
        ExpectClose(inplace.data(), want.data(), n, 1e-5, 2e-5, "LayerNorm in place");
      }
    }
  }
}

TEST_F(OpsIsaSweep, SoftmaxMatchesReference) {
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    SCOPED_TRACE(std::string(IsaName(isa)));
    for (int64_t n : Sizes()) {
      std::vector<float> x = Normal(n, 21 + n, 10.0f);
      for (int64_t i = 0; i < n; i += 3) x[i] = -kInf;  // masked entries
      if (n > 2) x[1] = 80.0f;                           // large logits: max subtraction
      std::vector<float> want = x;
      ref::Softmax(want.data(), n);
      std::vector<float> got = RunAt(x, 2, Softmax);
      ExpectClose(got.data(), want.data(), n, 3e-6, 1e-12, "Softmax");
      double sum = 0;
      for (float v : got) sum += v;
      if (n > 1 || x[0] != -kInf) {
        EXPECT_NEAR(sum, 1.0, 1e-5) << n;
      }
    }
    std::vector<float> masked(37, -kInf);
    Softmax(masked.data(), 37);
    for (float v : masked) EXPECT_EQ(v, 0.0f);
  }
}

TEST_F(OpsIsaSweep, SwiGluAndAddMatchReference) {
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    SCOPED_TRACE(std::string(IsaName(isa)));
    for (int64_t n : Sizes()) {
      const std::vector<float> g = Normal(n, 31 + n, 4.0f), u = Normal(n, 32 + n);
      std::vector<float> want(n), got(n + 1);
      ref::SwiGlu(g.data(), u.data(), want.data(), n);
      SwiGlu(g.data(), u.data(), got.data() + 1, n);
      ExpectClose(got.data() + 1, want.data(), n, 2e-6, 1e-30, "SwiGlu");
      ref::Add(g.data(), u.data(), want.data(), n);
      Add(g.data(), u.data(), got.data() + 1, n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i + 1], want[i]);
      }
    }
  }
}

TEST_F(OpsIsaSweep, RopeMatchesReference) {
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
      for (int64_t head_dim : {2, 8, 64, 80, 128}) {
        for (int64_t rope_dims : {head_dim, head_dim / 2 / 2 * 2}) {
          if (rope_dims == 0) continue;
          for (int64_t pos : {0, 1, 17, 4095, 100000, 17}) {
            const std::vector<float> x = Normal(3 * head_dim, 41 + pos, 3.0f);
            std::vector<float> want = x, got = x;
            ref::Rope(want.data(), 3, head_dim, rope_dims, pos, 1e6f, style);
            Rope(got.data(), 3, head_dim, rope_dims, pos, 1e6f, style);
            ExpectClose(got.data(), want.data(), 3 * head_dim, 0, 5e-6, "Rope");
          }
        }
      }
    }
  }
}

TEST_F(OpsIsaSweep, MultiAxisRopeMatchesReference) {
  RopeSections sections[3];
  sections[0].pairs = {16, 24, 24, 0};  // Qwen2-VL, head_dim 128
  sections[1].pairs = {24, 20, 20, 0};  // Qwen3-VL, interleaved
  sections[1].interleaved = true;
  sections[2].pairs = {8, 12, 12, 0};   // GLM-4.1V: partial rotary over 64 of 128
  const int64_t rope_dims[3] = {128, 128, 64};
  for (Isa isa : Isas()) {
    ForceIsa(isa);
    for (int k = 0; k < 3; ++k) {
      for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
        for (const auto& p : {std::array<int32_t, 4>{0, 0, 0, 0}, {7, 9, 30, 0},
                              {4000, 4003, 4001, 0}, {7, 9, 30, 0}}) {
          const std::vector<float> x = Normal(3 * 128, 77 + p[1], 3.0f);
          std::vector<float> want = x, got = x;
          ref::RopeMulti(want.data(), 3, 128, rope_dims[k], p.data(), 1e6f, style, sections[k]);
          RopeMulti(got.data(), 3, 128, rope_dims[k], p.data(), 1e6f, style, sections[k]);
          ExpectClose(got.data(), want.data(), 3 * 128, 0, 5e-6, "RopeMulti");
          // Every axis at the same position: the same as plain RoPE.
          const int32_t same[4] = {p[0], p[0], p[0], p[0]};
          std::vector<float> multi = x, plain = x;
          RopeMulti(multi.data(), 3, 128, rope_dims[k], same, 1e6f, style, sections[k]);
          Rope(plain.data(), 3, 128, rope_dims[k], p[0], 1e6f, style);
          ExpectClose(multi.data(), plain.data(), 3 * 128, 0, 0, "RopeMulti == Rope");
        }
      }
    }
  }
}

}  // namespace
}  // namespace vlserve::kernels
