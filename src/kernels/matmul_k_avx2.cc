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
  __m256i corr;   // int16 w16[0..15]
  float d, cmul;  // y += d·da·Σ(q·sc·a) - cmul·da·Σ corr·bsums
};

// The 12 packed 6-bit scales/mins of a Q4_K / Q5_K super-block -> bytes [sc0..sc7,
// m0..m7], with byte shuffles instead of per-sub-block scalar bit fiddling. Reads 16
// bytes from p (the 4 after the scales belong to the same block).
inline __m128i UnpackScalesK4(const uint8_t* p) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  // sc0..3 = q0..3 & 63, sc4..7 = (q8..11 & 15) | (q0..3 >> 6) << 4,
  // m0..3 = q4..7 & 63,  m4..7 = (q8..11 >> 4) | (q4..7 >> 6) << 4.
  const __m128i a = _mm_shuffle_epi8(q, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7,
                                                      8, 9, 10, 11));
  const __m128i h = _mm_shuffle_epi8(q, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1,
                                                      -1, 4, 5, 6, 7));
  const __m128i lo = _mm_blendv_epi8(
      _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15,
                                     15, 15)),
      _mm_and_si128(_mm_srli_epi16(a, 4), _mm_set1_epi8(15)),
      _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1));
  return _mm_or_si128(lo, _mm_srli_epi16(_mm_and_si128(h, _mm_set1_epi8(char(0xC0))), 2));
}

// ymm whose int16 lanes 0..7 = word w0 of `words` and lanes 8..15 = word w1 (each 128-bit
// half of `words` holds the same 8 words).
inline __m256i PickWords(__m256i words, int w0, int w1) {
  const short p0 = static_cast<short>((2 * w0) | ((2 * w0 + 1) << 8));
  const short p1 = static_cast<short>((2 * w1) | ((2 * w1 + 1) << 8));
  return _mm256_shuffle_epi8(words, _mm256_set_m128i(_mm_set1_epi16(p1), _mm_set1_epi16(p0)));
}

inline void DecodeQ45K(const uint8_t* b, bool five, KRow* k) {
  const __m128i sm = UnpackScalesK4(b + 4);
  const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));  // sc0..7 twice
  const __m256i m32 = _mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8));          // m0..7
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
  for (int j = 0; j < 8; ++j) k->sc[j] = PickWords(sc16, j, j);
  k->corr = _mm256_or_si256(m32, _mm256_slli_epi32(m32, 16));  // m_j for bsums 2j, 2j+1
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
  const __m256i sc =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
  const __m256i lo = _mm256_permute2x128_si256(sc, sc, 0x00);  // sc0..7 in both halves
  const __m256i hi = _mm256_permute2x128_si256(sc, sc, 0x11);  // sc8..15
  for (int q = 0; q < 4; ++q) k->sc[q] = PickWords(lo, 2 * q, 2 * q + 1);
  for (int q = 4; q < 8; ++q) k->sc[q] = PickWords(hi, 2 * q - 8, 2 * q - 7);
  k->corr = sc;
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
    __m256 acc[R][T], corr_acc[R][T];
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < T; ++j) acc[i][j] = corr_acc[i][j] = _mm256_setzero_ps();
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
          // Σ corr·bsums as 8 int32 pair sums (|corr| <= 128, |bsums| <= 2032: no overflow).
          const __m256i c =
              _mm256_madd_epi16(k[i].corr, Load32(reinterpret_cast<const uint8_t*>(ab.bsums)));
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(k[i].d * ab.d),
                                      acc[i][j]);
          corr_acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c),
                                           _mm256_set1_ps(k[i].cmul * ab.d), corr_acc[i][j]);
        }
      }
    }
    for (int j = 0; j < T; ++j)
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = Hsum8(acc[i][j]) - Hsum8(corr_acc[i][j]);
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
