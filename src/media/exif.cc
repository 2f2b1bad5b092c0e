#include "media/exif.h"

#include <cstring>
#include <utility>

namespace vlserve::media {
namespace {

class TiffReader {
 public:
  TiffReader(std::span<const uint8_t> data, bool little) : data_(data), little_(little) {}
  bool U16(size_t at, uint32_t* v) const {
    if (at + 2 > data_.size()) return false;
    const uint8_t* p = data_.data() + at;
    *v = little_ ? (p[0] | p[1] << 8) : (p[0] << 8 | p[1]);
    return true;
  }
  bool U32(size_t at, uint32_t* v) const {
    uint32_t a, b;
    if (!U16(at, &a) || !U16(at + 2, &b)) return false;
    *v = little_ ? (a | b << 16) : (a << 16 | b);
    return true;
  }

 private:
  std::span<const uint8_t> data_;
  bool little_;
};

constexpr uint32_t kOrientationTag = 0x0112;
constexpr uint32_t kTypeShort = 3;

}  // namespace

int ReadTiffOrientation(std::span<const uint8_t> tiff) {
  if (tiff.size() < 8) return 1;
  bool little;
  if (std::memcmp(tiff.data(), "II*\0", 4) == 0) {
    little = true;
  } else if (std::memcmp(tiff.data(), "MM\0*", 4) == 0) {
    little = false;
  } else {
    return 1;
  }
  TiffReader r(tiff, little);
  uint32_t ifd = 0, count = 0;
  if (!r.U32(4, &ifd) || !r.U16(ifd, &count)) return 1;
  for (uint32_t i = 0; i < count; ++i) {
    size_t entry = static_cast<size_t>(ifd) + 2 + 12 * static_cast<size_t>(i);
    uint32_t tag, type, n, value;
    if (!r.U16(entry, &tag) || !r.U16(entry + 2, &type) || !r.U32(entry + 4, &n)) return 1;
    if (tag != kOrientationTag) continue;
    // A SHORT with count 1 sits left-aligned in the 4-byte value field.
    if (type != kTypeShort || n < 1 || !r.U16(entry + 8, &value)) return 1;
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

int ReadJpegExifOrientation(std::span<const uint8_t> jpeg) {
  // Walk the marker segments after SOI until the first scan; APP1 "Exif\0\0" holds TIFF.
  size_t pos = 2;
  while (pos + 4 <= jpeg.size()) {
    if (jpeg[pos] != 0xFF) return 1;
    uint8_t marker = jpeg[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 1;  // start of scan / end of image
    size_t length = static_cast<size_t>(jpeg[pos + 2]) << 8 | jpeg[pos + 3];
    if (length < 2 || pos + 2 + length > jpeg.size()) return 1;
    std::span<const uint8_t> payload = jpeg.subspan(pos + 4, length - 2);
    if (marker == 0xE1 && payload.size() >= 6 && std::memcmp(payload.data(), "Exif\0\0", 6) == 0) {
      return ReadTiffOrientation(payload.subspan(6));
    }
    pos += 2 + length;
  }
  return 1;
}

Image ApplyOrientation(Image image, int orientation) {
  if (orientation <= 1 || orientation > 8) return image;
  const int w = image.width, h = image.height;
  const bool swap = orientation >= 5;
  Image out = MakeImage(swap ? h : w, swap ? w : h);
  out.dct_scale_denom = image.dct_scale_denom;
  for (int y = 0; y < out.height; ++y) {
    uint8_t* dst = out.Row(y);
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // source pixel for output (x, y)
      switch (orientation) {
        case 2: sx = w - 1 - x; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        case 8: sx = w - 1 - y; sy = x; break;
      }
      std::memcpy(dst + 3 * x, image.Row(sy) + 3 * sx, 3);
    }
  }
  out.source_width = swap ? image.source_height : image.source_width;
  out.source_height = swap ? image.source_width : image.source_height;
  return out;
}

}  // namespace vlserve::media
