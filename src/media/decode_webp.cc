// WebP (lossy and lossless, still images) through libwebp. Alpha is dropped, as
// Pillow's RGBA -> RGB conversion does.
#include <webp/decode.h>

#include "media/decode_internal.h"

namespace vlserve::media::internal {

StatusOr<Image> DecodeWebp(std::span<const uint8_t> bytes, const DecodeOptions& options) {
  WebPBitstreamFeatures features;
  VP8StatusCode code = WebPGetFeatures(bytes.data(), bytes.size(), &features);
  if (code == VP8_STATUS_NOT_ENOUGH_DATA) return CorruptError("WebP", "header is incomplete");
  if (code != VP8_STATUS_OK) return CorruptError("WebP", "bad bitstream header");
  if (features.has_animation) {
    return UnimplementedError("animated WebP images are not supported; send a still image");
  }
  RETURN_IF_ERROR(CheckDimensions("WebP", features.width, features.height, options));
  Image image = MakeImage(features.width, features.height);
  if (WebPDecodeRGBInto(bytes.data(), bytes.size(), image.pixels.data(), image.pixels.size(),
                        static_cast<int>(image.RowBytes())) == nullptr) {
    return CorruptError("WebP", "bitstream ends early or is invalid");
  }
  return image;
}

}  // namespace vlserve::media::internal
