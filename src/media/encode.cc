#include "media/encode.h"

#include <turbojpeg.h>

#include <fmt/format.h>

namespace vlserve::media {

StatusOr<std::vector<uint8_t>> EncodeJpeg(const Image& image, int quality) {
  if (quality < 1 || quality > 100) {
    return InvalidArgumentError(fmt::format("JPEG quality {} is not in 1..100", quality));
  }
  tjhandle tj = tjInitCompress();
  if (tj == nullptr) return InternalError("tjInitCompress failed");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(tj, image.pixels.data(), image.width, 0, image.height, TJPF_RGB,
                             &out, &size, TJSAMP_420, quality, TJFLAG_ACCURATEDCT);
  std::vector<uint8_t> bytes;
  Status status;
  if (rc == 0) {
    bytes.assign(out, out + size);
  } else {
    status = InternalError(fmt::format("JPEG encode failed: {}", tjGetErrorStr2(tj)));
  }
  tjFree(out);
  tjDestroy(tj);
  if (!status.ok()) return status;
  return bytes;
}

}  // namespace vlserve::media
