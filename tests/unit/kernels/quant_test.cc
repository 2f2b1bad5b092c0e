// Dequantization against hand-built blocks (expected values computed here from the
// ggml layout definitions), exact f16/bf16 conversions, and quantization error bounds.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels {
namespace {

__attribute__((target("f16c"))) uint16_t HwF32ToF16(float f) { return _cvtss_sh(f, 0); }
__attribute__((target("f16c"))) float HwF16ToF32(uint16_t h) { return _cvtsh_ss(h); }

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // ties to even rounds up to inf
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);       // tie -> even (0)
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);       // tie -> even (2)
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(F16ToF32(0xfc00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7e00)));
  EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(NAN))));
}

TEST(HalfTest, AllHalvesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), h) << "h=" << h;
  }
}

TEST(HalfTest, MatchesF16cHardware) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C on this CPU";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float hw = HwF16ToF32(static_cast<uint16_t>(h));
    const float sw = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(hw)) { ASSERT_TRUE(std::isnan(sw)); continue; }
    ASSERT_EQ(std::memcmp(&hw, &sw, 4), 0) << "h=" << h;
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), HwF32ToF16(f)) << "bits=" << u;
  }
}

TEST(Bf16Test, RoundsToNearestEven) {
  auto bits = [](uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; };
  EXPECT_EQ(F32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBf16(bits(0x3f808000)), 0x3f80);  // tie, even stays
  EXPECT_EQ(F32ToBf16(bits(0x3f818000)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(F32ToBf16(bits(0x3f808001)), 0x3f81);
  EXPECT_EQ(Bf16ToF32(0xc040), -3.0f);
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(NAN))));
}

std::vector<float> Deq(DType type, const void* data, int64_t n) {
  std::vector<float> out(n);
  Dequantize(type, data, out.data(), n);
  return out;
}

TEST(DequantizeTest, Q4_0) {
  BlockQ4_0 b;
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto y = Deq(DType::kQ4_0, &b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f);
    EXPECT_EQ(y[j + 16], (7 - j) * 0.5f);
  }
}

TEST(DequantizeTest, Q4_1) {
  BlockQ4_1 b;
  b.d = 0x4000;  // 2
  b.m = 0xbc00;  // -1
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((j % 16) | (((j * 3) % 16) << 4));
  const auto y = Deq(DType::kQ4_1, &b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * j - 1);
    EXPECT_EQ(y[j + 16], 2.0f * ((j * 3) % 16) - 1);
  }
}

// Value j of a 5-bit block: 4 low bits from qs (j < 16 low nibble of qs[j], else high
// nibble of qs[j-16]) and bit 4 from bit j of the little-endian 32-bit qh.
void Build5(const int* q, uint8_t* qs, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4));
  for (int j = 0; j < 32; ++j) h |= static_cast<uint32_t>(q[j] >> 4) << j;
  for (int i = 0; i < 4; ++i) qh[i] = static_cast<uint8_t>(h >> (8 * i));
}

TEST(DequantizeTest, Q5_0AndQ5_1) {
  int q[32];
  for (int j = 0; j < 32; ++j) q[j] = (j * 7 + 3) % 32;
  BlockQ5_0 b0;
  b0.d = 0x3400;  // 0.25
  Build5(q, b0.qs, b0.qh);
  BlockQ5_1 b1;
  b1.d = 0x3c00;  // 1
  b1.m = 0x4200;  // 3
  Build5(q, b1.qs, b1.qh);
  const auto y0 = Deq(DType::kQ5_0, &b0, 32);
  const auto y1 = Deq(DType::kQ5_1, &b1, 32);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(y0[j], (q[j] - 16) * 0.25f) << j;
    EXPECT_EQ(y1[j], q[j] + 3.0f) << j;
  }
}

TEST(DequantizeTest, Q8_0) {
  BlockQ8_0 b;
  b.d = 0x2e66;  // 0.0999755859375
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  const auto y = Deq(DType::kQ8_0, &b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.0999755859375f);
}

// K-quant 6-bit scale packing (ggml): j < 4: scales[j] = sc, scales[j+4] = m (low 6
// bits); j >= 4: scales[j+4] = sc_lo4 | m_lo4 << 4, top 2 bits of sc in scales[j-4]
// bits 6-7 and of m in scales[j] bits 6-7.
void PackScalesK4(const int* sc, const int* m, uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] |= sc[j];
      s[j + 4] |= m[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((sc[j] & 15) | ((m[j] & 15) << 4));
      s[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
}

TEST(DequantizeTest, Q4KAndQ5K) {
  int sc[8], m[8], q[256];
  for (int j = 0; j < 8; ++j) { sc[j] = 63 - 5 * j; m[j] = 7 * j + 9; }
  for (int i = 0; i < 256; ++i) q[i] = (i * 13 + 5) % 32;
  BlockQ4K b4;
  BlockQ5K b5;
  b4.d = b5.d = 0x3000;     // 0.125
  b4.dmin = b5.dmin = 0x2c00;  // 0.0625
  PackScalesK4(sc, m, b4.scales);
  PackScalesK4(sc, m, b5.scales);
  // Value i: group g = i / 64, half h = (i % 64) / 32, l = i % 32; sub-block 2g + h.
  std::memset(b4.qs, 0, sizeof(b4.qs));
  std::memset(b5.qs, 0, sizeof(b5.qs));
  std::memset(b5.qh, 0, sizeof(b5.qh));
  for (int i = 0; i < 256; ++i) {
    const int g = i / 64, h = (i % 64) / 32, l = i % 32;
    b4.qs[32 * g + l] |= static_cast<uint8_t>((q[i] & 15) << (4 * h));
    b5.qs[32 * g + l] |= static_cast<uint8_t>((q[i] & 15) << (4 * h));
    b5.qh[l] |= static_cast<uint8_t>((q[i] >> 4) << (2 * g + h));
  }
  const auto y4 = Deq(DType::kQ4_K, &b4, 256);
  const auto y5 = Deq(DType::kQ5_K, &b5, 256);
  for (int i = 0; i < 256; ++i) {
    const int s = i / 32;
    EXPECT_EQ(y4[i], 0.125f * sc[s] * (q[i] & 15) - 0.0625f * m[s]) << i;
    EXPECT_EQ(y5[i], 0.125f * sc[s] * q[i] - 0.0625f * m[s]) << i;
  }
}

TEST(DequantizeTest, Q6K) {
  int q[256];
  int8_t sc[16];
  for (int i = 0; i < 256; ++i) q[i] = (i * 29 + 11) % 64;
  for (int j = 0; j < 16; ++j) sc[j] = static_cast<int8_t>(j * 17 - 128);
  BlockQ6K b;
  std::memset(&b, 0, sizeof(b));
  b.d = 0x2400;  // 2^-6
  std::memcpy(b.scales, sc, 16);
  // Value i: chunk c = i / 128, r = i % 128, quarter k = r / 32, l = r % 32.
  // Low 4 bits: ql[64c + l + 32*(k & 1)], nibble k / 2; high 2 bits: qh[32c + l] bits 2k.
  for (int i = 0; i < 256; ++i) {
    const int c = i / 128, r = i % 128, k = r / 32, l = r % 32;
    b.ql[64 * c + l + 32 * (k & 1)] |= static_cast<uint8_t>((q[i] & 15) << (4 * (k / 2)));
    b.qh[32 * c + l] |= static_cast<uint8_t>((q[i] >> 4) << (2 * k));
  }
  const auto y = Deq(DType::kQ6_K, &b, 256);
  for (int i = 0; i < 256; ++i) {
    EXPECT_EQ(y[i], 0.015625f * sc[i / 16] * (q[i] - 32)) << i;
  }
}

TEST(DequantizeTest, FloatTypes) {
  const uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};
  const auto y = Deq(DType::kF16, h, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(y[3], 65504.0f);
  const uint16_t b[2] = {0x3f80, 0xc040};
  const auto z = Deq(DType::kBF16, b, 2);
  EXPECT_EQ(z[0], 1.0f);
  EXPECT_EQ(z[1], -3.0f);
}

struct ErrorCase {
  DType type;
  float max_cos_error;    // test-quantize-fns metric and threshold
  float max_gauss_rel;    // RMSE / sigma on N(0, 1) data
};

// llama.cpp's test-quantize-fns: data 0.1 + 2 cos(i + offset), n = 4096, error =
// sqrt(Σ diff²) / n, threshold 0.002 for every type here. The Gaussian bounds are ~15%
// above the figures measured for these quantizers (docs/bench-kernels.md).
const ErrorCase kErrorCases[] = {
    {DType::kF16, 0.002f, 0.00025f}, {DType::kBF16, 0.002f, 0.0020f},
    {DType::kQ8_0, 0.002f, 0.0062f}, {DType::kQ4_0, 0.002f, 0.099f},
    {DType::kQ4_1, 0.002f, 0.090f},  {DType::kQ5_0, 0.002f, 0.049f},
    {DType::kQ5_1, 0.002f, 0.044f},  {DType::kQ4_K, 0.002f, 0.083f},
    {DType::kQ5_K, 0.002f, 0.042f},  {DType::kQ6_K, 0.002f, 0.0205f},
};

double RoundTripSquaredError(DType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(RowBytes(type, x.size()));
  Quantize(type, x.data(), q.data(), x.size());
  const auto y = Deq(type, q.data(), x.size());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return sum;
}

TEST(QuantizeTest, RoundTripErrorWithinLlamaCppBounds) {
  const int64_t n = 32 * 128;
  std::vector<float> cosine(n), gauss(256 * 256);
  for (int64_t i = 0; i < n; ++i) cosine[i] = 0.1f + 2 * std::cos(i + 0.0f);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : gauss) v = normal(rng);
  for (const ErrorCase& c : kErrorCases) {
    const double cos_err = std::sqrt(RoundTripSquaredError(c.type, cosine)) / n;
    const double rel = std::sqrt(RoundTripSquaredError(c.type, gauss) / gauss.size());
    std::printf("%-5s cos-metric %.6f  gaussian rmse/sigma %.5f\n",
                std::string(Info(c.type).name).c_str(), cos_err, rel);
    EXPECT_LT(cos_err, c.max_cos_error) << Info(c.type).name;
    EXPECT_LT(rel, c.max_gauss_rel) << Info(c.type).name;
  }
}

TEST(QuantizeTest, ZerosAndConstantsAreExact) {
  for (const ErrorCase& c : kErrorCases) {
    std::vector<float> zeros(256, 0.0f);
    EXPECT_EQ(RoundTripSquaredError(c.type, zeros), 0.0) << Info(c.type).name;
  }
}

TEST(QuantizeTest, Q8_0MatchesFormula) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = (j - 10) * 0.37f;
  BlockQ8_0 b;
  Quantize(DType::kQ8_0, x.data(), &b, 32);
  const float d = 21 * 0.37f / 127;  // amax / 127
  EXPECT_EQ(b.d, F32ToF16(d));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b.qs[j], static_cast<int>(std::round(x[j] * (1.0f / d)))) << j;
}

}  // namespace
}  // namespace vlserve::kernels
