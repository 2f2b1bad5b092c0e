// The attention tile kernel, templated on the SIMD traits S (see ops_isa.h for what a
// tile is). Vector lanes run across the tile's rows (query × head pairs), so that
//  - scores for a key are q·k with the key's values broadcast: K is read in its stored
//    layout, no transposes and no horizontal sums;
//  - the online softmax (running max m, running sum l, rescale alpha) is lane-wise;
//  - P·V broadcasts V's values onto probability vectors, accumulating Oᵀ [head_dim][rows].
// Only the Q tile is transposed in and the O tile transposed out, once per tile.
//
// Keys are visited in blocks of kKeyBlock from position 0; a row's result depends only
// on its own query and the kv data (masked keys contribute exact zeros), never on which
// tile or thread computed it.
//
// K/V stored as 16-bit floats (KvView::type kF16 / kBF16) are widened to float exactly on
// load, and all arithmetic stays float: a 16-bit cache gives bit for bit the result of
// the float kernel on the widened values. The few-row (decode) kernels widen vector loads
// in place; the row-tile kernel, which broadcasts single values, first widens the key
// block into scratch (amortised over its up to 2 x lanes rows).
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/ops_isa.h"
#include "kernels/types.h"
#include "kernels/vec_math-inl.h"

namespace vlserve::kernels::attnimpl {

constexpr int64_t kKeyBlock = 64;

// What one stored K/V value is for each KvView::type (F16 and BF16 are raw bits).
template <DType T>
using KvElem = std::conditional_t<T == DType::kF32, float, uint16_t>;

template <class S, DType T>
inline typename S::V LoadKv(const KvElem<T>* p) {
  if constexpr (T == DType::kF32) {
    return S::Load(p);
  } else if constexpr (T == DType::kF16) {
    return S::LoadF16(p);
  } else {
    return S::LoadBf16(p);
  }
}

template <class S, DType T>
inline typename S::V LoadKvN(const KvElem<T>* p, int64_t n) {
  if constexpr (T == DType::kF32) {
    return S::LoadN(p, n);
  } else if constexpr (T == DType::kF16) {
    return S::LoadNF16(p, n);
  } else {
    return S::LoadNBf16(p, n);
  }
}

// Row of kv position `pos`, head `kv_head`, in the K (or V) blocks.
template <DType T>
inline const KvElem<T>* KvRow(const void* const* blocks, const KvView& kv, int64_t stride,
                              int64_t pos, int64_t off) {
  return static_cast<const KvElem<T>*>(blocks[pos / kv.block_size]) +
         (pos % kv.block_size) * stride + off;
}

// Widens n values to float (the row-tile kernel's 16-bit path).
template <class S, DType T>
inline void WidenRow(const KvElem<T>* src, int64_t n, float* dst) {
  constexpr int L = S::kLanes;
  int64_t d = 0;
  for (; d + L <= n; d += L) S::Store(dst + d, LoadKv<S, T>(src + d));
  if (d < n) S::StoreN(dst + d, LoadKvN<S, T>(src + d, n - d), n - d);
}

template <class S>
constexpr int64_t TileRows() {
  return 2 * S::kLanes;
}

// Scratch of one thread: RunTileR's Qt and Ot [head_dim][T], P [kKeyBlock][T], limits
// [T], l [T] and widened K and V blocks [kKeyBlock][head_dim] (16-bit caches), or
// RunTileFew's o [rows][padded head_dim] and s [rows][kKeyBlock] for up to 4 rows,
// whichever is larger. (The second is larger for the scalar kernels, where T is 2;
// split-key decode runs RunTileFew on every ISA.)
template <class S>
int64_t ScratchFloats(int64_t head_dim) {
  const int64_t tile =
      (2 * head_dim + kKeyBlock + 2) * TileRows<S>() + 4 * S::kLanes + 2 * kKeyBlock * head_dim;
  const int64_t padded = (head_dim + S::kLanes - 1) / S::kLanes * S::kLanes;
  const int64_t few = 4 * (padded + kKeyBlock);
  return tile > few ? tile : few;
}

// out[kk][rows] = Σ_d k_kk[d] · qt[d][rows] for KK keys at k, k + stride, ...
template <class S, int R, int KK>
inline void ScoreKeys(const float* qt, const float* k, int64_t stride, int64_t hd,
                      float* out) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int64_t T = TileRows<S>();
  V acc[KK][R];
#pragma GCC unroll 16
  for (int kk = 0; kk < KK; ++kk) {
#pragma GCC unroll 2
    for (int rv = 0; rv < R; ++rv) acc[kk][rv] = S::Zero();
  }
  for (int64_t d = 0; d < hd; ++d) {
    V qv[R];
#pragma GCC unroll 2
    for (int rv = 0; rv < R; ++rv) qv[rv] = S::Load(qt + d * T + rv * L);
#pragma GCC unroll 16
    for (int kk = 0; kk < KK; ++kk) {
      const V kb = S::Set(k[kk * stride + d]);
#pragma GCC unroll 2
      for (int rv = 0; rv < R; ++rv) acc[kk][rv] = S::Fma(kb, qv[rv], acc[kk][rv]);
    }
  }
#pragma GCC unroll 16
  for (int kk = 0; kk < KK; ++kk) {
#pragma GCC unroll 2
    for (int rv = 0; rv < R; ++rv) S::Store(out + kk * T + rv * L, acc[kk][rv]);
  }
}

// ot[d0 .. d0+KD)[rows] = alpha · ot + Σ_j v_j[d] · p[j][rows]
template <class S, int R, int KD>
inline void AccumulateValues(const float* p, const float* const* vp, int64_t nk, int64_t d0,
                             const typename S::V* alpha, float* ot) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int64_t T = TileRows<S>();
  V acc[KD][R];
#pragma GCC unroll 16
  for (int dd = 0; dd < KD; ++dd) {
#pragma GCC unroll 2
    for (int rv = 0; rv < R; ++rv) acc[dd][rv] = S::Mul(S::Load(ot + dd * T + rv * L), alpha[rv]);
  }
  for (int64_t j = 0; j < nk; ++j) {
    V pv[R];
#pragma GCC unroll 2
    for (int rv = 0; rv < R; ++rv) pv[rv] = S::Load(p + j * T + rv * L);
    const float* v = vp[j] + d0;
#pragma GCC unroll 16
    for (int dd = 0; dd < KD; ++dd) {
      const V vb = S::Set(v[dd]);
#pragma GCC unroll 2
      for (int rv = 0; rv < R; ++rv) acc[dd][rv] = S::Fma(vb, pv[rv], acc[dd][rv]);
    }
  }
#pragma GCC unroll 16
  for (int dd = 0; dd < KD; ++dd) {
#pragma GCC unroll 2
    for (int rv = 0; rv < R; ++rv) S::Store(ot + dd * T + rv * L, acc[dd][rv]);
  }
}

// Fills qt (zero-padded to R*L rows) and per-row limits; returns {min, max} limit.
template <class S, int R>
void LoadTile(const internal::AttentionTile& t, float* qt, float* lim, int64_t* min_lim,
              int64_t* max_lim) {
  constexpr int64_t T = TileRows<S>();
  const int64_t hd = t.head_dim;
  *min_lim = t.kv->length - 1;
  *max_lim = 0;
  for (int64_t r = 0; r < t.row_count; ++r) {
    const int64_t gr = t.row_begin + r;
    const int64_t i = gr / t.group, h = t.kv_head * t.group + gr % t.group;
    const float* qrow = t.q + (i * t.num_heads + h) * hd;
    for (int64_t d = 0; d < hd; ++d) qt[d * T + r] = qrow[d];
    const int64_t l = t.q_positions ? t.q_positions[i] : t.kv->length - 1;
    lim[r] = static_cast<float>(l);
    if (l < *min_lim) *min_lim = l;
    if (l > *max_lim) *max_lim = l;
  }
  for (int64_t r = t.row_count; r < R * S::kLanes; ++r) {
    for (int64_t d = 0; d < hd; ++d) qt[d * T + r] = 0.0f;
    lim[r] = static_cast<float>(*max_lim);
  }
}

// Scores for keys [k0, k0 + nk) into p[j][rows]. Groups of KK keys that sit in one
// block of `bs` rows `stride` floats apart take the register-blocked path.
template <class S, int R, int KK>
void ScoreBlock(const internal::AttentionTile& t, const float* qt, const float* const* kp,
                int64_t k0, int64_t nk, int64_t bs, int64_t stride, float* p) {
  constexpr int64_t T = TileRows<S>();
  int64_t j = 0;
  for (; j + KK <= nk; j += KK) {
    if ((k0 + j) / bs == (k0 + j + KK - 1) / bs) {
      ScoreKeys<S, R, KK>(qt, kp[j], stride, t.head_dim, p + j * T);
    } else {
      for (int kk = 0; kk < KK; ++kk) ScoreKeys<S, R, 1>(qt, kp[j + kk], 0, t.head_dim, p + (j + kk) * T);
    }
  }
  for (; j < nk; ++j) ScoreKeys<S, R, 1>(qt, kp[j], 0, t.head_dim, p + j * T);
}

// Prefetches the K and V rows of keys [k0, k0 + nk) into cache. Positions are one kv
// row apart (num_kv_heads * head_dim floats, often several KiB), so in a long decode
// almost every key starts a new page, where hardware prefetchers stop.
template <DType T>
inline void PrefetchKeys(const internal::AttentionTile& t, int64_t k0, int64_t nk) {
  const KvView& kv = *t.kv;
  const int64_t stride = t.num_kv_heads * t.head_dim, off = t.kv_head * t.head_dim;
  const int64_t bytes = t.head_dim * static_cast<int64_t>(sizeof(KvElem<T>));
  for (int64_t pos = k0; pos < k0 + nk; ++pos) {
    const auto* k = reinterpret_cast<const char*>(KvRow<T>(kv.k_blocks, kv, stride, pos, off));
    const auto* v = reinterpret_cast<const char*>(KvRow<T>(kv.v_blocks, kv, stride, pos, off));
    for (int64_t b = 0; b < bytes; b += 64) {
      __builtin_prefetch(k + b, 0, 2);  // into L2 (T1): 64 keys' rows would flood L1
      __builtin_prefetch(v + b, 0, 2);
    }
  }
}

// Turns scores p[j][rows] into exp(s - m_new) in place and updates m, l; returns alpha =
// exp(m_old - m_new) per row vector in `alpha`.
template <class S, int R>
void SoftmaxBlock(int64_t k0, int64_t nk, bool masked, float scale, const typename S::V* limv,
                  typename S::V* m, typename S::V* l, typename S::V* alpha, float* p) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int64_t T = TileRows<S>();
  const V neg_inf = S::Set(-__builtin_inff());
  V bm[R];
  for (int rv = 0; rv < R; ++rv) bm[rv] = neg_inf;
  for (int64_t j = 0; j < nk; ++j) {
    const V kpos = S::Set(static_cast<float>(k0 + j));
    for (int rv = 0; rv < R; ++rv) {
      V s = S::Mul(S::Load(p + j * T + rv * L), S::Set(scale));
      if (masked) s = S::Select(S::Gt(kpos, limv[rv]), neg_inf, s);
      S::Store(p + j * T + rv * L, s);
      bm[rv] = S::Max(bm[rv], s);
    }
  }
  V msafe[R], sum[R];
  for (int rv = 0; rv < R; ++rv) {
    const V mn = S::Max(m[rv], bm[rv]);
    // A row with nothing visible yet keeps m = -inf; subtract 0 then so exp gives 0, not NaN.
    msafe[rv] = S::Select(S::Eq(mn, neg_inf), S::Zero(), mn);
    alpha[rv] = vmath::Exp<S>(S::Sub(m[rv], msafe[rv]));
    m[rv] = mn;
    sum[rv] = S::Zero();
  }
  for (int64_t j = 0; j < nk; ++j) {
    for (int rv = 0; rv < R; ++rv) {
      const V e = vmath::Exp<S>(S::Sub(S::Load(p + j * T + rv * L), msafe[rv]));
      S::Store(p + j * T + rv * L, e);
      sum[rv] = S::Add(sum[rv], e);
    }
  }
  for (int rv = 0; rv < R; ++rv) l[rv] = S::Fma(l[rv], alpha[rv], sum[rv]);
}

template <class S, int R, int kAcc, DType KT>
void RunTileR(const internal::AttentionTile& t, float* scratch) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int64_t T = TileRows<S>();
  const int64_t hd = t.head_dim;
  float* qt = scratch;           // [hd][T]
  float* ot = qt + hd * T;       // [hd][T]
  float* p = ot + hd * T;        // [kKeyBlock][T]
  float* lim = p + kKeyBlock * T;  // [T]
  float* lsum = lim + T;         // [T]
  float* kw = lsum + T + 4 * L;  // [kKeyBlock][hd] widened keys (16-bit caches)
  float* vw = kw + kKeyBlock * hd;  // [kKeyBlock][hd] widened values
  int64_t min_lim, max_lim;
  LoadTile<S, R>(t, qt, lim, &min_lim, &max_lim);
  for (int64_t i = 0; i < hd * T; ++i) ot[i] = 0.0f;

  V m[R], l[R], limv[R], alpha[R];
  for (int rv = 0; rv < R; ++rv) {
    m[rv] = S::Set(-__builtin_inff());
    l[rv] = S::Zero();
    limv[rv] = S::Load(lim + rv * L);
  }
  const KvView& kv = *t.kv;
  const int64_t stride = t.num_kv_heads * hd, head_off = t.kv_head * hd;
  // Widened blocks are one contiguous run of rows hd floats apart.
  const int64_t score_bs = KT == DType::kF32 ? kv.block_size : kKeyBlock;
  const int64_t score_stride = KT == DType::kF32 ? stride : hd;
  const float* kp[kKeyBlock];
  const float* vp[kKeyBlock];
  const int64_t end = max_lim + 1;
  for (int64_t k0 = 0; k0 < end; k0 += kKeyBlock) {
    const int64_t nk = end - k0 < kKeyBlock ? end - k0 : kKeyBlock;
    for (int64_t j = 0; j < nk; ++j) {
      const KvElem<KT>* k = KvRow<KT>(kv.k_blocks, kv, stride, k0 + j, head_off);
      const KvElem<KT>* v = KvRow<KT>(kv.v_blocks, kv, stride, k0 + j, head_off);
      if constexpr (KT == DType::kF32) {
        kp[j] = k;
        vp[j] = v;
      } else {
        WidenRow<S, KT>(k, hd, kw + j * hd);
        WidenRow<S, KT>(v, hd, vw + j * hd);
        kp[j] = kw + j * hd;
        vp[j] = vw + j * hd;
      }
    }
    if (k0 + kKeyBlock < end) {
      const int64_t next = end - k0 - kKeyBlock;
      PrefetchKeys<KT>(t, k0 + kKeyBlock, next < kKeyBlock ? next : kKeyBlock);
    }
    ScoreBlock<S, R, kAcc / R>(t, qt, kp, k0, nk, score_bs, score_stride, p);
    SoftmaxBlock<S, R>(k0, nk, k0 + nk - 1 > min_lim, t.scale, limv, m, l, alpha, p);
    int64_t d = 0;
    for (; d + kAcc / R <= hd; d += kAcc / R) {
      AccumulateValues<S, R, kAcc / R>(p, vp, nk, d, alpha, ot + d * T);
    }
    for (; d < hd; ++d) AccumulateValues<S, R, 1>(p, vp, nk, d, alpha, ot + d * T);
  }
  for (int rv = 0; rv < R; ++rv) S::Store(lsum + rv * L, l[rv]);
  for (int64_t r = 0; r < t.row_count; ++r) {
    const int64_t gr = t.row_begin + r;
    const int64_t i = gr / t.group, h = t.kv_head * t.group + gr % t.group;
    float* orow = t.out + (i * t.num_heads + h) * hd;
    const float inv = 1.0f / lsum[r];
    for (int64_t d = 0; d < hd; ++d) orow[d] = ot[d * T + r] * inv;
  }
}

// ---- Few rows (decode without much GQA sharing): lanes run across head_dim instead,
// so each K/V element is loaded once as part of a vector rather than broadcast per row.

// Scratch for RunTileFew: O [R][hd_pad], scores/probabilities [R][kKeyBlock].
template <class S>
constexpr int64_t PaddedDim(int64_t head_dim) {
  return (head_dim + S::kLanes - 1) / S::kLanes * S::kLanes;
}

// s[r][j] = scale · q_r·k_j for the block's keys, -inf where masked.
template <class S, int R, DType KT>
void ScoreFew(const float* const* qr, const KvElem<KT>* const* kp, int64_t nk, int64_t hd,
              int64_t k0, const int64_t* lim, float scale, float* s) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  int64_t j = 0;
  if (hd % L == 0) {
    // Four keys at a time: their R×4 dot products are reduced four at once (SumLanes4).
    // Which keys form a group depends only on j, so results stay layout-independent.
    for (; j + 4 <= nk; j += 4) {
      V acc[4][R];
#pragma GCC unroll 8
      for (int kk = 0; kk < 4; ++kk) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[kk][r] = S::Zero();
      }
      for (int64_t d = 0; d < hd; d += L) {
        V qv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) qv[r] = S::Load(qr[r] + d);
#pragma GCC unroll 8
        for (int kk = 0; kk < 4; ++kk) {
          const V k = LoadKv<S, KT>(kp[j + kk] + d);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) acc[kk][r] = S::Fma(qv[r], k, acc[kk][r]);
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        float* out = s + r * kKeyBlock + j;
        S::SumLanes4(acc[0][r], acc[1][r], acc[2][r], acc[3][r], out);
#pragma GCC unroll 8
        for (int kk = 0; kk < 4; ++kk) {
          out[kk] = k0 + j + kk > lim[r] ? -__builtin_inff() : out[kk] * scale;
        }
      }
    }
  }
  for (; j < nk; ++j) {
    V acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = S::Zero();
    int64_t d = 0;
    for (; d + L <= hd; d += L) {
      const V k = LoadKv<S, KT>(kp[j] + d);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r] = S::Fma(S::Load(qr[r] + d), k, acc[r]);
    }
    if (d < hd) {
      const V k = LoadKvN<S, KT>(kp[j] + d, hd - d);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r] = S::Fma(S::LoadN(qr[r] + d, hd - d), k, acc[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      s[r * kKeyBlock + j] = k0 + j > lim[r] ? -__builtin_inff() : S::SumLanes(acc[r]) * scale;
    }
  }
}

// o_r = alpha_r · o_r + Σ_j p[r][j] · v_j over head_dim, CH vectors at a time.
template <class S, int R, int CH, DType KT>
inline void AccumulateFew(const float* p, const KvElem<KT>* const* vp, int64_t nk, int64_t d0,
                          int64_t hd, int64_t hd_pad, const float* alpha, float* o) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  V acc[R][CH];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) {
      acc[r][c] = S::Mul(S::Load(o + r * hd_pad + d0 + c * L), S::Set(alpha[r]));
    }
  }
  const bool partial = d0 + CH * L > hd;  // only when CH == 1, at the last chunk
  for (int64_t j = 0; j < nk; ++j) {
    V v[CH];
    if constexpr (CH == 1) {
      v[0] = partial ? LoadKvN<S, KT>(vp[j] + d0, hd - d0) : LoadKv<S, KT>(vp[j] + d0);
    } else {
#pragma GCC unroll 8
      for (int c = 0; c < CH; ++c) v[c] = LoadKv<S, KT>(vp[j] + d0 + c * L);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V pb = S::Set(p[r * kKeyBlock + j]);
#pragma GCC unroll 8
      for (int c = 0; c < CH; ++c) acc[r][c] = S::Fma(pb, v[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) S::Store(o + r * hd_pad + d0 + c * L, acc[r][c]);
  }
}

// Per row: block max, rescale factor, p = exp(s - m) in place, running sum.
template <class S, int R>
void SoftmaxFew(int64_t nk, float* s, float* m, float* l, float* alpha) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr float kNegInf = -__builtin_inff();
  for (int r = 0; r < R; ++r) {
    float* sr = s + r * kKeyBlock;
    float bm = kNegInf;
    for (int64_t j = 0; j < nk; ++j) bm = sr[j] > bm ? sr[j] : bm;
    const float mn = bm > m[r] ? bm : m[r];
    const float msafe = mn == kNegInf ? 0.0f : mn;
    alpha[r] = S::MaxLanes(vmath::Exp<S>(S::Set(m[r] - msafe)));
    m[r] = mn;
    V sum = S::Zero();
    int64_t j = 0;
    for (; j + L <= nk; j += L) {
      const V e = vmath::Exp<S>(S::Sub(S::Load(sr + j), S::Set(msafe)));
      S::Store(sr + j, e);
      sum = S::Add(sum, e);
    }
    if (j < nk) {
      const V e = vmath::Exp<S>(S::Sub(S::LoadNFill(sr + j, nk - j, kNegInf), S::Set(msafe)));
      S::StoreN(sr + j, e, nk - j);
      sum = S::Add(sum, e);
    }
    l[r] = l[r] * alpha[r] + S::SumLanes(sum);
  }
}

// Keys [k_begin, k_end) only (k_begin a multiple of kKeyBlock). part == nullptr: the
// normalised rows go to t.out. Otherwise row r's unnormalised output, running max and
// running sum go to part[r * (hd + 2) + {0..hd-1, hd, hd + 1}] (split-key decode, see
// Attention()).
template <class S, int R, DType KT>
void RunTileFew(const internal::AttentionTile& t, int64_t k_begin, int64_t k_end,
                float* part, float* scratch) {
  constexpr int L = S::kLanes;
  const int64_t hd = t.head_dim, hd_pad = PaddedDim<S>(hd);
  float* o = scratch;            // [R][hd_pad]
  float* s = o + R * hd_pad;     // [R][kKeyBlock]
  const float* qr[R];
  float* outr[R];
  int64_t lim[R];
  float m[R], l[R], alpha[R];
  int64_t end = 0;
  for (int r = 0; r < R; ++r) {
    const int64_t gr = t.row_begin + r;
    const int64_t i = gr / t.group, h = t.kv_head * t.group + gr % t.group;
    qr[r] = t.q + (i * t.num_heads + h) * hd;
    outr[r] = t.out + (i * t.num_heads + h) * hd;
    lim[r] = t.q_positions ? t.q_positions[i] : t.kv->length - 1;
    end = lim[r] + 1 > end ? lim[r] + 1 : end;
    m[r] = -__builtin_inff();
    l[r] = 0.0f;
  }
  for (int64_t i = 0; i < R * hd_pad; ++i) o[i] = 0.0f;
  const KvView& kv = *t.kv;
  const int64_t stride = t.num_kv_heads * hd, head_off = t.kv_head * hd;
  const KvElem<KT>* kp[kKeyBlock];
  const KvElem<KT>* vp[kKeyBlock];
  if (k_end < end) end = k_end;
  for (int64_t k0 = k_begin; k0 < end; k0 += kKeyBlock) {
    const int64_t nk = end - k0 < kKeyBlock ? end - k0 : kKeyBlock;
    for (int64_t j = 0; j < nk; ++j) {
      kp[j] = KvRow<KT>(kv.k_blocks, kv, stride, k0 + j, head_off);
      vp[j] = KvRow<KT>(kv.v_blocks, kv, stride, k0 + j, head_off);
    }
    if (k0 + kKeyBlock < end) {
      const int64_t next = end - k0 - kKeyBlock;
      PrefetchKeys<KT>(t, k0 + kKeyBlock, next < kKeyBlock ? next : kKeyBlock);
    }
    ScoreFew<S, R, KT>(qr, kp, nk, hd, k0, lim, t.scale, s);
    SoftmaxFew<S, R>(nk, s, m, l, alpha);
    constexpr int kChunks = R == 1 ? 8 : 4;
    int64_t d = 0;
    for (; d + kChunks * L <= hd; d += kChunks * L) {
      AccumulateFew<S, R, kChunks, KT>(s, vp, nk, d, hd, hd_pad, alpha, o);
    }
    for (; d < hd; d += L) AccumulateFew<S, R, 1, KT>(s, vp, nk, d, hd, hd_pad, alpha, o);
  }
  for (int r = 0; r < R; ++r) {
    if (part != nullptr) {
      float* pr = part + r * (hd + 2);
      for (int64_t d = 0; d < hd; ++d) pr[d] = o[r * hd_pad + d];
      pr[hd] = m[r];
      pr[hd + 1] = l[r];
      continue;
    }
    const float inv = 1.0f / l[r];
    for (int64_t d = 0; d < hd; ++d) outr[r][d] = o[r * hd_pad + d] * inv;
  }
}

// Split-key decode: rows [0, row_count <= 4) over keys [k_begin, k_end), partial results.
template <class S, DType KT>
void RunKeysT(const internal::AttentionTile& t, int64_t k_begin, int64_t k_end, float* part,
              float* scratch) {
  switch (t.row_count) {
    case 1: return RunTileFew<S, 1, KT>(t, k_begin, k_end, part, scratch);
    case 2: return RunTileFew<S, 2, KT>(t, k_begin, k_end, part, scratch);
    case 3: return RunTileFew<S, 3, KT>(t, k_begin, k_end, part, scratch);
    default: return RunTileFew<S, 4, KT>(t, k_begin, k_end, part, scratch);
  }
}

template <class S>
void RunKeys(const internal::AttentionTile& t, int64_t k_begin, int64_t k_end, float* part,
             float* scratch) {
  switch (t.kv->type) {
    case DType::kF16: return RunKeysT<S, DType::kF16>(t, k_begin, k_end, part, scratch);
    case DType::kBF16: return RunKeysT<S, DType::kBF16>(t, k_begin, k_end, part, scratch);
    default: return RunKeysT<S, DType::kF32>(t, k_begin, k_end, part, scratch);
  }
}

// kAcc: vector accumulators the register-blocked loops may use (16 of AVX-512's 32
// registers, 8 of AVX2's 16).
template <class S, int kAcc>
void RunTile(const internal::AttentionTile& t, float* scratch) {
  // Up to 4 rows, vectors over head_dim need far fewer instructions than mostly-empty
  // row lanes. (The split depends only on the shape, so results stay thread-independent.)
  if (S::kLanes > 1 && t.row_count <= 4) {
    return RunKeys<S>(t, 0, t.kv->length, nullptr, scratch);
  }
  const bool one = t.row_count <= S::kLanes;
  switch (t.kv->type) {
    case DType::kF16:
      return one ? RunTileR<S, 1, kAcc, DType::kF16>(t, scratch)
                 : RunTileR<S, 2, kAcc, DType::kF16>(t, scratch);
    case DType::kBF16:
      return one ? RunTileR<S, 1, kAcc, DType::kBF16>(t, scratch)
                 : RunTileR<S, 2, kAcc, DType::kBF16>(t, scratch);
    default:
      return one ? RunTileR<S, 1, kAcc, DType::kF32>(t, scratch)
                 : RunTileR<S, 2, kAcc, DType::kF32>(t, scratch);
  }
}

template <class S, int kAcc>
constexpr internal::AttentionKernel MakeAttentionKernel() {
  return internal::AttentionKernel{TileRows<S>(), &ScratchFloats<S>, &RunTile<S, kAcc>,
                                   &RunKeys<S>};
}

}  // namespace vlserve::kernels::attnimpl
