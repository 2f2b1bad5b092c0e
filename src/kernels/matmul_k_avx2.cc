// AVX2 MatMul kernels for Q4_K / Q5_K / Q6_K against ActQ8K activations. Per 32 values:
// vpmaddubsw (unsigned levels x int8 activations -> int16 pair sums, no saturation since
// 2 * 63 * 127 < 32767), vpmaddwd by the int16 sub-block scale, int32 accumulate.
#include <immintrin.h>

#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/matmul_tiling.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {
namespace {

inline float Hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float LoadF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline __m256i Load32(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Per-row data of one super-block: 8 ymm of 32 levels (values 32q .. 32q+31), the int16
// scale vector of each, and for the offset term 16 int16 weights w16[k] such that the
// correction is Σ_k w16[k] * bsums[k] (times cmul).
struct KRow {
  __m256i q[8];
  __m256i sc[8];
  int16_t corr[16];
  float d, cmul;  // y += d·da·Σ(q·sc·a) - cmul·da·Σ corr·bsums
};

inline void DecodeQ45K(const uint8_t* b, bool five, KRow* k) {
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) GetScaleMinK4(j, b + 4, &sc[j], &m[j]);
  const uint8_t* qs = b + (five ? 48 : 16);
  const __m256i mask = _mm256_set1_epi8(0x0f);
  const __m256i qh = five ? Load32(b + 16) : _mm256_setzero_si256();
  for (int g = 0; g < 4; ++g) {
    const __m256i v = Load32(qs + 32 * g);
    __m256i lo = _mm256_and_si256(v, mask), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    if (five) {
      const __m256i b0 = _mm256_set1_epi8(static_cast<char>(1 << (2 * g)));
      const __m256i b1 = _mm256_set1_epi8(static_cast<char>(1 << (2 * g + 1)));
      lo = _mm256_or_si256(lo, _mm256_and_si256(
                                   _mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0),
                                   _mm256_set1_epi8(16)));
      hi = _mm256_or_si256(hi, _mm256_and_si256(
                                   _mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1),
                                   _mm256_set1_epi8(16)));
    }
    k->q[2 * g] = lo;
    k->q[2 * g + 1] = hi;
  }
  for (int j = 0; j < 8; ++j) {
    k->sc[j] = _mm256_set1_epi16(sc[j]);
    k->corr[2 * j] = k->corr[2 * j + 1] = m[j];
  }
  k->d = LoadF16(b);
  k->cmul = LoadF16(b + 2);
}

inline void DecodeQ6K(const uint8_t* b, KRow* k) {
  const __m256i mask = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
  for (int c = 0; c < 2; ++c) {
    const __m256i ql0 = Load32(b + 64 * c), ql1 = Load32(b + 64 * c + 32);
    const __m256i qh = Load32(b + 128 + 32 * c);
    auto hbits = [&](int s) {
      return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, s), three), 4);
    };
    k->q[4 * c + 0] = _mm256_or_si256(_mm256_and_si256(ql0, mask), hbits(0));
    k->q[4 * c + 1] = _mm256_or_si256(_mm256_and_si256(ql1, mask), hbits(2));
    k->q[4 * c + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask), hbits(4));
    k->q[4 * c + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask), hbits(6));
  }
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int q = 0; q < 8; ++q) {
    k->sc[q] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * q + 1]), _mm_set1_epi16(sc[2 * q]));
  }
  for (int j = 0; j < 16; ++j) k->corr[j] = sc[j];
  k->d = LoadF16(b + 208);
  k->cmul = 32 * k->d;
}

template <int kType>  // 4, 5 or 6
struct KTile {
  const uint8_t* w;
  int64_t w_stride;
  const ActQ8K* act;
  int64_t nbk;
  float* y;
  int64_t rows;
  static constexpr int kBytes = kType == 4 ? 144 : kType == 5 ? 176 : 210;

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m256 acc[R][T];
    float corr_acc[R][T] = {};
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    KRow k[R];
    for (int64_t b = 0; b < nbk; ++b) {
      for (int i = 0; i < R; ++i) {
        const uint8_t* blk = w + (r + i) * w_stride + b * kBytes;
        if constexpr (kType == 6) DecodeQ6K(blk, &k[i]);
        else DecodeQ45K(blk, kType == 5, &k[i]);
      }
      for (int j = 0; j < T; ++j) {
        const ActQ8K& ab = act[(t + j) * nbk + b];
        for (int i = 0; i < R; ++i) {
          __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int q = 0; q < 8; ++q) {
            const __m256i p16 = _mm256_maddubs_epi16(k[i].q[q], Load32(reinterpret_cast<const uint8_t*>(ab.qs) + 32 * q));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p16, k[i].sc[q]));
          }
          int32_t c = 0;
          for (int m = 0; m < 16; ++m) c += k[i].corr[m] * ab.bsums[m];
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(k[i].d * ab.d),
                                      acc[i][j]);
          corr_acc[i][j] += k[i].cmul * ab.d * static_cast<float>(c);
        }
      }
    }
    for (int j = 0; j < T; ++j)
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = Hsum8(acc[i][j]) - corr_acc[i][j];
  }
};

template <int kType>
void KKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const KTile<kType> tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                          static_cast<const ActQ8K*>(a.act.data), w.cols / kQKK, a.y, w.rows};
  if (a.n == 1) return DriveTiles<1, 1>(tile, r0, r1, 1, 1);
  DriveTiles<1, 4>(tile, r0, r1, a.n, TokenTile(a.act.stride, 4));
}

}  // namespace

KernelChoice Avx2KQuantKernel(DType type) {
  switch (type) {
    case DType::kQ4_K: return {ActKind::kQ8K, KKernel<4>};
    case DType::kQ5_K: return {ActKind::kQ8K, KKernel<5>};
    case DType::kQ6_K: return {ActKind::kQ8K, KKernel<6>};
    default: return {ActKind::kF32, nullptr};
  }
}

}  // namespace vlserve::kernels::internal
