// Format detection, limits and dispatch for media::Decode.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "media/decode_internal.h"
#include "media/image.h"

namespace vlserve::media {

std::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kUnknown: break;
  }
  return "unknown";
}

ImageFormat DetectImageFormat(std::span<const uint8_t> b) {
  auto starts = [&](const char* magic, size_t n, size_t at = 0) {
    return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
  };
  if (starts("\xFF\xD8\xFF", 3)) return ImageFormat::kJpeg;
  if (starts("\x89PNG\r\n\x1A\n", 8)) return ImageFormat::kPng;
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return ImageFormat::kWebp;
  if (starts("BM", 2)) return ImageFormat::kBmp;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return ImageFormat::kGif;
  return ImageFormat::kUnknown;
}

Image MakeImage(int width, int height) {
  CHECK(width > 0 && height > 0) << width << "x" << height;
  Image image;
  image.width = image.source_width = width;
  image.height = image.source_height = height;
  image.pixels.assign(static_cast<size_t>(width) * height * 3, 0);
  return image;
}

namespace internal {

Status CheckDimensions(std::string_view format, int64_t width, int64_t height,
                       const DecodeOptions& options) {
  if (width <= 0 || height <= 0) {
    return InvalidArgumentError(
        fmt::format("{} image has zero size ({}x{}); send a non-empty image", format, width,
                    height));
  }
  // Both factors are < 2^32, so the product fits in int64.
  if (width * height > options.max_pixels) {
    return OutOfRangeError(fmt::format(
        "{} image is {}x{} = {} pixels, over the limit of {} pixels; send a smaller image",
        format, width, height, width * height, options.max_pixels));
  }
  if (std::max(width, height) > options.max_aspect_ratio * std::min(width, height)) {
    return InvalidArgumentError(fmt::format(
        "{} image is {}x{}, an aspect ratio above the limit of {}:1 (Qwen2-VL's image "
        "processor refuses such images too); crop or pad it",
        format, width, height, options.max_aspect_ratio));
  }
  return OkStatus();
}

Status CorruptError(std::string_view format, std::string_view detail) {
  return InvalidArgumentError(
      fmt::format("image is truncated or corrupt ({}: {})", format, detail));
}

}  // namespace internal

namespace {

std::string HexPrefix(std::span<const uint8_t> bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
    out += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
  }
  return out;
}

}  // namespace

StatusOr<Image> Decode(std::span<const uint8_t> bytes, const DecodeOptions& options) {
  if (bytes.empty()) return InvalidArgumentError("image is empty (0 bytes)");
  if (bytes.size() > options.max_bytes) {
    return OutOfRangeError(fmt::format("image is {} bytes, over the limit of {} bytes",
                                       bytes.size(), options.max_bytes));
  }
  switch (DetectImageFormat(bytes)) {
    case ImageFormat::kJpeg: return internal::DecodeJpeg(bytes, options);
    case ImageFormat::kPng: return internal::DecodePng(bytes, options);
    case ImageFormat::kWebp: return internal::DecodeWebp(bytes, options);
    case ImageFormat::kBmp: return internal::DecodeBmp(bytes, options);
    case ImageFormat::kGif:
      return UnimplementedError("GIF images are not supported; send JPEG, PNG, WebP or BMP");
    case ImageFormat::kUnknown: break;
  }
  return InvalidArgumentError(
      fmt::format("not a JPEG/PNG/WebP/BMP image (starts with {})", HexPrefix(bytes)));
}

}  // namespace vlserve::media
