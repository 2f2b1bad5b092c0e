// AVX-512 packed GEMM for float weights (design: gemm_float.h).
//
// Register tile: 14 tokens × 32 output rows = 28 zmm accumulators, 2 zmm of packed W and
// one broadcast register per k step (31 of 32 zmm). F32 path: 28 FMAs per 2 loads + 14
// broadcasts. BF16 path (vdpbf16ps): the same tile over k pairs — each W vector holds
// 16 rows × (k, k+1), each broadcast one token's (x_k, x_k+1) pair — 2× the FLOPs per
// instruction.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "base/aligned.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_float.h"
#include "kernels/pack_avx512-inl.h"

namespace vlserve::kernels::internal {
namespace {

using avx512::ForItems;
using avx512::Mask16;
using avx512::Mask32;
using avx512::PairsFromFloats;
using avx512::ToBf16Bits;
using avx512::Transpose16;

constexpr int kMr = 14;              // tokens per register tile
constexpr int kNr = 32;              // weight rows per packed panel / register tile
constexpr int64_t kMc = 8 * kMr;     // tokens per work tile (112)
constexpr int64_t kNc = 4 * kNr;     // weight rows per work tile (128)
constexpr int64_t kKcF32 = 256;      // k per block: 14×256 floats = 14 KiB sliver in L1
constexpr int64_t kKcPairs = 256;    // bf16 k pairs per block (same bytes)

// Loads `count` (<= 16) 32-bit elements starting at element e0 of weight row `row`;
// missing lanes are zero. Elements are floats (F32, F16 and BF16 widened), or bf16
// (k, k+1) pairs of stored BF16 (kBf16Pairs).
enum class Elem { kF32, kF16, kBf16Wide, kBf16Pairs };
template <Elem E>
inline __m512i LoadElems(const uint8_t* row, int64_t e0, int64_t count, int64_t cols) {
  if constexpr (E == Elem::kF32) {
    return _mm512_castps_si512(
        _mm512_maskz_loadu_ps(Mask16(count), reinterpret_cast<const float*>(row) + e0));
  } else if constexpr (E == Elem::kF16) {
    return _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(Mask16(count), row + 2 * e0)));
  } else if constexpr (E == Elem::kBf16Wide) {
    const __m256i h = _mm256_maskz_loadu_epi16(Mask16(count), row + 2 * e0);
    return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
  } else {
    static_assert(E == Elem::kBf16Pairs);
    // Pair e covers bf16 values 2e, 2e+1; an odd last column leaves the high half zero.
    return _mm512_maskz_loadu_epi16(Mask32(cols - 2 * e0), row + 4 * e0);
  }
}

// Packs weight rows [32p, 32p+32) into dst[e][32] (32-bit elements, k-major); rows past
// w.rows are zero. num_elems: cols (floats) or ceil(cols/2) (bf16 pairs).
struct WSrc {
  const uint8_t* data;
  int64_t rows, cols, row_bytes;
};

template <Elem E>
void PackPanel(const WSrc& w, int64_t p, int64_t num_elems, uint32_t* dst) {
  for (int64_t e0 = 0; e0 < num_elems; e0 += 16) {
    const int64_t count = std::min<int64_t>(16, num_elems - e0);
    for (int half = 0; half < 2; ++half) {
      __m512i v[16];
      for (int j = 0; j < 16; ++j) {
        const int64_t r = p * kNr + half * 16 + j;
        v[j] = r < w.rows
            ? LoadElems<E>(w.data + r * w.row_bytes, e0, count, w.cols)
            : _mm512_setzero_si512();
      }
      Transpose16(v);  // v[kk] = element e0 + kk of the 16 rows
      for (int64_t kk = 0; kk < count; ++kk) {
        _mm512_store_si512(dst + (e0 + kk) * kNr + half * 16, v[kk]);
      }
    }
  }
}

// Packs tokens [t0, t0+mr) of x [n][cols] into dst[e][mr]: floats, or (kPairs) bf16
// pairs as 32-bit elements. `rows` is scratch for mr converted token rows (kPairs).
template <bool kPairs>
void PackTokens(const float* x, int64_t ldx, int64_t cols, int64_t t0, int mr,
                int64_t num_elems, uint32_t* rows, uint32_t* dst) {
  const uint32_t* src = reinterpret_cast<const uint32_t*>(x + t0 * ldx);
  int64_t ld = ldx;
  if constexpr (kPairs) {
    ld = (num_elems + 31) / 32 * 32;
    for (int i = 0; i < mr; ++i) {
      const float* xr = x + (t0 + i) * ldx;
      for (int64_t k = 0; k < 2 * num_elems; k += 32) {
        _mm512_storeu_si512(rows + i * ld + k / 2, PairsFromFloats(xr + k, cols - k));
      }
    }
    src = rows;
  }
  const __mmask16 out_mask = Mask16(mr);
  for (int64_t e0 = 0; e0 < num_elems; e0 += 16) {
    const int64_t count = std::min<int64_t>(16, num_elems - e0);
    __m512i v[16];
    for (int i = 0; i < 16; ++i) {
      v[i] = i < mr ? _mm512_maskz_loadu_epi32(Mask16(count), src + i * ld + e0)
                    : _mm512_setzero_si512();
    }
    Transpose16(v);  // v[kk] lane i = element e0 + kk of token i
    for (int64_t kk = 0; kk < count; ++kk) {
      _mm512_mask_storeu_epi32(dst + (e0 + kk) * mr, out_mask, v[kk]);
    }
  }
}

// c[MR][ncols] (row stride ldc) = (load_c ? c : 0) + a[kc][MR] · b[kc][32].
template <int MR, bool kBf16>
void Micro(const uint32_t* a, const uint32_t* b, int64_t kc, float* c, int64_t ldc, int ncols,
           bool load_c) {
  const __mmask16 m0 = Mask16(ncols), m1 = Mask16(std::max(ncols - 16, 0));
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    acc0[i] = load_c ? _mm512_maskz_loadu_ps(m0, c + i * ldc) : _mm512_setzero_ps();
    acc1[i] = load_c ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512i b0 = _mm512_load_si512(b + k * kNr);
    const __m512i b1 = _mm512_load_si512(b + k * kNr + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(a[k * MR + i]));
      if constexpr (kBf16) {
        acc0[i] = _mm512_dpbf16_ps(acc0[i], (__m512bh)av, (__m512bh)b0);
        acc1[i] = _mm512_dpbf16_ps(acc1[i], (__m512bh)av, (__m512bh)b1);
      } else {
        acc0[i] = _mm512_fmadd_ps(_mm512_castsi512_ps(av), _mm512_castsi512_ps(b0), acc0[i]);
        acc1[i] = _mm512_fmadd_ps(_mm512_castsi512_ps(av), _mm512_castsi512_ps(b1), acc1[i]);
      }
    }
  }
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
  }
}

using MicroFn = void (*)(const uint32_t*, const uint32_t*, int64_t, float*, int64_t, int, bool);

template <bool kBf16, size_t... I>
constexpr std::array<MicroFn, kMr + 1> MicroTable(std::index_sequence<I...>) {
  return {nullptr, &Micro<static_cast<int>(I + 1), kBf16>...};
}
template <bool kBf16>
MicroFn MicroFor(int mr) {
  static constexpr auto kTable = MicroTable<kBf16>(std::make_index_sequence<kMr>());
  return kTable[mr];
}

struct Problem {
  int64_t n, rows, num_elems;  // num_elems: k elements (floats or bf16 pairs)
  const uint32_t* a;           // packed tokens: block b at b*kMr*num_elems, [e][mr]
  const uint32_t* b;           // packed panels: panel p at p*kNr*num_elems, [e][32]
  float* y;
  int64_t ldy;
  bool bf16;
};

// One work tile: tokens [t0, t1) × panels [p0, p1), k blocked by kc.
void ComputeTile(const Problem& pr, int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
  const int64_t kc_max = pr.bf16 ? kKcPairs : kKcF32;
  for (int64_t e0 = 0; e0 < pr.num_elems; e0 += kc_max) {
    const int64_t kc = std::min(kc_max, pr.num_elems - e0);
    for (int64_t t = t0; t < t1; t += kMr) {
      const int mr = static_cast<int>(std::min<int64_t>(kMr, pr.n - t));
      const MicroFn fn = pr.bf16 ? MicroFor<true>(mr) : MicroFor<false>(mr);
      const uint32_t* a = pr.a + t * pr.num_elems + e0 * mr;
      for (int64_t p = p0; p < p1; ++p) {
        const int ncols = static_cast<int>(std::min<int64_t>(kNr, pr.rows - p * kNr));
        fn(a, pr.b + (p * pr.num_elems + e0) * kNr, kc, pr.y + t * pr.ldy + p * kNr, pr.ldy,
           ncols, e0 > 0);
      }
    }
  }
}

void PackPanelFor(const GemmSpec& g, int64_t p, int64_t num_elems, uint32_t* dst) {
  const WSrc w{static_cast<const uint8_t*>(g.w), g.rows, g.cols, g.w_ld};
  switch (g.layout) {
    case GemmLayout::kF32: return PackPanel<Elem::kF32>(w, p, num_elems, dst);
    case GemmLayout::kF16: return PackPanel<Elem::kF16>(w, p, num_elems, dst);
    case GemmLayout::kBf16Wide: return PackPanel<Elem::kBf16Wide>(w, p, num_elems, dst);
    case GemmLayout::kBf16Pairs: return PackPanel<Elem::kBf16Pairs>(w, p, num_elems, dst);
  }
}

}  // namespace

bool GemmUsesBf16(GemmLayout layout) {
  return layout == GemmLayout::kBf16Pairs;
}

void RunGemmAvx512(const GemmSpec& g, ThreadPool* pool) {
  const bool pairs = GemmUsesBf16(g.layout);
  const int64_t num_elems = pairs ? (g.cols + 1) / 2 : g.cols;
  const int64_t panels = (g.rows + kNr - 1) / kNr, blocks = (g.n + kMr - 1) / kMr;
  // Packing buffers per calling thread (MatMul is not reentrant on one pool).
  thread_local AlignedBuffer<uint32_t> pa, pb;
  pa.Resize(g.n * num_elems);
  pb.Resize(panels * kNr * num_elems);
  uint32_t* const a = pa.data();
  uint32_t* const b = pb.data();
  ForItems(pool, panels + blocks, [&](int64_t item) {
    if (item < panels) return PackPanelFor(g, item, num_elems, b + item * kNr * num_elems);
    thread_local AlignedBuffer<uint32_t> rows;
    if (pairs) rows.Resize(kMr * ((num_elems + 31) / 32 * 32));
    const int64_t t0 = (item - panels) * kMr;
    const int mr = static_cast<int>(std::min<int64_t>(kMr, g.n - t0));
    if (pairs) {
      PackTokens<true>(g.x, g.ldx, g.cols, t0, mr, num_elems, rows.data(), a + t0 * num_elems);
    } else {
      PackTokens<false>(g.x, g.ldx, g.cols, t0, mr, num_elems, rows.data(), a + t0 * num_elems);
    }
  });
  const Problem pr{g.n, g.rows, num_elems, a, b, g.y, g.ldy, pairs};
  const int64_t panels_per_tile = kNc / kNr;
  const int64_t row_tiles = (panels + panels_per_tile - 1) / panels_per_tile;
  const int64_t tok_tiles = (g.n + kMc - 1) / kMc;
  ForItems(pool, row_tiles * tok_tiles, [&](int64_t item) {
    const int64_t rt = item % row_tiles, tt = item / row_tiles;
    ComputeTile(pr, tt * kMc, std::min(g.n, (tt + 1) * kMc), rt * panels_per_tile,
                std::min(panels, (rt + 1) * panels_per_tile));
  });
}

void GemmFloatAvx512(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool* pool) {
  GemmLayout layout = GemmLayout::kF32;
  if (w.type == DType::kF16) layout = GemmLayout::kF16;
  if (w.type == DType::kBF16) {
    layout = HasAvx512Bf16() ? GemmLayout::kBf16Pairs : GemmLayout::kBf16Wide;
  }
  RunGemmAvx512(GemmSpec{layout, w.data, RowBytes(w.type, w.cols), w.rows, w.cols, x, w.cols, n,
                         y, w.rows},
                pool);
}

}  // namespace vlserve::kernels::internal
