// AVX-512 VNNI prefill kernel for Q8_0 / Q4_0 / Q5_0 weights (n >= kPackedMinTokens).
//
// The dot-product kernels of matmul_q_avx512.cc spend a float convert + multiply + FMA
// on every 64 products (one vpdpbusd), which caps int8 GEMM at the F32 FMA rate. Here
// each 16-row panel of weights is first repacked (once per call and row chunk, then
// reused by every token) so that one zmm holds 4 consecutive k-bytes of 16 rows:
//   packed[b][k4] = { w[r+0][32b+4k4 .. +3], w[r+1][...], ..., w[r+15][...] }  (64 bytes)
// as *unsigned* levels (Q8_0: q + 128; Q4_0: q in 0..15; Q5_0: q in 0..31). A token's 4
// activation bytes are broadcast to all lanes, so one vpdpbusd does 16 rows x 4 k, and the
// float work (convert, scale, accumulate) happens once per 32-value block per 16 rows:
//   y[t][r] = Σ_b dw[r][b] · da[t][b] · (Σ_k u[r][k]·a[t][k] − offset · Σ_k a[t][k])
// with offset 128 / 8 / 16 folded into the int32 accumulator start (the activation block
// sums come with the kQ8 layout). All products are exact integers; blocks are summed in
// float in block order, so results do not depend on threads or on how rows are chunked.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "base/aligned.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_blocks.h"

namespace vlserve::kernels::internal {
namespace {

constexpr int kPanel = 16;  // rows per packed panel (one zmm of int32 lanes)

// Unpackers: 32 unsigned levels and the float scale of block `blk`.
struct UnpackQ8_0 {
  static constexpr int kBytes = 34, kOffsetShift = 7;  // offset 128
  static float Unpack(const uint8_t* blk, uint8_t* u) {
    for (int j = 0; j < kQK; ++j) u[j] = static_cast<uint8_t>(blk[2 + j] ^ 0x80);
    uint16_t d;
    std::memcpy(&d, blk, 2);
    return F16ToF32(d);
  }
};
struct UnpackQ4_0 {
  static constexpr int kBytes = 18, kOffsetShift = 3;  // offset 8
  static float Unpack(const uint8_t* blk, uint8_t* u) {
    for (int j = 0; j < kQK / 2; ++j) {
      u[j] = blk[2 + j] & 0x0f;
      u[j + 16] = blk[2 + j] >> 4;
    }
    uint16_t d;
    std::memcpy(&d, blk, 2);
    return F16ToF32(d);
  }
};
struct UnpackQ5_0 {
  static constexpr int kBytes = 22, kOffsetShift = 4;  // offset 16
  static float Unpack(const uint8_t* blk, uint8_t* u) {
    uint32_t qh;
    std::memcpy(&qh, blk + 2, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      u[j] = (blk[6 + j] & 0x0f) | (((qh >> j) & 1) << 4);
      u[j + 16] = (blk[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    }
    uint16_t d;
    std::memcpy(&d, blk, 2);
    return F16ToF32(d);
  }
};

// Where PackPanel reads a row from: the file's layout, one row after another.
template <class U>
struct FileRows {
  static constexpr int kOffsetShift = U::kOffsetShift;
  const uint8_t* w;
  int64_t stride;
  // Writes the row as lane `lane` of the panel q[nb][8][64] / d[nb][16].
  void PackRow(int64_t row, int64_t nb, int lane, uint8_t* q, float* d) const {
    uint8_t u[kQK];
    for (int64_t b = 0; b < nb; ++b) {
      d[b * kPanel + lane] = U::Unpack(w + row * stride + b * U::kBytes, u);
      for (int k4 = 0; k4 < kQK / 4; ++k4) {
        std::memcpy(q + (b * 8 + k4) * 64 + lane * 4, u + k4 * 4, 4);
      }
    }
  }
};
// Q4_0 / Q5_0 as prepacked for the dot-product kernel (matmul_q4pack_avx512.cc). Their
// rows come in 4-row groups (rows % 4 == 0, so a panel's rows_here is a multiple of 4
// too), which PackRows4 unpacks together.
using PackRows4Fn = void (*)(const uint8_t*, int64_t, int64_t, int, uint8_t*, float*);
template <class U, PackRows4Fn kRows4>
struct PrepackedGroupRows {
  static constexpr int kOffsetShift = U::kOffsetShift;
  const uint8_t* w;
  void PackRows4(int64_t row, int64_t nb, int lane, uint8_t* q, float* d) const {
    kRows4(w, nb, row, lane, q, d);
  }
};
using PrepackedQ4_0Rows = PrepackedGroupRows<UnpackQ4_0, PackPrepackedQ4_0Rows4>;
using PrepackedQ5_0Rows = PrepackedGroupRows<UnpackQ5_0, PackPrepackedQ5_0Rows4>;

// Repacks rows [r, r + rows_here) (rows_here <= 16; missing rows are zero) into
// q[nb][8][64] bytes and d[nb][16] floats.
template <class Src>
void PackPanel(const Src& src, int64_t r, int rows_here, int64_t nb, uint8_t* q, float* d) {
  constexpr bool kGroups = requires { src.PackRows4(r, nb, 0, q, d); };
  for (int i = 0; i < kPanel; ++i) {
    if (i < rows_here) {
      if constexpr (kGroups) {  // rows_here is a multiple of 4 (see PrepackedGroupRows)
        src.PackRows4(r + i, nb, i, q, d);
        i += 3;
      } else {
        src.PackRow(r + i, nb, i, q, d);
      }
      continue;
    }
    for (int64_t b = 0; b < nb; ++b) {
      d[b * kPanel + i] = 0;
      for (int k4 = 0; k4 < kQK / 4; ++k4) std::memset(q + (b * 8 + k4) * 64 + i * 4, 0, 4);
    }
  }
}

struct Packed {
  const uint8_t* q[2];
  const float* d[2];
  int64_t nb;
};

// Accumulates y for panels p.q[0..R) × tokens [t, t + T) and stores the 16·R row values
// of each token (rows_here[i] valid rows in panel i).
template <int R, int T, int kShift>
void PanelTile(const Packed& p, const uint8_t* act, int64_t stride, int64_t ld, int64_t t,
               float* y, int64_t rows, int64_t r, const int* rows_here) {
  __m512 acc[R][T];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
  const uint8_t* a[T];
  const float* da[T];
  const int32_t* as[T];
#pragma GCC unroll 8
  for (int j = 0; j < T; ++j) {
    a[j] = act + (t + j) * stride;
    da[j] = reinterpret_cast<const float*>(a[j] + ld);
    as[j] = reinterpret_cast<const int32_t*>(a[j] + ld + ld / kQK * 4);
  }
  for (int64_t b = 0; b < p.nb; ++b) {
    __m512i dot[R][T];
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
      const __m512i init = _mm512_set1_epi32(-(as[j][b] << kShift));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) dot[i][j] = init;
    }
#pragma GCC unroll 8
    for (int k4 = 0; k4 < kQK / 4; ++k4) {
      __m512i wv[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        wv[i] = _mm512_load_si512(p.q[i] + (b * 8 + k4) * 64);
      }
#pragma GCC unroll 8
      for (int j = 0; j < T; ++j) {
        int32_t a4;
        std::memcpy(&a4, a[j] + b * kQK + k4 * 4, 4);
        const __m512i av = _mm512_set1_epi32(a4);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) dot[i][j] = _mm512_dpbusd_epi32(dot[i][j], wv[i], av);
      }
    }
    __m512 dw[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) dw[i] = _mm512_load_ps(p.d[i] + b * kPanel);
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
      const __m512 dav = _mm512_set1_ps(da[j][b]);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i][j]), _mm512_mul_ps(dw[i], dav),
                                    acc[i][j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < T; ++j) {
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      float* dst = y + (t + j) * rows + r + i * kPanel;
      if (rows_here[i] == kPanel) {
        _mm512_storeu_ps(dst, acc[i][j]);
      } else {
        _mm512_mask_storeu_ps(dst, static_cast<__mmask16>((1u << rows_here[i]) - 1), acc[i][j]);
      }
    }
  }
}

// Tokens [t0, t1) for panels p.q[0..R): tiles of 6 (12) tokens, then the rest one at a time.
template <int R, int kShift>
void PanelTokens(const Packed& p, const MatMulArgs& a, int64_t r, const int* rows_here,
                 int64_t t0, int64_t t1) {
  const uint8_t* act = static_cast<const uint8_t*>(a.act.data);
  const int64_t rows = a.w->rows;
  constexpr int T = R == 2 ? 6 : 12;
  int64_t t = t0;
  for (; t + T <= t1; t += T) {
    PanelTile<R, T, kShift>(p, act, a.act.stride, a.act.ld, t, a.y, rows, r, rows_here);
  }
  for (; t < t1; ++t) {
    PanelTile<R, 1, kShift>(p, act, a.act.stride, a.act.ld, t, a.y, rows, r, rows_here);
  }
}

// Tokens [t0, t1) for the 1 or 2 panels of p starting at row r.
template <int kShift>
void PanelPairTokens(const Packed& p, int panels, const MatMulArgs& a, int64_t r,
                     const int* rows_here, int64_t t0, int64_t t1) {
  if (panels == 2) {
    PanelTokens<2, kShift>(p, a, r, rows_here, t0, t1);
  } else {
    PanelTokens<1, kShift>(p, a, r, rows_here, t0, t1);
  }
}

// Tokens per pass over a unit's panels in PrepackedKernel: 240 tokens of int8 activations
// (~230 KiB at 768 columns) stay in L2 while every panel of the unit (~115 KiB for 144
// rows) goes over them; a multiple of both token tile sizes.
constexpr int64_t kTokenBlock = 240;

template <class Src>
void PackedKernel(const MatMulArgs& a, int64_t r0, int64_t r1, const Src& src) {
  const WeightView& w = *a.w;
  const int64_t nb = w.cols / kQK;
  const int64_t q_bytes = nb * 8 * 64, d_floats = nb * kPanel;
  thread_local AlignedBuffer<uint8_t> q_buf;
  thread_local AlignedBuffer<float> d_buf;
  q_buf.Resize(2 * q_bytes);
  d_buf.Resize(2 * d_floats);
  for (int64_t r = r0; r < r1; r += 2 * kPanel) {
    Packed p{{q_buf.data(), q_buf.data() + q_bytes}, {d_buf.data(), d_buf.data() + d_floats}, nb};
    int rows_here[2];
    const int panels = r1 - r > kPanel ? 2 : 1;
    for (int i = 0; i < panels; ++i) {
      const int64_t left = r1 - (r + i * kPanel);
      rows_here[i] = static_cast<int>(left < kPanel ? left : kPanel);
      PackPanel(src, r + i * kPanel, rows_here[i], nb, q_buf.data() + i * q_bytes,
                d_buf.data() + i * d_floats);
    }
    PanelPairTokens<Src::kOffsetShift>(p, panels, a, r, rows_here, 0, a.n);
  }
}

template <class U>
void FilePackedKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  PackedKernel(a, r0, r1,
               FileRows<U>{static_cast<const uint8_t*>(w.data), RowBytes(w.type, w.cols)});
}

void FromPrepackedQ4_0Kernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  PackedKernel(a, r0, r1, PrepackedQ4_0Rows{static_cast<const uint8_t*>(a.w->prepacked)});
}
void FromPrepackedQ5_0Kernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  PackedKernel(a, r0, r1, PrepackedQ5_0Rows{static_cast<const uint8_t*>(a.w->prepacked)});
}

// The rows [r0, r1) of a matrix prepacked by PrepackQ8_0Avx512: panel p (rows 16p ..
// 16p + 15) sits at p * PrepackedPanelBytes(nb), in the layout PackPanel writes.
// r0 is a multiple of 16 (RunRows hands out units of whole 16-row panels).
template <int kShift>
void PrepackedKernel(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const int64_t nb = w.cols / kQK, panel_bytes = PrepackedPanelBytes(nb);
  const auto* base = static_cast<const uint8_t*>(w.prepacked);
  for (int64_t t0 = 0; t0 < a.n; t0 += kTokenBlock) {
    const int64_t t1 = std::min(a.n, t0 + kTokenBlock);
    for (int64_t r = r0; r < r1; r += 2 * kPanel) {
      Packed p{};
      p.nb = nb;
      int rows_here[2] = {0, 0};
      const int panels = r1 - r > kPanel ? 2 : 1;
      for (int i = 0; i < panels; ++i) {
        const uint8_t* panel = base + (r / kPanel + i) * panel_bytes;
        p.q[i] = panel;
        p.d[i] = reinterpret_cast<const float*>(panel + nb * 8 * 64);
        const int64_t left = r1 - (r + i * kPanel);
        rows_here[i] = static_cast<int>(left < kPanel ? left : kPanel);
      }
      PanelPairTokens<kShift>(p, panels, a, r, rows_here, t0, t1);
    }
  }
}

}  // namespace

int64_t PrepackedPanelBytes(int64_t blocks_per_row) {
  return blocks_per_row * (8 * 64 + kPanel * 4);
}

void PrepackQ8_0Avx512(const WeightView& w, uint8_t* dst) {
  const int64_t nb = w.cols / kQK, panel_bytes = PrepackedPanelBytes(nb);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const int64_t stride = RowBytes(w.type, w.cols);
  for (int64_t r = 0; r < w.rows; r += kPanel) {
    uint8_t* panel = dst + (r / kPanel) * panel_bytes;
    const int rows_here = static_cast<int>(std::min<int64_t>(kPanel, w.rows - r));
    PackPanel(FileRows<UnpackQ8_0>{wd, stride}, r, rows_here, nb, panel,
              reinterpret_cast<float*>(panel + nb * 8 * 64));
  }
}

RowsKernel Avx512PrepackedKernel(DType type) {
  return type == DType::kQ8_0 ? PrepackedKernel<UnpackQ8_0::kOffsetShift> : nullptr;
}

RowsKernel Avx512PackedQuantKernel(DType type) {
  switch (type) {
    case DType::kQ8_0: return FilePackedKernel<UnpackQ8_0>;
    case DType::kQ4_0: return FilePackedKernel<UnpackQ4_0>;
    case DType::kQ5_0: return FilePackedKernel<UnpackQ5_0>;
    default: return nullptr;
  }
}

RowsKernel Avx512PackedFromPrepackedKernel(DType type) {
  return type == DType::kQ5_0 ? FromPrepackedQ5_0Kernel : FromPrepackedQ4_0Kernel;
}

}  // namespace vlserve::kernels::internal
