// AVX-512 VNNI MatMul kernels for the K-quants (Q4_K, Q5_K, Q6_K) against activations
// quantized per 256 values (ActQ8K). Each 64-value group of a super-block is one zmm of
// unsigned levels, multiplied by the activation bytes and the lane's sub-block scale and
// summed in int32 over the super-block; the mins (Q4_K,
// Q5_K) and the -32 offset (Q6_K) are subtracted with the activation's 16-value sums.
// Per 64 values: vpmaddubsw (u8 x s8 -> int16 pairs) then vpdpwssd (x int16 scale,
// summed into int32), two instructions per row x token.
#include <immintrin.h>

#include <cstring>

#include "kernels/kquant_avx512-inl.h"
#include "kernels/matmul_internal.h"
#include "kernels/matmul_tiling.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {
namespace {

// --- Matrix-vector (n = 1) kernels ------------------------------------------------------
// Decode streams every weight byte once, so the per-super-block work must stay under
// what memory delivers (~15 GB/s per core: ~35 cycles per 144-byte Q4_K block). Per
// row and super-block: two 64-byte loads give all 256 levels (low / high nibbles), the
// activation bytes are permuted once per super-block per tile of rows to match that
// order, the sub-block scales are unpacked with one pshufb-based sequence and spread
// over int16 lanes with a masked vpermb, and the mins / offset terms are vector
// multiply-adds against the activation's block sums (no horizontal sums until the row
// ends). Rows are prefetched kKPrefetchRows ahead: rows at small widths are too short
// for the hardware prefetcher to ramp up.
constexpr int64_t kKPrefetchRows = 8;

// The 12 packed 6-bit scales/mins of a Q4_K / Q5_K super-block -> bytes [sc0..sc7,
// m0..m7]. Reads 16 bytes from p (the 4 after the scales are the block's own levels).
inline __m128i UnpackScalesK4(const uint8_t* p) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  // sc0..3 = q0..3 & 63, sc4..7 = (q8..11 & 15) | (q0..3 >> 6) << 4,
  // m0..3 = q4..7 & 63,  m4..7 = (q8..11 >> 4) | (q4..7 >> 6) << 4.
  const __m128i a = _mm_shuffle_epi8(q, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7,
                                                      8, 9, 10, 11));
  const __m128i h = _mm_shuffle_epi8(q, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1,
                                                      -1, 4, 5, 6, 7));
  const __m128i lo = _mm_mask_blend_epi8(
      0xF000, _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63,
                                             15, 15, 15, 15)),
      _mm_and_si128(_mm_srli_epi16(a, 4), _mm_set1_epi8(15)));
  return _mm_or_si128(lo, _mm_srli_epi16(_mm_and_si128(h, _mm_set1_epi8(char(0xC0))), 2));
}

inline __m512i Load64(const void* p) { return _mm512_loadu_si512(p); }

// Activation data of one super-block shared by all rows of a tile.
struct VecAct {
  __m512i v[4];  // the 256 int8 values in the order the weight decoder produces levels
  __m256i bsums;  // Q6_K: 16 int16 sums of 16 values
  __m128i bs8;    // Q4_K/Q5_K: 8 int16 sums of the 32-value sub-blocks
  __m128 d;       // activation scale, broadcast
};

// Q4_K / Q5_K: 64-byte load k of the levels holds groups 2k, 2k+1 (32 bytes each); its
// low nibbles are sub-blocks 4k, 4k+2 and its high nibbles 4k+1, 4k+3.
inline void PrepActK4(const ActQ8K& a, VecAct* out) {
  const __m512i lo = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
  for (int k = 0; k < 2; ++k) {
    const __m512i l0 = Load64(a.qs + 128 * k), l1 = Load64(a.qs + 128 * k + 64);
    out->v[2 * k] = _mm512_permutex2var_epi64(l0, lo, l1);
    out->v[2 * k + 1] = _mm512_permutex2var_epi64(l0, hi, l1);
  }
  const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums));
  const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums + 8));
  out->bs8 = _mm_hadd_epi16(b0, b1);  // |sum of 32| <= 32 * 127: fits int16
  out->d = _mm_set1_ps(a.d);
}

// vpshufb controls giving, per int16 position of packs(dot(q[2g]), dot(q[2g + 1])), the
// scale byte of the sub-block it sums (zero-extended). In 128-bit lane j, positions 0..3
// are int32 lanes 4j..4j+3 of q[2g]'s dot and 4..7 those of q[2g + 1]'s; int32 lane L of
// q[k]'s dot covers level bytes 4L..4L+3, which are sub-block 4(k/2) + k%2 for L < 8 and
// 4(k/2) + k%2 + 2 above.
struct alignas(64) PackedScaleControls {
  int16_t c[2][32];
};
constexpr PackedScaleControls kPackedScaleControls = [] {
  PackedScaleControls t{};
  for (int g = 0; g < 2; ++g) {
    for (int p = 0; p < 32; ++p) {
      const int lane = p / 8, k = 2 * g + (p % 8 >= 4 ? 1 : 0);
      const int sub = 4 * (k / 2) + k % 2 + (lane >= 2 ? 2 : 0);
      t.c[g][p] = static_cast<int16_t>(0x8000 | sub);
    }
  }
  return t;
}();

// packs(Σ4 qa·aa, Σ4 qb·ab): the 4-term vpdpbusd sums of two level × activation vectors
// as int16 (callers keep |Σ4| within int16: 6-bit levels at most, 63 · 127 · 4 = 32004),
// in 128-bit lane j positions 0..3 from int32 lanes 4j..4j+3 of the first, 4..7 of the
// second; one vpdpwssd then applies both vectors' scales.
inline __m512i PackedDots(__m512i qa, __m512i aa, __m512i qb, __m512i ab) {
  const __m512i z = _mm512_setzero_si512();
  return _mm512_packs_epi32(_mm512_dpbusd_epi32(z, qa, aa), _mm512_dpbusd_epi32(z, qb, ab));
}

// Σ levels · act · scale over the super-block (int32 lanes) for 4 level vectors in
// PrepActK4 order; `sb` = the unpacked scale bytes in every 128-bit lane. vpdpbusd does
// the level × activation products (their 4-term sums, |Σ| <= 31 · 127 · 4, fit in int16),
// two groups are packed into one int16 vector and one vpdpwssd applies their scales:
// 6 multiply instructions per super-block instead of 8 (vpmaddubsw + vpdpwssd per group).
inline __m512i DotK4(const __m512i* q, const VecAct& a, __m512i sb) {
  const __m512i ctrl0 = _mm512_load_si512(kPackedScaleControls.c[0]);
  const __m512i ctrl1 = _mm512_load_si512(kPackedScaleControls.c[1]);
  const __m512i p01 = PackedDots(q[0], a.v[0], q[1], a.v[1]);
  const __m512i p23 = PackedDots(q[2], a.v[2], q[3], a.v[3]);
  const __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), p01,
                                        _mm512_shuffle_epi8(sb, ctrl0));
  return _mm512_dpwssd_epi32(s, p23, _mm512_shuffle_epi8(sb, ctrl1));
}

// acc += d·da·isum; macc += dmin·da·(mins · sub-block sums). dm: f16 d, dmin.
inline void FinishK4(const uint8_t* dm, __m512i isum, __m128i sb, const VecAct& a, __m512* acc,
                     __m128* macc) {
  uint32_t h;
  std::memcpy(&h, dm, 4);
  const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(h))), a.d);
  *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_broadcastss_ps(dd), *acc);
  const __m128i mi = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_srli_si128(sb, 8)), a.bs8);
  *macc = _mm_fmadd_ps(_mm_cvtepi32_ps(mi), _mm_shuffle_ps(dd, dd, 0x55), *macc);
}

struct VecQ4K {
  static constexpr int kBytes = 144;
  static void PrepAct(const ActQ8K& a, VecAct* out) { PrepActK4(a, out); }
  // Σ levels · act · scale of the super-block at b (int32 lanes); sb: scale bytes.
  static __m512i Dot(const uint8_t* b, const VecAct& a, __m512i sb) {
    const __m512i m = _mm512_set1_epi8(0x0f);
    const __m512i w0 = Load64(b + 16), w1 = Load64(b + 80);
    const __m512i q[4] = {_mm512_and_si512(w0, m), _mm512_and_si512(_mm512_srli_epi16(w0, 4), m),
                          _mm512_and_si512(w1, m), _mm512_and_si512(_mm512_srli_epi16(w1, 4), m)};
    return DotK4(q, a, sb);
  }
  static void Row(const uint8_t* b, const VecAct& a, __m512* acc, __m128* macc) {
    const __m128i sb = UnpackScalesK4(b + 4);
    FinishK4(b, Dot(b, a, _mm512_broadcast_i32x4(sb)), sb, a, acc, macc);
  }
};

struct VecQ5K {
  static constexpr int kBytes = 176;
  static void PrepAct(const ActQ8K& a, VecAct* out) { PrepActK4(a, out); }
  // Fifth bit of group g: bit 2g (low nibbles) / 2g+1 (high) of qh[l], l = byte in group.
  static __m512i High(__m512i q, __m512i qh2, int bit_lo) {
    const __m512i sel = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << bit_lo)),
                                           _mm256_set1_epi8(char(1 << (bit_lo + 2))), 1);
    return _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(qh2, sel), q, _mm512_set1_epi8(16));
  }
  static __m512i Dot(const uint8_t* b, const VecAct& a, __m512i sb) {
    const __m512i m = _mm512_set1_epi8(0x0f);
    const __m512i qh2 = _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)));
    const __m512i w0 = Load64(b + 48), w1 = Load64(b + 112);
    const __m512i q[4] = {
        High(_mm512_and_si512(w0, m), qh2, 0),
        High(_mm512_and_si512(_mm512_srli_epi16(w0, 4), m), qh2, 1),
        High(_mm512_and_si512(w1, m), qh2, 4),
        High(_mm512_and_si512(_mm512_srli_epi16(w1, 4), m), qh2, 5)};
    return DotK4(q, a, sb);
  }
  static void Row(const uint8_t* b, const VecAct& a, __m512* acc, __m128* macc) {
    const __m128i sb = UnpackScalesK4(b + 4);
    FinishK4(b, Dot(b, a, _mm512_broadcast_i32x4(sb)), sb, a, acc, macc);
  }
};

// Q6_K: the scale index of each int16 position of packs(dot(group 2c), dot(group 2c + 1))
// (see DotK4): in 128-bit lane j, positions 0..3 sum values 4j·4.. of group 2c (scale
// 4·2c + j), positions 4..7 those of group 2c + 1 (scale 4·(2c + 1) + j).
struct alignas(64) Q6PackedScaleIndex {
  int16_t c[2][32];
};
constexpr Q6PackedScaleIndex kQ6PackedScaleIndex = [] {
  Q6PackedScaleIndex t{};
  for (int c = 0; c < 2; ++c) {
    for (int p = 0; p < 32; ++p) {
      const int group = 2 * c + (p % 8 >= 4 ? 1 : 0);
      t.c[c][p] = static_cast<int16_t>(4 * group + p / 8);
    }
  }
  return t;
}();

// Q6_K: ql bytes 64c..64c+63 hold values 128c..128c+63 (low nibbles) and +64 (high);
// the 2 high bits of value 128c + 32h + l (h = 0..3) are bits 2h, 2h+1 of qh[32c + l].
struct VecQ6K {
  static constexpr int kBytes = 210;
  static void PrepAct(const ActQ8K& a, VecAct* out) {
    for (int k = 0; k < 4; ++k) out->v[k] = Load64(a.qs + 64 * k);
    out->bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums));
    out->d = _mm_set1_ps(a.d);
  }
  static void Row(const uint8_t* b, const VecAct& a, __m512* acc, __m128*) {
    const __m256i sc =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
    // The -32 offset: Σ_j sc_j · 32 · bsums_j, subtracted from the int32 start.
    const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc, a.bsums), 5);
    __m512i s = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), corr));
    const __m512i sc512 = _mm512_castsi256_si512(sc);
    const __m512i m = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x30);
    for (int c = 0; c < 2; ++c) {
      const __m512i ql = Load64(b + 64 * c);
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * c));
      const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
      const __m512i q0 = _mm512_or_si512(_mm512_and_si512(ql, m),
                                         _mm512_and_si512(_mm512_slli_epi16(h, 4), m2));
      const __m512i q1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m),
                                         _mm512_and_si512(h, m2));
      // As DotK4: two groups' sums in one int16 vector, one vpdpwssd with their scales.
      const __m512i packed = PackedDots(q0, a.v[2 * c], q1, a.v[2 * c + 1]);
      const __m512i idx = _mm512_load_si512(kQ6PackedScaleIndex.c[c]);
      s = _mm512_dpwssd_epi32(s, packed, _mm512_permutexvar_epi16(idx, sc512));
    }
    uint16_t h16;
    std::memcpy(&h16, b + 208, 2);
    const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h16)), a.d);
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_broadcastss_ps(dd), *acc);
  }
};

// R rows starting at r: y[r + i] = row · x.
template <class V, int R>
inline void VecTile(const uint8_t* w, int64_t stride, const ActQ8K* act, int64_t nbk, int64_t r,
                    float* y) {
  __m512 acc[R];
  __m128 macc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    acc[i] = _mm512_setzero_ps();
    macc[i] = _mm_setzero_ps();
  }
  const uint8_t* row = w + r * stride;
  for (int64_t b = 0; b < nbk; ++b) {
    VecAct a;
    V::PrepAct(act[b], &a);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const uint8_t* blk = row + i * stride + b * V::kBytes;
      // Never faults, so running past the matrix end is harmless.
      const char* pf = reinterpret_cast<const char*>(blk) + kKPrefetchRows * stride;
#pragma GCC unroll 4
      for (int o = 0; o < V::kBytes; o += 64) _mm_prefetch(pf + o, _MM_HINT_T1);
      V::Row(blk, a, &acc[i], &macc[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    __m128 m = _mm_add_ps(macc[i], _mm_movehl_ps(macc[i], macc[i]));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    y[r + i] = _mm512_reduce_add_ps(acc[i]) - _mm_cvtss_f32(m);
  }
}

// Q4_K / Q5_K, 4 rows: the per-super-block bookkeeping of VecQ4K::Row done once for the
// 4 rows in zmm instead of per row in xmm (scale unpacking, d / dmin, the mins term).
// The 16-byte headers (d, dmin, 12 scale bytes) of the 4 rows' blocks sit in 128-bit
// lanes 0..3; per row that leaves a lane broadcast, a permute for d·da and the levels.
template <class V>
inline void VecTileK4x4(const uint8_t* w, int64_t stride, const ActQ8K* act, int64_t nbk,
                        int64_t r, float* y) {
  constexpr int R = 4;
  __m512 acc[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  __m512 macc = _mm512_setzero_ps();  // lanes 4i..4i+3: row i's mins terms
  const uint8_t* row = w + r * stride;
  const __m512i m_ctrl = _mm512_broadcast_i32x4(
      _mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1));
  const __m512i dmin_idx = _mm512_set_epi32(7, 7, 7, 7, 5, 5, 5, 5, 3, 3, 3, 3, 1, 1, 1, 1);
  for (int64_t b = 0; b < nbk; ++b) {
    VecAct a;
    V::PrepAct(act[b], &a);
    const uint8_t* blk = row + b * V::kBytes;
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const char* pf = reinterpret_cast<const char*>(blk + i * stride) + kKPrefetchRows * stride;
#pragma GCC unroll 4
      for (int o = 0; o < V::kBytes; o += 64) _mm_prefetch(pf + o, _MM_HINT_T1);
    }
    __m512i hdr = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    hdr = _mm512_inserti32x4(hdr, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + stride)), 1);
    hdr = _mm512_inserti32x4(hdr, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 * stride)), 2);
    hdr = _mm512_inserti32x4(hdr, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 3 * stride)), 3);
    const __m512i sb = avx512::UnpackScalesK4x4(hdr);
    // [d0, dmin0, d1, dmin1, ...] · da
    const __m256 dd = _mm256_mul_ps(
        _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(
            _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), hdr))),
        _mm256_set1_ps(act[b].d));
    const __m512 ddz = _mm512_castps256_ps512(dd);
    // Mins: Σ m_s · (sum of sub-block s) per row, as 4 int32 partial sums in its lane.
    const __m512i mi = _mm512_madd_epi16(_mm512_shuffle_epi8(sb, m_ctrl),
                                         _mm512_broadcast_i32x4(a.bs8));
    macc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mi), _mm512_permutexvar_ps(dmin_idx, ddz), macc);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512i sbi = _mm512_shuffle_i32x4(sb, sb, i * 0x55);
      const __m512i isum = V::Dot(blk + i * stride, a, sbi);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                               _mm512_permutexvar_ps(_mm512_set1_epi32(2 * i), ddz), acc[i]);
    }
  }
  const __m128 mins = [&] {  // row i's 4 lanes summed, in element i
    const __m512 t = _mm512_add_ps(macc, _mm512_shuffle_ps(macc, macc, 0x4e));
    const __m512 u = _mm512_add_ps(t, _mm512_shuffle_ps(t, t, 0xb1));
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(
        _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), u));
  }();
  alignas(16) float m4[4];
  _mm_store_ps(m4, mins);
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) y[r + i] = _mm512_reduce_add_ps(acc[i]) - m4[i];
}

template <class V>
void MatVecRows(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const auto* data = static_cast<const uint8_t*>(w.data);
  const int64_t stride = RowBytes(w.type, w.cols), nbk = w.cols / kQKK;
  const auto* act = static_cast<const ActQ8K*>(a.act.data);
  constexpr int kRows = 4;
  int64_t r = r0;
  if constexpr (V::kBytes != VecQ6K::kBytes) {
    for (; r + kRows <= r1; r += kRows) VecTileK4x4<V>(data, stride, act, nbk, r, a.y);
  }
  for (; r + kRows <= r1; r += kRows) VecTile<V, kRows>(data, stride, act, nbk, r, a.y);
  for (; r < r1; ++r) VecTile<V, 1>(data, stride, act, nbk, r, a.y);
}


// Unpacks the 12 packed 6-bit scales/mins into 16 int32 lanes [sc0..sc7, m0..m7].
inline __m512i ScalesMinsK4(const uint8_t* packed) {
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  constexpr uint32_t kMask1 = 0x3f3f3f3f, kMask2 = 0x0f0f0f0f, kMask3 = 0x03030303;
  u[3] = ((u[2] >> 4) & kMask2) | (((u[1] >> 6) & kMask3) << 4);
  const uint32_t mins_lo = u[1] & kMask1;
  u[1] = (u[2] & kMask2) | (((u[0] >> 6) & kMask3) << 4);
  u[2] = mins_lo;
  u[0] &= kMask1;
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(u)));
}

// Scales of group g as 32 int16 lanes (one per byte pair of the group's 64 values):
// lanes 0..15 = sc[2g], lanes 16..31 = sc[2g + 1]. sm holds [sc0..sc7, m0..m7] as int32.
inline __m512i K4GroupScale16(__m512i sm, int g) {
  const __m512i sc = _mm512_permutexvar_epi32(
      _mm512_add_epi32(_mm512_set1_epi32(2 * g),
                       _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)),
      sm);
  // Each int32 lane holds a value < 64: duplicate it into both of its int16 halves.
  return _mm512_or_si512(sc, _mm512_slli_epi32(sc, 16));
}

inline __m512i Nibbles32(const uint8_t* q) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  const __m256i m = _mm256_set1_epi8(0x0f);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(v, m)),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), m), 1);
}

struct DecQ4K {
  using Vec = VecQ4K;
  static constexpr int kBytes = 144;
  static constexpr bool kMins = true;
  static __m512i Scales(const uint8_t* b) { return ScalesMinsK4(b + 4); }
  static __m512i Group(const uint8_t* b, int g) { return Nibbles32(b + 16 + 32 * g); }
  static __m512i GroupScale(__m512i sm, int g) { return K4GroupScale16(sm, g); }
  static float D(const uint8_t* b) { uint16_t h; std::memcpy(&h, b, 2); return F16ToF32(h); }
  static float Dmin(const uint8_t* b) { uint16_t h; std::memcpy(&h, b + 2, 2); return F16ToF32(h); }
};

struct DecQ5K {
  using Vec = VecQ5K;
  static constexpr int kBytes = 176;
  static constexpr bool kMins = true;
  static __m512i Scales(const uint8_t* b) { return ScalesMinsK4(b + 4); }
  static __m512i Group(const uint8_t* b, int g) {
    const __m512i lo = Nibbles32(b + 48 + 32 * g);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    const __m512i qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
    const __m512i sel = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << (2 * g))),
                                           _mm256_set1_epi8(char(1 << (2 * g + 1))), 1);
    return _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh2, sel), lo, _mm512_set1_epi8(16));
  }
  static __m512i GroupScale(__m512i sm, int g) { return K4GroupScale16(sm, g); }
  static float D(const uint8_t* b) { return DecQ4K::D(b); }
  static float Dmin(const uint8_t* b) { return DecQ4K::Dmin(b); }
};

struct DecQ6K {
  using Vec = VecQ6K;
  static constexpr int kBytes = 210;
  static constexpr bool kMins = false;
  static __m512i Scales(const uint8_t* b) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
  }
  // Group g: values 64g..64g+63 = chunk g/2, half g%2 (see the Q6_K layout).
  static __m512i Group(const uint8_t* b, int g) {
    const int c = g / 2;
    const __m512i ql = _mm512_loadu_si512(b + 64 * c);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * c));
    const int s = (g & 1) ? 4 : 0;
    const __m512i lo = _mm512_and_si512(g & 1 ? _mm512_srli_epi16(ql, 4) : ql,
                                        _mm512_set1_epi8(0x0f));
    __m512i hi = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(s))),
        _mm256_srl_epi16(qh, _mm_cvtsi32_si128(s + 2)), 1);
    hi = _mm512_and_si512(hi, _mm512_set1_epi8(3));
    return _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
  }
  // int16 lane L (bytes 2L, 2L+1 of the group) uses scale 4g + L / 8.
  static __m512i GroupScale(__m512i sc, int g) {
    const __m512i idx = _mm512_add_epi32(
        _mm512_set1_epi32(4 * g),
        _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0));
    const __m512i s = _mm512_permutexvar_epi32(idx, sc);  // int32, may be negative
    return _mm512_or_si512(_mm512_and_si512(s, _mm512_set1_epi32(0xffff)),
                           _mm512_slli_epi32(s, 16));
  }
  static float D(const uint8_t* b) { uint16_t h; std::memcpy(&h, b + 208, 2); return F16ToF32(h); }
  static float Dmin(const uint8_t*) { return 0; }
};

template <class Dec>
struct KTile {
  const uint8_t* w;
  int64_t w_stride;
  const ActQ8K* act;
  int64_t nbk;  // super-blocks per row
  float* y;
  int64_t rows;

  template <int R, int T>
  void Run(int64_t r, int64_t t) const {
    __m512 acc[R][T];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nbk; ++b) {
      const uint8_t* wb[R];
      __m512i sm[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        wb[i] = w + (r + i) * w_stride + b * Dec::kBytes;
        sm[i] = Dec::Scales(wb[i]);
      }
      __m512i isum[R][T];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < T; ++j) isum[i][j] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        __m512i wq[R], sc[R];
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          wq[i] = Dec::Group(wb[i], g);
          sc[i] = Dec::GroupScale(sm[i], g);
        }
#pragma GCC unroll 8
        for (int j = 0; j < T; ++j) {
          const __m512i a = _mm512_loadu_si512(act[(t + j) * nbk + b].qs + 64 * g);
#pragma GCC unroll 8
          for (int i = 0; i < R; ++i) {
            // u8 x s8 pair sums fit int16 (2 * 63 * 127 < 32767), then x scale into int32.
            isum[i][j] = _mm512_dpwssd_epi32(isum[i][j], _mm512_maddubs_epi16(wq[i], a), sc[i]);
          }
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        const ActQ8K& ab = act[(t + j) * nbk + b];
        const __m512i bs = _mm512_cvtepi16_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.bsums)));
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          if constexpr (Dec::kMins) {
            // Σ_k m[k/2] * bsums[k]: the mins sit in lanes 8..15 of sm.
            const __m512i mins = _mm512_permutexvar_epi32(
                _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), sm[i]);
            const __m512 mcorr = _mm512_cvtepi32_ps(_mm512_mullo_epi32(mins, bs));
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][j]),
                                        _mm512_set1_ps(Dec::D(wb[i]) * ab.d), acc[i][j]);
            acc[i][j] = _mm512_fnmadd_ps(mcorr, _mm512_set1_ps(Dec::Dmin(wb[i]) * ab.d), acc[i][j]);
          } else {
            const __m512i corr = _mm512_slli_epi32(_mm512_mullo_epi32(sm[i], bs), 5);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[i][j], corr)),
                                        _mm512_set1_ps(Dec::D(wb[i]) * ab.d), acc[i][j]);
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) y[(t + j) * rows + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

template <class Dec>
void KKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  if (a.n == 1) return MatVecRows<typename Dec::Vec>(a, r0, r1);
  const KTile<Dec> tile{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols),
                        static_cast<const ActQ8K*>(a.act.data), w.cols / kQKK, a.y, w.rows};
  DriveTiles<2, 4>(tile, r0, r1, a.n, TokenTile(a.act.stride, 4));
}

}  // namespace

// ref::QuantizeActQ8K, vectorized, bit-identical: per 256 values, max = the first value
// of largest magnitude, q = min(127, round_half_even(-127/max · x)), 16-value sums,
// d = 1/iscale. (The scalar version costs ~1.5 ns per value, which at decode is
// several percent of a 2048-wide matvec.)
void QuantizeActRowQ8KAvx512(const float* x, int64_t cols, ActQ8K* dst) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < cols / kQKK; ++b, x += kQKK) {
    ActQ8K& y = dst[b];
    std::memset(&y, 0, sizeof(y));
    __m512 amax_v = _mm512_setzero_ps();
    for (int i = 0; i < 16; ++i) {
      // Operand order: vmaxps returns the second operand when one is NaN, so NaNs are skipped
      // as in the reference.
      amax_v = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(x + 16 * i), abs_mask), amax_v);
    }
    const float amax = _mm512_reduce_max_ps(amax_v);
    if (!(amax > 0)) continue;  // all zero (the reference also skips NaN-only blocks)
    float max = 0;
    for (int i = 0; i < 16; ++i) {
      const __mmask16 m = _mm512_cmp_ps_mask(
          _mm512_and_ps(_mm512_loadu_ps(x + 16 * i), abs_mask), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (m != 0) {
        max = x[16 * i + __builtin_ctz(m)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m512 vi = _mm512_set1_ps(iscale);
    for (int i = 0; i < 16; ++i) {
      __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * i), vi),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y.qs + 16 * i), _mm512_cvtepi32_epi8(q));
      y.bsums[i] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    y.d = 1 / iscale;
  }
}

KernelChoice Avx512KQuantKernel(DType type) {
  switch (type) {
    case DType::kQ4_K: return {ActKind::kQ8K, KKernel<DecQ4K>};
    case DType::kQ5_K: return {ActKind::kQ8K, KKernel<DecQ5K>};
    case DType::kQ6_K: return {ActKind::kQ8K, KKernel<DecQ6K>};
    default: return {ActKind::kF32, nullptr};
  }
}

}  // namespace vlserve::kernels::internal
