// AVX-512 VNNI MatMul kernels for the quantized weight types. Activations arrive
// quantized to int8 (ActKind::kQ8 / kQ8K); products use vpdpbusd, which multiplies
// *unsigned* by *signed* bytes:
//   Q4_0/Q5_0/Q4_1/Q5_1: weights are unsigned levels 0..15 / 0..31 (first operand); the
//     zero-point offset (8 / 16) is folded in by starting the accumulator at
//     -offset * Σa, and the Q*_1 min term is added as m·da·Σa in float.
//   Q8_0: weights are signed, so activations become unsigned (a + 128, an XOR) and the
//     accumulator starts at -128 * Σw.
//   K-quants: levels are unsigned; per-sub-block scales multiply the int32 lanes and
//     the mins / the Q6_K offset are subtracted using the activation block sums.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "kernels/matmul_internal.h"
#include "kernels/matmul_tiling.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {
namespace {

// Rows ahead that a matrix-vector product prefetches into L2 (~10-26 KiB at small-model
// widths). Measured on Zen 4, 576-wide Q8_0, 2 threads: T1 at 16 rows streams ~30% faster
// than T0 at 8 (L1-targeted prefetches evict the lines still being used).
constexpr int64_t kPrefetchRows = 16;

inline __m512i HalfIndex() { return _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0); }

// Two f16 scales at p0, p1 -> lanes 0..7 = *p0, lanes 8..15 = *p1.
inline __m512 HalfScales(const uint8_t* p0, const uint8_t* p1) {
  uint16_t a, b;
  std::memcpy(&a, p0, 2);
  std::memcpy(&b, p1, 2);
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(a | (static_cast<uint32_t>(b) << 16)));
  return _mm512_permutexvar_ps(HalfIndex(), _mm512_castps128_ps512(f));
}

inline __m512i Nibbles2x16(const uint8_t* qs0, const uint8_t* qs1) {
  const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0));
  const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1));
  __m512i v = _mm512_castsi128_si512(q0);
  v = _mm512_inserti32x4(v, q0, 1);
  v = _mm512_inserti32x4(v, q1, 2);
  v = _mm512_inserti32x4(v, q1, 3);
  v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);  // high nibbles in 128-bit lanes 1, 3
  return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

inline __m512i AddHighBit(__m512i v, const uint8_t* qh0, const uint8_t* qh1) {
  uint32_t a, b;
  std::memcpy(&a, qh0, 4);
  std::memcpy(&b, qh1, 4);
  const __mmask64 k = a | (static_cast<uint64_t>(b) << 32);
  return _mm512_mask_add_epi8(v, k, v, _mm512_set1_epi8(16));
}

// Decoders: two consecutive blocks (64 values) of one weight row.
struct DecQ4_0 {
  static constexpr int kBytes = 18, kOffsetShift = 3;  // offset 8
  static constexpr bool kMin = false, kSigned = false, kVec4 = true;
  static void Load(const uint8_t* b, __m512i* q, __m512* d, __m512*) {
    *q = Nibbles2x16(b + 2, b + kBytes + 2);
    *d = HalfScales(b, b + kBytes);
  }
};
struct DecQ4_1 {
  static constexpr int kBytes = 20, kOffsetShift = -1;
  static constexpr bool kMin = true, kSigned = false, kVec4 = false;
  static void Load(const uint8_t* b, __m512i* q, __m512* d, __m512* m) {
    *q = Nibbles2x16(b + 4, b + kBytes + 4);
    *d = HalfScales(b, b + kBytes);
    *m = HalfScales(b + 2, b + kBytes + 2);
  }
};
struct DecQ5_0 {
  static constexpr int kBytes = 22, kOffsetShift = 4;  // offset 16
  static constexpr bool kMin = false, kSigned = false, kVec4 = true;
  static void Load(const uint8_t* b, __m512i* q, __m512* d, __m512*) {
    *q = AddHighBit(Nibbles2x16(b + 6, b + kBytes + 6), b + 2, b + kBytes + 2);
    *d = HalfScales(b, b + kBytes);
  }
};
struct DecQ5_1 {
  static constexpr int kBytes = 24, kOffsetShift = -1;
  static constexpr bool kMin = true, kSigned = false, kVec4 = false;
  static void Load(const uint8_t* b, __m512i* q, __m512* d, __m512* m) {
    *q = AddHighBit(Nibbles2x16(b + 8, b + kBytes + 8), b + 4, b + kBytes + 4);
    *d = HalfScales(b, b + kBytes);
    *m = HalfScales(b + 2, b + kBytes + 2);
  }
};
struct DecQ8_0 {
  static constexpr int kBytes = 34, kOffsetShift = -1;
  static constexpr bool kMin = false, kSigned = true, kVec4 = false;
  static void Load(const uint8_t* b, __m512i* q, __m512* d, __m512*) {
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kBytes + 2));
    *q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    *d = HalfScales(b, b + kBytes);
  }
};

template <class Dec>
struct Q32Tile {
  const uint8_t* w;
  int64_t w_stride;
  const uint8_t* act;  // kQ8 rows
  int64_t act_stride, ld;
  int64_t nb;  // blocks per row
  float* y;
  int64_t rows;
  // Matrix-vector call (n == 1): Vec4Steps may run. Not for the 1-token edge tiles of a
  // batch, whose sums would then be added in another order than the same token's inside
  // a 4-token tile (a token's result would depend on its position in the batch).
  bool matvec;

  // One pair of blocks starting at weight bytes wb[i] and activation block index ab.
  template <int R, int T>
  static void Pair(const uint8_t* const* wb, const uint8_t* const* aq, const float* const* ad,
                   __m512 (&acc)[R][T]) {
    __m512i wq[R], winit[R];
    __m512 dw[R], mw[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      Dec::Load(wb[i], &wq[i], &dw[i], &mw[i]);
      if constexpr (Dec::kSigned) {
        winit[i] = _mm512_sub_epi32(
            _mm512_setzero_si512(),
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), wq[i]));
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
      const __m512i a = _mm512_loadu_si512(aq[j]);
      const __m512 da = _mm512_permutexvar_ps(
          HalfIndex(), _mm512_castpd_ps(_mm512_castpd128_pd512(
                           _mm_load_sd(reinterpret_cast<const double*>(ad[j])))));
      __m512i ainit = _mm512_setzero_si512();
      __m512 asum = _mm512_setzero_ps();
      if constexpr (Dec::kOffsetShift >= 0 || Dec::kMin) {
        const __m512i s =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), a);
        if constexpr (Dec::kOffsetShift >= 0) {
          ainit = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, Dec::kOffsetShift));
        }
        if constexpr (Dec::kMin) asum = _mm512_cvtepi32_ps(s);
      }
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        __m512i dot;
        if constexpr (Dec::kSigned) {
          dot = _mm512_dpbusd_epi32(winit[i], _mm512_xor_si512(a, _mm512_set1_epi8(char(0x80))),
                                    wq[i]);
        } else {
          dot = _mm512_dpbusd_epi32(ainit, wq[i], a);
        }
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[i], da), acc[i][j]);
        if constexpr (Dec::kMin) {
          acc[i][j] = _mm512_fmadd_ps(asum, _mm512_mul_ps(mw[i], da), acc[i][j]);
        }
      }
    }
  }

  // Matrix-vector Q4_0 / Q5_0, 4 blocks (72 / 88 bytes) of R rows per step: one 64-byte
  // load and one masked load cover the step; a two-source vpermb gathers the 64 level
  // bytes, a vpermw + vcvtph2ps spreads the 4 scales over the lanes of their blocks
  // (lanes 4k..4k+3 = block k), Q5_0's fifth bits become two byte masks (vpermw of the
  // qh words), and two vpdpbusd do all 128 products. The activations are permuted to
  // that order once per step for all R rows. Returns the number of blocks done.
  template <int R>
  int64_t Vec4Steps(int64_t r, int64_t t, __m512 (&acc)[R][1]) const {
    constexpr int kB = Dec::kBytes, kQs = kB - 16;  // qs are the last 16 bytes of a block
    constexpr bool kHigh = Dec::kOffsetShift == 4;   // Q5_0
    const uint8_t* arow = act + t * act_stride;  // token t's kQ8 row
    const float* ad = reinterpret_cast<const float*>(arow + ld);
    const int32_t* as = reinterpret_cast<const int32_t*>(arow + ld + ld / kQK * 4);
    // Level byte j = qs byte j % 16 of block j / 16; scale word m = the f16 d of block
    // (m % 16) / 4; high-bit word k / 4 + k = qh bits 0..15 / 16..31 of block k.
    static constexpr std::array<uint8_t, 64> kQi = [] {
      std::array<uint8_t, 64> a{};
      for (int j = 0; j < 64; ++j) a[j] = static_cast<uint8_t>(kB * (j / 16) + kQs + j % 16);
      return a;
    }();
    static constexpr std::array<int16_t, 32> kWi = [] {
      std::array<int16_t, 32> a{};
      for (int m = 0; m < 16; ++m) a[m] = static_cast<int16_t>(kB / 2 * (m / 4));
      for (int k = 0; k < 4; ++k) {
        a[16 + k] = static_cast<int16_t>(kB / 2 * k + 1);
        a[20 + k] = static_cast<int16_t>(kB / 2 * k + 2);
      }
      return a;
    }();
    const __m512i qidx = _mm512_loadu_si512(kQi.data()), widx = _mm512_loadu_si512(kWi.data());
    const __m512i lo_idx = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
    const __m512i hi_idx = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    const __m512i quad = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i m4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16);
    const uint8_t* row0 = w + r * w_stride;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
      const __m512i l0 = _mm512_loadu_si512(arow + b * kQK);
      const __m512i l1 = _mm512_loadu_si512(arow + b * kQK + 64);
      const __m512i a_lo = _mm512_permutex2var_epi64(l0, lo_idx, l1);  // values 0..15 of 4 blocks
      const __m512i a_hi = _mm512_permutex2var_epi64(l0, hi_idx, l1);  // values 16..31
      const __m128i sums = _mm_loadu_si128(reinterpret_cast<const __m128i*>(as + b));
      // -offset * Σa of block k in lane 4k (the block's other lanes start at 0).
      const __m512i lane_sums =
          _mm512_maskz_permutexvar_epi32(0x1111, quad, _mm512_castsi128_si512(sums));
      const __m512i init = _mm512_sub_epi32(_mm512_setzero_si512(),
                                            _mm512_slli_epi32(lane_sums, Dec::kOffsetShift));
      const __m512 da = _mm512_permutexvar_ps(quad, _mm512_castps128_ps512(_mm_loadu_ps(ad + b)));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const uint8_t* p = row0 + i * w_stride + b * kB;
        const char* pf = reinterpret_cast<const char*>(p) + kPrefetchRows * w_stride;
        _mm_prefetch(pf, _MM_HINT_T1);
        _mm_prefetch(pf + 64, _MM_HINT_T1);
        const __m512i w0 = _mm512_loadu_si512(p);
        const __m512i w1 = _mm512_maskz_loadu_epi8((uint64_t{1} << (4 * kB - 64)) - 1, p + 64);
        const __m512i q = _mm512_permutex2var_epi8(w0, qidx, w1);
        const __m512i words = _mm512_permutex2var_epi16(w0, widx, w1);
        __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
        if constexpr (kHigh) {
          const __m128i qh = _mm512_extracti32x4_epi32(words, 2);  // words 16..23
          lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(_mm_cvtsi128_si64(qh)), lo, sixteen);
          hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(_mm_extract_epi64(qh, 1)), hi, sixteen);
        }
        __m512i dot = _mm512_dpbusd_epi32(init, lo, a_lo);
        dot = _mm512_dpbusd_epi32(dot, hi, a_hi);
        const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(words));
        acc[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, da), acc[i][0]);
      }
    }
    return b;
  }

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m512 acc[R][T];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    const uint8_t* wb[R];
    const uint8_t* aq[T];
    const float* ad[T];
    int64_t b0 = 0;
    if constexpr (T == 1 && Dec::kVec4) {
      if (matvec) b0 = Vec4Steps<R>(r, t, acc);
    }
    for (int64_t b = b0; b + 1 < nb; b += 2) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) wb[i] = w + (r + i) * w_stride + b * Dec::kBytes;
      if constexpr (T == 1) {
        // Matrix-vector: rows are short (a few hundred bytes), too short for the hardware
        // prefetcher to ramp up per row; fetch the rows kPrefetchRows ahead ourselves. A
        // prefetch never faults, so running past the matrix end is harmless.
        // A pair step covers 2·kBytes bytes: Q8_0's 68 need two prefetches, or every 17th
        // line is left to a demand miss (a full memory latency per ~1 KiB of row).
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          const char* pf = reinterpret_cast<const char*>(
              reinterpret_cast<uintptr_t>(wb[i]) + kPrefetchRows * w_stride);
          _mm_prefetch(pf, _MM_HINT_T1);
          if constexpr (2 * Dec::kBytes > 64) _mm_prefetch(pf + 64, _MM_HINT_T1);
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const uint8_t* row = act + (t + j) * act_stride;
        aq[j] = row + b * kQK;
        ad[j] = reinterpret_cast<const float*>(row + ld) + b;
      }
      Pair<R, T>(wb, aq, ad, acc);
    }
    if (nb & 1) {
      // Last odd block: decode from a copy followed by a zero block (scale 0); the
      // activation rows are zero padded to an even block count.
      alignas(64) uint8_t tmp[R][2 * Dec::kBytes];
      const int64_t b = nb - 1;
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        std::memset(tmp[i], 0, sizeof(tmp[i]));
        std::memcpy(tmp[i], w + (r + i) * w_stride + b * Dec::kBytes, Dec::kBytes);
        wb[i] = tmp[i];
      }
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const uint8_t* row = act + (t + j) * act_stride;
        aq[j] = row + b * kQK;
        ad[j] = reinterpret_cast<const float*>(row + ld) + b;
      }
      Pair<R, T>(wb, aq, ad, acc);
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

template <class Dec>
void Q32Kernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const Q32Tile<Dec> tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                          static_cast<const uint8_t*>(a.act.data), a.act.stride, a.act.ld,
                          w.cols / kQK, a.y, w.rows, a.n == 1};
  if (a.n == 1) return DriveTiles<4, 1>(tile, r0, r1, 1, 1);
  DriveTiles<4, 4>(tile, r0, r1, a.n, TokenTile(a.act.stride, 4));
}

}  // namespace

KernelChoice Avx512KQuantKernel(DType type);  // matmul_k_avx512.cc

KernelChoice Avx512QuantKernel(DType type) {
  switch (type) {
    case DType::kQ4_0: return {ActKind::kQ8, Q32Kernel<DecQ4_0>};
    case DType::kQ4_1: return {ActKind::kQ8, Q32Kernel<DecQ4_1>};
    case DType::kQ5_0: return {ActKind::kQ8, Q32Kernel<DecQ5_0>};
    case DType::kQ5_1: return {ActKind::kQ8, Q32Kernel<DecQ5_1>};
    case DType::kQ8_0: return {ActKind::kQ8, Q32Kernel<DecQ8_0>};
    default: return Avx512KQuantKernel(type);
  }
}

// Quantizes one activation row to the kQ8 layout (int8 qs[ld], float d[ld/32], int32
// sums[ld/32]),
// rounding to nearest even; columns past `cols` are zero.
void QuantizeActRowQ8Avx512(const float* x, int64_t cols, int64_t ld, uint8_t* dst) {
  int8_t* qs = reinterpret_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(dst + ld);
  int32_t* sums = reinterpret_cast<int32_t*>(dst + ld + ld / kQK * 4);
  const __m512 sign_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  int64_t b = 0;
  for (; b < cols / kQK; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * kQK), v1 = _mm512_loadu_ps(x + b * kQK + 16);
    const __m512 amax = _mm512_max_ps(_mm512_and_ps(v0, sign_mask), _mm512_and_ps(v1, sign_mask));
    const float m = _mm512_reduce_max_ps(amax);
    const float db = m / 127;
    const __m512 id = _mm512_set1_ps(db ? 1.0f / db : 0.0f);
    const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, id),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, id),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK + 16), _mm512_cvtsepi32_epi8(q1));
    d[b] = db;
    // Saturation never triggers (|x / d| <= 127), so the int32 values are the stored ones.
    sums[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
  for (; b < ld / kQK; ++b) {
    std::memset(qs + b * kQK, 0, kQK);
    d[b] = 0;
    sums[b] = 0;
  }
}

}  // namespace vlserve::kernels::internal
