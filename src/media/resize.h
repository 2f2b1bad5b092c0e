// Pillow-exact resampling of RGB8 images (Image.resize with BILINEAR, BICUBIC, LANCZOS).
//
// Pillow's algorithm (libImaging/Resample.c), replicated step for step:
//  - separable: a horizontal pass over only the source rows the vertical pass will
//    read, then a vertical pass; a pass whose size does not change is skipped;
//  - for each output index i: center = (i + 0.5) * scale, scale = in / out;
//    filterscale = max(scale, 1) widens the kernel when downscaling (antialiasing);
//    support = filter_support * filterscale; taps run over
//    [int(center - support + 0.5), int(center + support + 0.5)) clipped to the image;
//    weight = filter((x - center + 0.5) / filterscale), normalised to sum 1;
//  - weights become int32 fixed point with 22 fractional bits (rounded half away from
//    zero), accumulation starts at 1 << 21, and each pass clips to uint8.
// Bicubic uses a = -0.5, Lanczos a = 3 (sinc(x) * sinc(x / 3) on [-3, 3)).
//
// The passes run with the ISA kernels::ActiveIsa() picks (VLSERVE_ISA=scalar|avx2|avx512;
// "scalar" = the SSE4.1 baseline); every variant gives the same bytes (resize_internal.h
// has the exactness argument). Weights are cached per (in, out, filter), process-wide.
#pragma once

#include <cstdint>
#include <vector>

#include "media/image.h"

namespace vlserve::media {

enum class ResampleFilter { kBilinear, kBicubic, kLanczos };

// Fixed-point weights for one axis: output i reads `count[i]` inputs from `first[i]`.
struct ResampleWeights {
  int taps = 0;                // stride of `weights` per output index
  std::vector<int> first;      // [out_size]
  std::vector<int> count;      // [out_size]
  std::vector<int32_t> weights;  // [out_size, taps], 22 fractional bits
};

ResampleWeights ComputeResampleWeights(int in_size, int out_size, ResampleFilter filter);

// Bytes of weight tables kept for reuse by Resize (bounded at 8 MiB whatever the sizes).
size_t ResampleWeightCacheBytes();

// Pillow's Image.resize((out_width, out_height), filter) for an RGB image.
// Sizes must be positive (CHECKed).
Image Resize(const Image& src, int out_width, int out_height, ResampleFilter filter);

// Same as Resize, into `dst` (reallocated only when it grows); `scratch` holds the
// intermediate image between the passes so repeated calls do not allocate.
void ResizeInto(const Image& src, int out_width, int out_height, ResampleFilter filter,
                Image* dst, std::vector<uint8_t>* scratch);

}  // namespace vlserve::media
