#include "media/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "base/clock.h"
#include "kernels/kernels.h"
#include "media/resize_internal.h"

namespace vlserve::media {
namespace {

// HF: rescale() multiplies in float64 then casts to float32; normalize() subtracts and
// divides in float32. A 256-entry table per channel reproduces both exactly.
struct NormalizeLut {
  float v[3][256];
  explicit NormalizeLut(const NormalizeParams& n) {
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < 256; ++i) {
        const float scaled = static_cast<float>(i * (1.0 / 255.0));
        v[c][i] = (scaled - n.mean[c]) / n.std[c];
      }
    }
  }
};

// Resizes unless the size already matches (Pillow then returns a copy; we skip it).
const Image& ResizeStep(const Image& src, int w, int h, ResampleFilter filter, Image* dst,
                        std::vector<uint8_t>* tmp) {
  if (src.width == w && src.height == h) return src;
  ResizeInto(src, w, h, filter, dst, tmp);
  return *dst;
}

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

}  // namespace

namespace internal {

NormalizeConstants MakeNormalizeConstants(const float mean[3], const float std[3]) {
  NormalizeConstants k;
  for (int c = 0; c < 3; ++c) {
    const float inv = 1.0f / std[c];
    bool same = true;
    for (int i = 0; i < 256 && same; ++i) {
      const float scaled = static_cast<float>(i * (1.0 / 255.0));
      same = (scaled - mean[c]) * inv == (scaled - mean[c]) / std[c];
    }
    k.mean[c] = mean[c];
    k.divisor[c] = same ? inv : std[c];
    k.reciprocal[c] = same;
  }
  return k;
}

}  // namespace internal

void NormalizeRegion(const Image& src, int x0, int y0, int width, int height,
                     const NormalizeParams& norm, float* out) {
  const size_t plane = static_cast<size_t>(width) * height;
  const int w = std::clamp(src.width - x0, 0, width);
  const int h = std::clamp(src.height - y0, 0, height);
  if (w < width || h < height) std::fill(out, out + 3 * plane, 0.0f);
  const kernels::Isa isa = kernels::ActiveIsa();
  if (isa != kernels::Isa::kScalar && h > 0) {
    const internal::NormalizeConstants k =
        internal::MakeNormalizeConstants(norm.mean.data(), norm.std.data());
    bool done = true;
    for (int y = 0; y < h && done; ++y) {
      const uint8_t* p = src.Row(y0 + y) + 3 * x0;
      float* r = out + static_cast<size_t>(y) * width;
      if (isa == kernels::Isa::kAvx512) {
        internal::NormalizeRowAvx512(p, w, k, r, r + plane, r + 2 * plane);
      } else {
        done = internal::NormalizeRowAvx2(p, w, k, r, r + plane, r + 2 * plane);
      }
    }
    if (done) return;
  }
  const NormalizeLut lut(norm);
  for (int y = 0; y < h; ++y) {
    const uint8_t* p = src.Row(y0 + y) + 3 * x0;
    float* r = out + static_cast<size_t>(y) * width;
    float* g = r + plane;
    float* b = g + plane;
    for (int x = 0; x < w; ++x, p += 3) {
      r[x] = lut.v[0][p[0]];
      g[x] = lut.v[1][p[1]];
      b[x] = lut.v[2][p[2]];
    }
  }
}

void NormalizeTile(const Image& src, int x0, int y0, int tile, const NormalizeParams& norm,
                   float* out) {
  NormalizeRegion(src, x0, y0, tile, tile, norm, out);
}

PixelTiles PreprocessResized(const Image& image, int width, int height, ResampleFilter filter,
                             const NormalizeParams& norm, BufferPool* pool,
                             PreprocessScratch* scratch, PreprocessTimings* timings) {
  Stopwatch watch;
  const Image& resized = ResizeStep(image, width, height, filter, &scratch->a,
                                    &scratch->resize_tmp);
  const double resize_ms = watch.ElapsedMs();
  watch.Reset();
  PixelTiles out;
  out.tile_width = width;
  out.tile_height = height;
  out.num_tiles = 1;
  out.pixels = pool->Acquire(static_cast<size_t>(3) * width * height);
  NormalizeRegion(resized, 0, 0, width, height, norm, out.pixels.data());
  if (timings != nullptr) {
    timings->resize_ms = resize_ms;
    timings->normalize_ms = watch.ElapsedMs();
  }
  return out;
}

SmolVlmSizes ComputeSmolVlmSizes(int width, int height, const SmolVlmPreprocessConfig& cfg) {
  SmolVlmSizes s{width, height, width, height};
  // _resize_output_size_rescale_to_max_len: long edge := longest_edge, the other side
  // int()-truncated from the aspect ratio and bumped to even; min 1.
  if (cfg.do_resize) {
    const double aspect = static_cast<double>(width) / height;
    int w = width, h = height;
    if (w >= h) {
      w = cfg.longest_edge;
      h = static_cast<int>(w / aspect);
      if (h % 2 != 0) ++h;
    } else {
      h = cfg.longest_edge;
      w = static_cast<int>(h * aspect);
      if (w % 2 != 0) ++w;
    }
    h = std::max(h, 1);
    w = std::max(w, 1);
    // _resize_output_size_scale_below_upper_bound (no even rounding here).
    const double aspect2 = static_cast<double>(w) / h;
    if (w >= h && w > cfg.upper_bound) {
      w = cfg.upper_bound;
      h = static_cast<int>(w / aspect2);
    } else if (h > w && h > cfg.upper_bound) {
      h = cfg.upper_bound;
      w = static_cast<int>(h * aspect2);
    }
    s.resized_width = std::max(w, 1);
    s.resized_height = std::max(h, 1);
  }
  // resize_for_vision_encoder: long side up to a multiple of tile, the other side
  // int()-derived from the aspect ratio and then also rounded up to a multiple.
  const int t = cfg.tile_size;
  int w = s.resized_width, h = s.resized_height;
  if (!cfg.do_image_splitting) {
    w = h = t;
  } else {
    const double aspect = static_cast<double>(w) / h;
    if (w >= h) {
      w = CeilDiv(w, t) * t;
      h = CeilDiv(static_cast<int>(w / aspect), t) * t;
    } else {
      h = CeilDiv(h, t) * t;
      w = CeilDiv(static_cast<int>(h * aspect), t) * t;
    }
  }
  s.encoder_width = std::max(w, t);
  s.encoder_height = std::max(h, t);
  return s;
}

int SmolVlmDecodeHint(const SmolVlmPreprocessConfig& cfg) {
  return cfg.do_resize ? cfg.longest_edge : 0;
}

int LlavaDecodeHint(const LlavaPreprocessConfig& cfg) {
  // With padding the square side is the long edge and it is resized to image_size.
  return cfg.pad_to_square ? cfg.image_size : 0;
}

PixelTiles PreprocessSmolVlm(const Image& image, const SmolVlmPreprocessConfig& cfg,
                             BufferPool* pool, PreprocessScratch* scratch,
                             PreprocessTimings* timings) {
  Stopwatch watch;
  const SmolVlmSizes s = ComputeSmolVlmSizes(image.width, image.height, cfg);
  const Image& resized = ResizeStep(image, s.resized_width, s.resized_height, cfg.filter,
                                    &scratch->a, &scratch->resize_tmp);
  const Image& encoder = ResizeStep(resized, s.encoder_width, s.encoder_height, cfg.filter,
                                    &scratch->b, &scratch->resize_tmp);
  const int t = cfg.tile_size;
  PixelTiles out;
  out.tile_width = out.tile_height = t;
  const Image* global = &encoder;
  if (encoder.width > t || encoder.height > t) {
    out.grid_rows = CeilDiv(encoder.height, t);
    out.grid_cols = CeilDiv(encoder.width, t);
    // split_image: the global image is the encoder-sized image resized to tile x tile.
    global = &ResizeStep(encoder, t, t, cfg.filter, &scratch->c, &scratch->resize_tmp);
  }
  const double resize_ms = watch.ElapsedMs();
  watch.Reset();
  out.num_tiles = out.grid_rows * out.grid_cols + 1;
  out.pixels = pool->Acquire(static_cast<size_t>(out.num_tiles) * 3 * t * t);
  // split_image: tile (r, c) starts at (c * ceil(W / cols), r * ceil(H / rows)).
  const int step_h = out.grid_rows ? CeilDiv(encoder.height, out.grid_rows) : 0;
  const int step_w = out.grid_cols ? CeilDiv(encoder.width, out.grid_cols) : 0;
  int index = 0;
  for (int r = 0; r < out.grid_rows; ++r) {
    for (int c = 0; c < out.grid_cols; ++c, ++index) {
      NormalizeTile(encoder, c * step_w, r * step_h, t, cfg.norm,
                    out.MutableTile(index));
    }
  }
  NormalizeTile(*global, 0, 0, t, cfg.norm, out.MutableTile(index));
  if (timings != nullptr) {
    timings->resize_ms = resize_ms;
    timings->normalize_ms = watch.ElapsedMs();
  }
  return out;
}

namespace {

// LLaVA's expand2square: centre the image on a square canvas of the mean colour
// (int(mean * 255) per channel, truncated).
const Image& ExpandToSquare(const Image& src, const NormalizeParams& norm, Image* dst) {
  if (src.width == src.height) return src;
  const int side = std::max(src.width, src.height);
  // Reuses dst's storage; every byte is written below (fill bands, then the image rows).
  dst->width = dst->height = dst->source_width = dst->source_height = side;
  dst->dct_scale_denom = 1;
  dst->pixels.resize(static_cast<size_t>(side) * side * 3);
  uint8_t fill[3];
  for (int c = 0; c < 3; ++c) fill[c] = static_cast<uint8_t>(static_cast<int>(norm.mean[c] * 255));
  // One row of fill colour, then whole-row copies of it (memcpy instead of 3-byte stores).
  std::vector<uint8_t> fill_row(dst->RowBytes());
  for (size_t i = 0; i < fill_row.size(); i += 3) std::memcpy(&fill_row[i], fill, 3);
  const int x0 = (side - src.width) / 2, y0 = (side - src.height) / 2;
  for (int y = 0; y < side; ++y) {
    uint8_t* row = dst->Row(y);
    if (y < y0 || y >= y0 + src.height) {
      std::memcpy(row, fill_row.data(), fill_row.size());
      continue;
    }
    const size_t left = static_cast<size_t>(x0) * 3, body = src.RowBytes();
    std::memcpy(row, fill_row.data(), left);
    std::memcpy(row + left, src.Row(y - y0), body);
    std::memcpy(row + left + body, fill_row.data(), dst->RowBytes() - left - body);
  }
  return *dst;
}

}  // namespace

PixelTiles PreprocessLlava(const Image& image, const LlavaPreprocessConfig& cfg,
                           BufferPool* pool, PreprocessScratch* scratch,
                           PreprocessTimings* timings) {
  Stopwatch watch;
  const Image& square =
      cfg.pad_to_square ? ExpandToSquare(image, cfg.norm, &scratch->a) : image;
  // CLIPImageProcessor: shortest edge -> image_size, long edge int(size * long / short).
  const int size = cfg.image_size;
  int w, h;
  if (square.width <= square.height) {
    w = size;
    h = static_cast<int>(static_cast<double>(size) * square.height / square.width);
  } else {
    h = size;
    w = static_cast<int>(static_cast<double>(size) * square.width / square.height);
  }
  const Image& resized = ResizeStep(square, w, h, cfg.filter, &scratch->b, &scratch->resize_tmp);
  const double resize_ms = watch.ElapsedMs();
  watch.Reset();
  PixelTiles out;
  out.tile_width = out.tile_height = size;
  out.num_tiles = 1;
  out.pixels = pool->Acquire(static_cast<size_t>(3) * size * size);
  // center_crop: top = (H - size) // 2, left = (W - size) // 2.
  NormalizeTile(resized, (resized.width - size) / 2, (resized.height - size) / 2, size, cfg.norm,
                out.pixels.data());
  if (timings != nullptr) {
    timings->resize_ms = resize_ms;
    timings->normalize_ms = watch.ElapsedMs();
  }
  return out;
}

}  // namespace vlserve::media
