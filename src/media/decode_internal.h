// Per-format decoders behind media::Decode. Each receives bytes whose magic already
// matched and returns RGB8 converted the way Pillow's convert("RGB") does.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/status.h"
#include "media/image.h"

namespace vlserve::media::internal {

// Validates header dimensions against the limits before anything is allocated.
Status CheckDimensions(std::string_view format, int64_t width, int64_t height,
                       const DecodeOptions& options);

// "image is truncated or corrupt (FORMAT: detail)" as InvalidArgument.
Status CorruptError(std::string_view format, std::string_view detail);

StatusOr<Image> DecodeJpeg(std::span<const uint8_t> bytes, const DecodeOptions& options);
StatusOr<Image> DecodePng(std::span<const uint8_t> bytes, const DecodeOptions& options);
StatusOr<Image> DecodeWebp(std::span<const uint8_t> bytes, const DecodeOptions& options);
StatusOr<Image> DecodeBmp(std::span<const uint8_t> bytes, const DecodeOptions& options);

}  // namespace vlserve::media::internal
