// Decoded images and the decode entry point (JPEG, PNG, WebP, BMP).
//
// Every decoder returns 8-bit RGB with the pixel values Pillow's
// `Image.open(f); ImageOps.exif_transpose(im); im.convert("RGB")` gives, which is what
// transformers.image_utils.load_image feeds the Hugging Face processors. See docs/media.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace vlserve::media {

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kBmp, kGif };

std::string_view ImageFormatName(ImageFormat format);

// Looks only at the magic bytes, never at a file name or MIME type.
ImageFormat DetectImageFormat(std::span<const uint8_t> bytes);

// An RGB8 image, row-major, no padding: pixels[(y * width + x) * 3 + c].
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3]

  // Size of the image as stored in the file (before DCT scaling; after EXIF rotation).
  int source_width = 0;
  int source_height = 0;
  // JPEG only: the DCT scale the decoder used, as 8 / denominator (1, 2, 4 or 8).
  int dct_scale_denom = 1;

  size_t RowBytes() const { return static_cast<size_t>(width) * 3; }
  uint8_t* Row(int y) { return pixels.data() + y * RowBytes(); }
  const uint8_t* Row(int y) const { return pixels.data() + y * RowBytes(); }
};

// Allocates a zero-filled RGB image; sizes must be positive (CHECKed: callers validate).
Image MakeImage(int width, int height);

struct DecodeOptions {
  // Largest width*height accepted, checked from the header before any pixel allocation.
  int64_t max_pixels = 40'000'000;
  // Largest encoded size accepted.
  size_t max_bytes = 64u << 20;
  // Largest long side / short side accepted, checked from the header. Qwen2-VL's image
  // processor (smart_resize) refuses above 200; a 10,000,000 x 1 strip is within the pixel
  // limit but its resampling tables alone would take hundreds of MB.
  int64_t max_aspect_ratio = 200;
  // Hint: the longest edge the caller will resize to next (0 = decode at full size).
  // JPEG uses it to decode at a 1/2, 1/4 or 1/8 DCT scale while the scaled long edge
  // stays >= the target, so the later resize still downsamples.
  int target_long_edge = 0;
};

// Decodes any supported format (chosen by magic bytes) into RGB8, EXIF orientation
// applied (JPEG). Errors: InvalidArgument for empty, truncated, corrupt or unknown data;
// OutOfRange for a pixel count or byte size over the limits; Unimplemented for a known
// format variant we do not decode (CMYK JPEG, GIF).
StatusOr<Image> Decode(std::span<const uint8_t> bytes, const DecodeOptions& options = {});

}  // namespace vlserve::media
