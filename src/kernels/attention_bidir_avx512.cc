// AVX-512 bidirectional attention (design: attention_bidir.h), in bf16 (vdpbf16ps on
// pairs of bf16) or in f32 (FMA).
//
// The work unit is one head × a panel of 32 queries, the 32 lanes of two zmm. Everything is
// computed transposed, with queries in lanes and keys (or output dims) in registers:
//  1. scores Sᵀ[key][q] = K_h·Q_hᵀ, a 14-key × 32-query register tile (28 accumulators)
//     per step over the head's dim elements (bf16 dim pairs or single f32 dims),
//     broadcasting one key's element at a time from K packed per head; the running max
//     over keys is a vertical max;
//  2. exponentials 2^(c·s − c·max), summed vertically (f32) and written per query lane
//     in the layout the next step multiplies (bf16: (key 2j, key 2j+1) pairs; f32: one
//     key per row), without a transpose or a normalisation pass;
//  3. Oᵀ[d][q] = Σ_keys V[key][d]·P[q][key], an 8-dim × 32-query tile (16 accumulators)
//     over key elements, broadcasting V's element of dim d; the rows are divided by the
//     sums (vertical again) and transposed into the output 16×16 at a time.
// K and V are packed once per call for all heads (rounded to bf16 in the bf16 form). The
// scores of a panel (n × 32 floats, 128 KiB at n = 1024) and its probabilities stay in
// the core's L2. Each output element is computed by one thread in a fixed order: results
// are bit-identical for any thread count.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "base/aligned.h"
#include "base/thread_pool.h"
#include "kernels/pack_avx512-inl.h"

namespace vlserve::kernels::internal {
namespace {

using avx512::ForItems;
using avx512::Mask16;
using avx512::PairsFromFloats;
using avx512::ToBf16Bits;
using avx512::Transpose16;

constexpr int kQueries = 32;  // queries per unit (lanes of two zmm)
constexpr int kKeys = 14;     // keys per score tile
constexpr int kDims = 8;      // output dims per PV tile

// Elements are 32-bit: bf16 pairs (kBf16) or floats. A dim element is a pair of head
// dims (bf16) or one dim (f32); a key element likewise a pair of keys or one key.
struct Dims {
  int64_t n, heads, hd, ld;
  int64_t elems;    // dim elements per head: ceil(hd / 2) (bf16) or hd (f32)
  int64_t kblocks;  // key blocks of kKeys: ceil(n / 14)
  int64_t kelems;   // key elements: ceil(n / 2) (bf16) or n (f32)
};

// 32 dims of a row starting at element e0 (the first `valid` floats, rest zero) as 16
// elements: bf16 pairs, or the first 16 floats.
template <bool kBf16>
inline __m512i RowElems(const float* row, int64_t e0, int64_t valid_dims) {
  if constexpr (kBf16) {
    return PairsFromFloats(row + 2 * e0, valid_dims - 2 * e0);
  } else {
    return _mm512_castps_si512(_mm512_maskz_loadu_ps(Mask16(valid_dims - e0), row + e0));
  }
}

// Dim elements [e0, e0 + 16) of up to 16 rows (row i at row0 + i·ld, rows from `valid` on
// zero), transposed: dst[e · dst_ld + i] for e < min(16, elems − e0), lanes `lanes` only.
template <bool kBf16>
void TransposeRowElems(const Dims& g, const float* row0, int valid, int64_t e0, uint32_t* dst,
                       int64_t dst_ld, __mmask16 lanes) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i) {
    r[i] = i < valid ? RowElems<kBf16>(row0 + i * g.ld, e0, g.hd) : _mm512_setzero_si512();
  }
  Transpose16(r);  // r[e] lane i = dim element e0 + e of row i
  const int64_t count = std::min<int64_t>(16, g.elems - e0);
  for (int64_t e = 0; e < count; ++e) _mm512_mask_storeu_epi32(dst + e * dst_ld, lanes, r[e]);
}

// Packed K for all heads: head h, key block b at kp + (h * kblocks + b) * elems * 14,
// laid out [dim element][14 keys] (keys past n zero).
// Packed V: head h at vp + h * kelems * hd, laid out [key element][hd]: bf16 of key 2j in
// the low half, key 2j + 1 in the high half (zero past n), or the float of key j.
template <bool kBf16>
void PackKv(const Dims& g, const float* k, const float* v, int64_t h, int64_t b, uint32_t* kp,
            uint32_t* vp) {
  const int64_t off = h * g.hd, k0 = b * kKeys;
  const int mr = static_cast<int>(std::min<int64_t>(kKeys, g.n - k0));
  uint32_t* kdst = kp + (h * g.kblocks + b) * g.elems * kKeys;
  for (int64_t e0 = 0; e0 < g.elems; e0 += 16) {
    TransposeRowElems<kBf16>(g, k + k0 * g.ld + off, mr, e0, kdst + e0 * kKeys, kKeys,
                             Mask16(kKeys));
  }
  uint32_t* vdst = vp + h * g.kelems * g.hd;
  if constexpr (!kBf16) {
    for (int64_t j = k0; j < k0 + mr; ++j) {
      for (int64_t d0 = 0; d0 < g.hd; d0 += 16) {
        const __mmask16 m = Mask16(g.hd - d0);
        _mm512_mask_storeu_ps(vdst + j * g.hd + d0, m,
                              _mm512_maskz_loadu_ps(m, v + j * g.ld + off + d0));
      }
    }
    return;
  }
  for (int64_t j = k0 / 2; j < (k0 + mr + 1) / 2; ++j) {
    const float* lo = v + 2 * j * g.ld + off;
    const bool has_hi = 2 * j + 1 < g.n;
    for (int64_t d0 = 0; d0 < g.hd; d0 += 16) {
      const __mmask16 m = Mask16(g.hd - d0);
      const __m512i l = ToBf16Bits(_mm512_maskz_loadu_ps(m, lo + d0));
      const __m512i hi =
          has_hi ? ToBf16Bits(_mm512_maskz_loadu_ps(m, lo + g.ld + d0)) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(vdst + j * g.hd + d0, m, _mm512_or_si512(l, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// Queries [q0, q0 + 32) of head h → qp[dim element][32] (queries past n zero).
template <bool kBf16>
void PackQueries(const Dims& g, const float* q, int64_t h, int64_t q0, uint32_t* qp) {
  for (int half = 0; half < 2; ++half) {
    const int64_t first = q0 + half * 16;
    const int valid = static_cast<int>(std::clamp<int64_t>(g.n - first, 0, 16));
    for (int64_t e0 = 0; e0 < g.elems; e0 += 16) {
      TransposeRowElems<kBf16>(g, q + std::min(first, g.n - 1) * g.ld + h * g.hd, valid, e0,
                               qp + e0 * kQueries + half * 16, kQueries, Mask16(16));
    }
  }
}

inline __m512bh AsBh(__m512i x) { return reinterpret_cast<__m512bh>(x); }

// acc += Σ over one element of a·b: bf16 pairs (vdpbf16ps) or floats (FMA).
template <bool kBf16>
inline __m512 MulAdd(__m512 acc, __m512i a, __m512i b) {
  if constexpr (kBf16) {
    return _mm512_dpbf16_ps(acc, AsBh(a), AsBh(b));
  } else {
    return _mm512_fmadd_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(b), acc);
  }
}

// st[i][32] = scores of keys i < MR (packed block kb, [element][14]) against the 32
// queries of qp; mx[32] = running per-query maxima.
template <int MR, bool kBf16>
void ScoreTile(const uint32_t* kb, const uint32_t* qp, int64_t elems, float* st, float* mx) {
  __m512 a0[MR], a1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) a0[i] = a1[i] = _mm512_setzero_ps();
  for (int64_t e = 0; e < elems; ++e) {
    const __m512i b0 = _mm512_load_si512(qp + e * kQueries);
    const __m512i b1 = _mm512_load_si512(qp + e * kQueries + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512i kv = _mm512_set1_epi32(static_cast<int>(kb[e * kKeys + i]));
      a0[i] = MulAdd<kBf16>(a0[i], kv, b0);
      a1[i] = MulAdd<kBf16>(a1[i], kv, b1);
    }
  }
  __m512 m0 = _mm512_load_ps(mx), m1 = _mm512_load_ps(mx + 16);
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(st + i * kQueries, a0[i]);
    _mm512_store_ps(st + i * kQueries + 16, a1[i]);
    m0 = _mm512_max_ps(m0, a0[i]);
    m1 = _mm512_max_ps(m1, a1[i]);
  }
  _mm512_store_ps(mx, m0);
  _mm512_store_ps(mx + 16, m1);
}

// ot[i][32] = inv[32] · Σ_j V (element j, dim i) · P (element j, queries), for dims
// i < MR; vp points at dim d0 of key element 0 (row stride hd), pt is [kelems][32].
template <int MR, bool kBf16>
void PvTile(const uint32_t* vp, int64_t hd, const uint32_t* pt, int64_t kelems, const float* inv,
            float* ot) {
  const __m512 inv0 = _mm512_load_ps(inv), inv1 = _mm512_load_ps(inv + 16);
  __m512 a0[MR], a1[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a0[i] = a1[i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < kelems; ++j) {
    const __m512i b0 = _mm512_load_si512(pt + j * kQueries);
    const __m512i b1 = _mm512_load_si512(pt + j * kQueries + 16);
    const uint32_t* vr = vp + j * hd;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i vv = _mm512_set1_epi32(static_cast<int>(vr[i]));
      a0[i] = MulAdd<kBf16>(a0[i], vv, b0);
      a1[i] = MulAdd<kBf16>(a1[i], vv, b1);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(ot + i * kQueries, _mm512_mul_ps(a0[i], inv0));
    _mm512_store_ps(ot + i * kQueries + 16, _mm512_mul_ps(a1[i], inv1));
  }
}

using ScoreFn = void (*)(const uint32_t*, const uint32_t*, int64_t, float*, float*);
using PvFn = void (*)(const uint32_t*, int64_t, const uint32_t*, int64_t, const float*, float*);

template <bool kBf16, size_t... I>
constexpr std::array<ScoreFn, kKeys + 1> ScoreTable(std::index_sequence<I...>) {
  return {nullptr, &ScoreTile<static_cast<int>(I + 1), kBf16>...};
}
template <bool kBf16, size_t... I>
constexpr std::array<PvFn, kDims + 1> PvTable(std::index_sequence<I...>) {
  return {nullptr, &PvTile<static_cast<int>(I + 1), kBf16>...};
}

// 2^t for t <= 0 (NaN propagates): a polynomial for 2^f, f = t − round(t) in [−½, ½],
// scaled by 2^round(t) with vscalefps (denormal or zero results below 2^−126). Degree 4
// for bf16 (relative error < 5e-5, far below the bf16 rounding of the result), degree 6
// for f32 (< 2e-7, Taylor remainder (ln2/2)⁷/7!).
template <bool kBf16>
inline __m512 Exp2(__m512 t) {
  t = _mm512_max_ps(_mm512_set1_ps(-160.0f), t);
  const __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, r);
  __m512 p;
  if constexpr (kBf16) {
    p = _mm512_set1_ps(9.618129107628477e-3f);  // ln2⁴/4!
  } else {
    p = _mm512_set1_ps(1.5403530393381608e-4f);  // ln2⁶/6!
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-3f));
  }
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, r);
}

// pt[j][32] = 2^(c·s − c·max) per query: bf16 pairs (key 2j, key 2j+1), or the float of
// key j; sums them (f32) and sets inv[32] = 1 / sums.
template <bool kBf16>
void Probabilities(const float* st, int64_t n, int64_t kelems, const float* mx, float c,
                   uint32_t* pt, float* inv) {
  const __m512 cv = _mm512_set1_ps(c);
  const __m512 m0 = _mm512_mul_ps(_mm512_load_ps(mx), cv);
  const __m512 m1 = _mm512_mul_ps(_mm512_load_ps(mx + 16), cv);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  if constexpr (!kBf16) {
    for (int64_t j = 0; j < n; ++j) {
      const float* row = st + j * kQueries;
      const __m512 e0 = Exp2<false>(_mm512_fmsub_ps(_mm512_load_ps(row), cv, m0));
      const __m512 e1 = Exp2<false>(_mm512_fmsub_ps(_mm512_load_ps(row + 16), cv, m1));
      s0 = _mm512_add_ps(s0, e0);
      s1 = _mm512_add_ps(s1, e1);
      _mm512_store_si512(pt + j * kQueries, _mm512_castps_si512(e0));
      _mm512_store_si512(pt + j * kQueries + 16, _mm512_castps_si512(e1));
    }
  } else {
    // 16-bit lane 2i ← element i of the first source, 2i + 1 ← element i of the second.
    const __m512i interleave = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
        4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t j = 0; j < kelems; ++j) {
      const float* lo = st + 2 * j * kQueries;
      const __m512 e00 = Exp2<true>(_mm512_fmsub_ps(_mm512_load_ps(lo), cv, m0));
      const __m512 e01 = Exp2<true>(_mm512_fmsub_ps(_mm512_load_ps(lo + 16), cv, m1));
      __m512 e10 = _mm512_setzero_ps(), e11 = _mm512_setzero_ps();
      if (2 * j + 1 < n) {
        e10 = Exp2<true>(_mm512_fmsub_ps(_mm512_load_ps(lo + kQueries), cv, m0));
        e11 = Exp2<true>(_mm512_fmsub_ps(_mm512_load_ps(lo + kQueries + 16), cv, m1));
      }
      s0 = _mm512_add_ps(s0, _mm512_add_ps(e00, e10));
      s1 = _mm512_add_ps(s1, _mm512_add_ps(e01, e11));
      // cvtne2ps(b, a): 16-bit elements 0..15 = bf16(a), 16..31 = bf16(b).
      const __m512i p0 = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(e10, e00));
      const __m512i p1 = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(e11, e01));
      _mm512_store_si512(pt + j * kQueries, _mm512_permutexvar_epi16(interleave, p0));
      _mm512_store_si512(pt + j * kQueries + 16, _mm512_permutexvar_epi16(interleave, p1));
    }
  }
  const __m512 one = _mm512_set1_ps(1.0f);
  _mm512_store_ps(inv, _mm512_div_ps(one, s0));
  _mm512_store_ps(inv + 16, _mm512_div_ps(one, s1));
}

// ot[hd][32] (dims × queries) → out rows q0.. (queries past n skipped), dims at column off.
void StoreTransposed(const Dims& g, const float* ot, int64_t q0, int64_t off, float* out) {
  for (int half = 0; half < 2; ++half) {
    const int64_t first = q0 + half * 16;
    const int64_t valid = std::min<int64_t>(16, g.n - first);
    if (valid <= 0) return;
    for (int64_t d0 = 0; d0 < g.hd; d0 += 16) {
      const int64_t dims = std::min<int64_t>(16, g.hd - d0);
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        r[i] = i < dims ? _mm512_load_si512(ot + (d0 + i) * kQueries + half * 16)
                        : _mm512_setzero_si512();
      }
      Transpose16(r);  // r[q] lane i = dim d0 + i of query first + q
      for (int64_t qi = 0; qi < valid; ++qi) {
        _mm512_mask_storeu_epi32(out + (first + qi) * g.ld + off + d0, Mask16(dims), r[qi]);
      }
    }
  }
}

struct Scratch {
  AlignedBuffer<uint32_t> qp, pt;
  AlignedBuffer<float> st, ot;
};

template <bool kBf16>
void RunUnit(const Dims& g, const float* q, const uint32_t* kp, const uint32_t* vp, float c,
             int64_t h, int64_t q0, Scratch& s, float* out) {
  static constexpr auto kScore = ScoreTable<kBf16>(std::make_index_sequence<kKeys>());
  static constexpr auto kPv = PvTable<kBf16>(std::make_index_sequence<kDims>());
  PackQueries<kBf16>(g, q, h, q0, s.qp.data());
  alignas(64) float mx[kQueries], inv[kQueries];
  std::fill_n(mx, kQueries, -__builtin_inff());
  const uint32_t* kh = kp + h * g.kblocks * g.elems * kKeys;
  for (int64_t b = 0; b < g.kblocks; ++b) {
    const int mr = static_cast<int>(std::min<int64_t>(kKeys, g.n - b * kKeys));
    kScore[mr](kh + b * g.elems * kKeys, s.qp.data(), g.elems, s.st.data() + b * kKeys * kQueries,
               mx);
  }
  Probabilities<kBf16>(s.st.data(), g.n, g.kelems, mx, c, s.pt.data(), inv);
  const uint32_t* vh = vp + h * g.kelems * g.hd;
  for (int64_t d0 = 0; d0 < g.hd; d0 += kDims) {
    const int mr = static_cast<int>(std::min<int64_t>(kDims, g.hd - d0));
    kPv[mr](vh + d0, g.hd, s.pt.data(), g.kelems, inv, s.ot.data() + d0 * kQueries);
  }
  StoreTransposed(g, s.ot.data(), q0, h * g.hd, out);
}

template <bool kBf16>
void Run(const float* q, const float* k, const float* v, int64_t n, int64_t num_heads,
         int64_t head_dim, int64_t ld, float scale, float* out, ThreadPool* pool) {
  const Dims g{n,
               num_heads,
               head_dim,
               ld,
               kBf16 ? (head_dim + 1) / 2 : head_dim,
               (n + kKeys - 1) / kKeys,
               kBf16 ? (n + 1) / 2 : n};
  // Operands shared by all units, owned by the calling thread (one call at a time per
  // caller, like MatMul's packing buffers).
  thread_local AlignedBuffer<uint32_t> kp, vp;
  kp.Resize(num_heads * g.kblocks * g.elems * kKeys);
  vp.Resize(num_heads * g.kelems * head_dim);
  // (thread_local names refer to the running thread's copy: pass the pointers.)
  uint32_t* const kpd = kp.data();
  uint32_t* const vpd = vp.data();
  ForItems(pool, num_heads * g.kblocks, [&](int64_t item) {
    PackKv<kBf16>(g, k, v, item / g.kblocks, item % g.kblocks, kpd, vpd);
  });
  const float c = scale * 1.44269504088896341f;  // scores to base-2 exponents
  const int64_t panels = (n + kQueries - 1) / kQueries;
  ForItems(pool, num_heads * panels, [&](int64_t item) {
    thread_local Scratch s;
    s.qp.Resize(g.elems * kQueries);
    s.st.Resize((g.kblocks * kKeys + 1) * kQueries);
    s.pt.Resize(g.kelems * kQueries);
    s.ot.Resize((head_dim + kDims) * kQueries);
    RunUnit<kBf16>(g, q, kpd, vpd, c, item / panels, item % panels * kQueries, s, out);
  });
}

}  // namespace

void AttentionBidirAvx512(const float* q, const float* k, const float* v, int64_t n,
                          int64_t num_heads, int64_t head_dim, int64_t ld, float scale,
                          bool bf16, float* out, ThreadPool* pool) {
  if (bf16) return Run<true>(q, k, v, n, num_heads, head_dim, ld, scale, out, pool);
  Run<false>(q, k, v, n, num_heads, head_dim, ld, scale, out, pool);
}

}  // namespace vlserve::kernels::internal
