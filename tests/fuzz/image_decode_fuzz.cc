// libFuzzer target for the image decoders behind media::Decode (src/media/decode*.cc:
// JPEG with DCT scaling and EXIF orientation, PNG, WebP, BMP) and the EXIF/TIFF reader.
// The pixel limit is 1 M pixels (the server's is 40 M) so that valid huge images are
// refused from the header instead of making the fuzzer slow or run out of memory; every
// limit check is the same code either way.
// Properties: a refused image is InvalidArgument, OutOfRange or Unimplemented with a
// message; a decoded one has positive sizes within the limits, exactly width * height * 3
// bytes, and a JPEG decoded with a target long edge is the full decode's size divided by
// the DCT denominator (ceiling), orientation applied the same way.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/check.h"
#include "media/exif.h"
#include "media/image.h"

namespace {

namespace media = vlserve::media;
using vlserve::StatusCode;

constexpr int64_t kMaxPixels = 1 << 20;

void CheckImage(const media::Image& image, const media::DecodeOptions& options) {
  CHECK(image.width > 0 && image.height > 0);
  CHECK(int64_t{image.source_width} * image.source_height <= options.max_pixels);
  CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3);
  CHECK(image.dct_scale_denom == 1 || image.dct_scale_denom == 2 || image.dct_scale_denom == 4 ||
        image.dct_scale_denom == 8)
      << image.dct_scale_denom;
  volatile uint32_t sink = 0;
  for (uint8_t v : image.pixels) sink = sink + v;  // ASan: every byte is addressable
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  media::DecodeOptions options;
  options.max_pixels = kMaxPixels;
  auto image = media::Decode(bytes, options);
  if (!image.ok()) {
    const StatusCode code = image.status().code();
    CHECK(code == StatusCode::kInvalidArgument || code == StatusCode::kOutOfRange ||
          code == StatusCode::kUnimplemented)
        << image.status().ToString();
    CHECK(!image.status().message().empty());
  } else {
    CheckImage(*image, options);
    // JPEG again at a reduced DCT scale (what the server does with a model's size hint).
    const int long_edge = std::max(image->width, image->height);
    if (media::DetectImageFormat(bytes) == media::ImageFormat::kJpeg && long_edge >= 16) {
      media::DecodeOptions scaled = options;
      scaled.target_long_edge = long_edge / 5;
      auto small = media::Decode(bytes, scaled);
      CHECK(small.ok()) << small.status().ToString();
      CheckImage(*small, scaled);
      const int d = small->dct_scale_denom;
      CHECK(d > 1) << "no DCT reduction for a target of a fifth of " << long_edge;
      CHECK(small->source_width == image->source_width &&
            small->source_height == image->source_height);
      CHECK(small->width == (image->width + d - 1) / d && small->height == (image->height + d - 1) / d)
          << small->width << "x" << small->height << " from " << image->width << "x"
          << image->height << " / " << d;
      CHECK(std::max(small->width, small->height) >= scaled.target_long_edge);
    }
  }
  // The EXIF reader on the raw bytes as a TIFF block and as a JPEG.
  const int tiff = media::ReadTiffOrientation(bytes);
  const int jpeg = media::ReadJpegExifOrientation(bytes);
  CHECK(tiff >= 1 && tiff <= 8 && jpeg >= 1 && jpeg <= 8);
  return 0;
}
