#include "media/resize.h"

#include <smmintrin.h>  // SSE4.1: part of the x86-64-v2 baseline

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>

#include "base/check.h"
#include "kernels/kernels.h"
#include "media/resize_internal.h"

namespace vlserve::media {
namespace {

using internal::kHalf;
using internal::kPrecisionBits;

double Bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double Bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double Sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double Lanczos(double x) { return (-3.0 <= x && x < 3.0) ? Sinc(x) * Sinc(x / 3) : 0.0; }

inline uint8_t Clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Rounds accumulators (4 lanes) to uint8 with saturation, like Clip8 on each lane.
inline __m128i PackLanes(__m128i a, __m128i b, __m128i c, __m128i d) {
  a = _mm_srai_epi32(a, kPrecisionBits);
  b = _mm_srai_epi32(b, kPrecisionBits);
  c = _mm_srai_epi32(c, kPrecisionBits);
  d = _mm_srai_epi32(d, kPrecisionBits);
  return _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
}

// One output pixel of the horizontal pass; `safe4` allows 4-byte loads (the byte after
// the last tap's pixel is inside the row).
inline void HorizontalPixel(const uint8_t* row, int first, int count, const int32_t* k,
                            bool safe4, uint8_t* out) {
  if (safe4) {
    __m128i acc = _mm_set1_epi32(kHalf);
    const uint8_t* p = row + first * 3;
    for (int t = 0; t < count; ++t, p += 3) {
      int32_t bytes;
      std::memcpy(&bytes, p, 4);
      __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(bytes));
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[t])));
    }
    acc = _mm_srai_epi32(acc, kPrecisionBits);
    acc = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
    uint32_t packed = static_cast<uint32_t>(_mm_cvtsi128_si32(acc));
    std::memcpy(out, &packed, 3);
    return;
  }
  int32_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
  for (int t = 0; t < count; ++t) {
    const uint8_t* p = row + (first + t) * 3;
    s0 += p[0] * k[t];
    s1 += p[1] * k[t];
    s2 += p[2] * k[t];
  }
  out[0] = Clip8(s0);
  out[1] = Clip8(s1);
  out[2] = Clip8(s2);
}

}  // namespace

namespace internal {

void HorizontalPassSse41(const uint8_t* src, int in_w, int row_begin, int row_end,
                         const ResampleWeights& w, uint8_t* dst) {
  const int out_w = static_cast<int>(w.first.size());
  const size_t in_stride = static_cast<size_t>(in_w) * 3;
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* row = src + y * in_stride;
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * out_w * 3;
    for (int x = 0; x < out_w; ++x) {
      const int first = w.first[x], count = w.count[x];
      HorizontalPixel(row, first, count, &w.weights[static_cast<size_t>(x) * w.taps],
                      first + count < in_w, out + 3 * x);
    }
  }
}

void VerticalColumnsSse41(const uint8_t* src, size_t row_bytes, size_t x_begin,
                          const ResampleWeights& w, uint8_t* dst) {
  const int out_h = static_cast<int>(w.first.size());
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* base = src + static_cast<size_t>(w.first[y]) * row_bytes;
    const int32_t* k = &w.weights[static_cast<size_t>(y) * w.taps];
    const int count = w.count[y];
    uint8_t* out = dst + static_cast<size_t>(y) * row_bytes;
    size_t x = x_begin;
    for (; x + 16 <= row_bytes; x += 16) {
      __m128i a0 = _mm_set1_epi32(kHalf), a1 = a0, a2 = a0, a3 = a0;
      for (int t = 0; t < count; ++t) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + t * row_bytes + x));
        __m128i kt = _mm_set1_epi32(k[t]);
        a0 = _mm_add_epi32(a0, _mm_mullo_epi32(_mm_cvtepu8_epi32(v), kt));
        a1 = _mm_add_epi32(a1, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(v, 4)), kt));
        a2 = _mm_add_epi32(a2, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(v, 8)), kt));
        a3 = _mm_add_epi32(a3, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(v, 12)), kt));
      }
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + x), PackLanes(a0, a1, a2, a3));
    }
    for (; x < row_bytes; ++x) {
      int32_t s = kHalf;
      for (int t = 0; t < count; ++t) s += base[t * row_bytes + x] * k[t];
      out[x] = Clip8(s);
    }
  }
}

void VerticalPassSse41(const uint8_t* src, size_t row_bytes, const ResampleWeights& w,
                       uint8_t* dst) {
  VerticalColumnsSse41(src, row_bytes, 0, w, dst);
}

bool PackWeightsFit(const ResampleWeights& w) {
  for (int32_t v : w.weights) {
    if (v < -(1 << 26) || v >= (1 << 26)) return false;
  }
  return true;
}

void PackHorizontalWeights(const ResampleWeights& w, int group, PackedHorizontal* out) {
  const int out_w = static_cast<int>(w.first.size());
  int max_count = 0;
  for (int c : w.count) max_count = std::max(max_count, c);
  out->group = group;
  out->steps = (max_count + 3) / 4;
  out->groups = (out_w + group - 1) / group;
  out->first.resize(static_cast<size_t>(out->groups) * group);
  out->weights.assign(static_cast<size_t>(out->groups) * out->steps * 4 * group * 8, 0);
  for (int g = 0; g < out->groups; ++g) {
    for (int lane = 0; lane < group; ++lane) {
      const int x = g * group + lane;
      out->first[x] = w.first[std::min(x, out_w - 1)];
      if (x >= out_w) continue;  // padding lane: weights stay 0
      const int32_t* k = &w.weights[static_cast<size_t>(x) * w.taps];
      for (int t = 0; t < w.count[x]; ++t) {
        const int s = t / 4, pair = (t % 4) / 2, which = t % 2;
        int16_t* hi = &out->weights[((static_cast<size_t>(g) * out->steps + s) * 4 + pair * 2) *
                                    group * 8 + lane * 8];
        int16_t* lo = hi + group * 8;
        for (int c = 0; c < 3; ++c) {
          hi[2 * c + which] = WeightHi(k[t]);
          lo[2 * c + which] = WeightLo(k[t]);
        }
      }
    }
  }
}

}  // namespace internal

namespace {

struct Passes {
  internal::HorizontalPassFn horizontal;
  internal::VerticalPassFn vertical;
};

// The ISA is resolved per call (one atomic load) so tests can switch with ForceIsa.
Passes SelectPasses() {
  switch (kernels::ActiveIsa()) {
    case kernels::Isa::kAvx512:
      return {internal::HorizontalPassAvx512, internal::VerticalPassAvx512};
    case kernels::Isa::kAvx2:
      return {internal::HorizontalPassAvx2, internal::VerticalPassAvx2};
    default:
      return {internal::HorizontalPassSse41, internal::VerticalPassSse41};
  }
}

}  // namespace

ResampleWeights ComputeResampleWeights(int in_size, int out_size, ResampleFilter filter) {
  CHECK(in_size > 0 && out_size > 0);
  double (*fn)(double) = filter == ResampleFilter::kBilinear  ? Bilinear
                         : filter == ResampleFilter::kBicubic ? Bicubic
                                                              : Lanczos;
  const double filter_support = filter == ResampleFilter::kBilinear  ? 1.0
                                : filter == ResampleFilter::kBicubic ? 2.0
                                                                     : 3.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = filter_support * filterscale;
  ResampleWeights w;
  w.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(out_size);
  w.count.resize(out_size);
  w.weights.assign(static_cast<size_t>(out_size) * w.taps, 0);
  std::vector<double> k(w.taps);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    int xmax = static_cast<int>(center + support + 0.5);
    xmin = std::max(xmin, 0);
    xmax = std::min(xmax, in_size) - xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = fn((x + xmin - center + 0.5) * ss);
      sum += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = sum != 0.0 ? k[x] / sum : k[x];
      const double fixed = v * (1 << kPrecisionBits);
      w.weights[static_cast<size_t>(i) * w.taps + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    w.first[i] = xmin;
    w.count[i] = xmax;
  }
  return w;
}

namespace {

// Weights depend only on (in, out, filter) and cost ~0.2 ms per axis (two sin() per tap);
// preprocessing resizes to the same few sizes again and again. Bounded in entries and
// bytes (a table grows with in_size: taps ~ in/out per output pixel), thread-safe.
constexpr size_t kMaxWeightEntries = 32;
constexpr size_t kMaxWeightBytes = 8u << 20;

size_t WeightBytes(const ResampleWeights& w) {
  return (w.first.size() + w.count.size()) * sizeof(int) + w.weights.size() * sizeof(int32_t);
}

struct WeightCache {
  struct Entry {
    int in_size, out_size;
    ResampleFilter filter;
    std::shared_ptr<const ResampleWeights> weights;
    size_t bytes;
  };
  std::mutex mu;
  std::deque<Entry> entries;  // oldest first
  size_t bytes = 0;
};

WeightCache& TheWeightCache() {
  static WeightCache* cache = new WeightCache;
  return *cache;
}

std::shared_ptr<const ResampleWeights> CachedWeights(int in_size, int out_size,
                                                     ResampleFilter filter) {
  WeightCache& cache = TheWeightCache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    for (const WeightCache::Entry& e : cache.entries) {
      if (e.in_size == in_size && e.out_size == out_size && e.filter == filter) {
        return e.weights;
      }
    }
  }
  auto weights = std::make_shared<const ResampleWeights>(
      ComputeResampleWeights(in_size, out_size, filter));
  const size_t bytes = WeightBytes(*weights);
  if (bytes > kMaxWeightBytes / 4) return weights;  // a rare huge table: not kept
  std::lock_guard<std::mutex> lock(cache.mu);
  while (!cache.entries.empty() && (cache.entries.size() >= kMaxWeightEntries ||
                                    cache.bytes + bytes > kMaxWeightBytes)) {
    cache.bytes -= cache.entries.front().bytes;
    cache.entries.pop_front();
  }
  cache.entries.push_back({in_size, out_size, filter, weights, bytes});
  cache.bytes += bytes;
  return weights;
}

}  // namespace

void ResizeInto(const Image& src, int out_width, int out_height, ResampleFilter filter,
                Image* dst, std::vector<uint8_t>* scratch) {
  CHECK(src.width > 0 && src.height > 0 && out_width > 0 && out_height > 0);
  dst->width = dst->source_width = out_width;
  dst->height = dst->source_height = out_height;
  dst->pixels.resize(static_cast<size_t>(out_width) * out_height * 3);
  const bool need_h = out_width != src.width;
  const bool need_v = out_height != src.height;
  if (!need_h && !need_v) {
    dst->pixels = src.pixels;
    return;
  }
  const Passes passes = SelectPasses();
  std::shared_ptr<const ResampleWeights> vw_shared;
  if (need_v) vw_shared = CachedWeights(src.height, out_height, filter);
  const ResampleWeights* vw = vw_shared.get();
  ResampleWeights vw_shifted;
  const uint8_t* rows = src.pixels.data();
  if (need_h) {
    const std::shared_ptr<const ResampleWeights> hw =
        CachedWeights(src.width, out_width, filter);
    // Only the source rows some output row reads go through the horizontal pass.
    int row_begin = 0, row_end = src.height;
    if (need_v) {
      row_begin = vw->first.front();
      row_end = vw->first.back() + vw->count.back();
      if (row_begin != 0) {  // vertical taps become relative to the first row kept
        vw_shifted = *vw;
        for (int& f : vw_shifted.first) f -= row_begin;
        vw = &vw_shifted;
      }
    }
    uint8_t* out = need_v ? nullptr : dst->pixels.data();
    if (need_v) {
      scratch->resize(static_cast<size_t>(row_end - row_begin) * out_width * 3);
      out = scratch->data();
    }
    passes.horizontal(src.pixels.data(), src.width, row_begin, row_end, *hw, out);
    if (!need_v) return;
    rows = scratch->data();
  }
  passes.vertical(rows, static_cast<size_t>(out_width) * 3, *vw, dst->pixels.data());
}

size_t ResampleWeightCacheBytes() {
  WeightCache& cache = TheWeightCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  return cache.bytes;
}

Image Resize(const Image& src, int out_width, int out_height, ResampleFilter filter) {
  Image dst;
  std::vector<uint8_t> scratch;
  ResizeInto(src, out_width, out_height, filter, &dst, &scratch);
  return dst;
}

}  // namespace vlserve::media
