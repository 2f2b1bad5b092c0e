// BMP, parsed by hand: BITMAPINFOHEADER and its V4/V5 extensions, uncompressed 1/4/8-bit
// palette, 24-bit BGR and 32-bit BGRX (BI_RGB, or BI_BITFIELDS with the standard masks;
// the fourth byte is ignored as Pillow does). RLE and OS/2 headers are not supported.
#include <cstring>

#include <fmt/format.h>

#include "media/decode_internal.h"

namespace vlserve::media::internal {
namespace {

uint32_t U32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24; }
uint32_t U16(const uint8_t* p) { return p[0] | p[1] << 8; }

constexpr uint32_t kBiRgb = 0, kBiBitfields = 3;

struct BmpHeader {
  uint32_t pixel_offset, header_size, bpp, compression, colors_used;
  int64_t width, height;
  bool top_down;
};

StatusOr<BmpHeader> ParseHeader(std::span<const uint8_t> b) {
  if (b.size() < 14 + 40) return CorruptError("BMP", "header is incomplete");
  BmpHeader h{};
  h.pixel_offset = U32(&b[10]);
  h.header_size = U32(&b[14]);
  if (h.header_size != 40 && h.header_size != 108 && h.header_size != 124) {
    return UnimplementedError(
        fmt::format("BMP header of {} bytes is not supported (only 40, 108, 124)",
                    h.header_size));
  }
  h.width = static_cast<int32_t>(U32(&b[18]));
  const int32_t height = static_cast<int32_t>(U32(&b[22]));
  h.top_down = height < 0;
  h.height = h.top_down ? -static_cast<int64_t>(height) : height;
  h.bpp = U16(&b[28]);
  h.compression = U32(&b[30]);
  h.colors_used = U32(&b[46]);
  return h;
}

Status CheckFormat(std::span<const uint8_t> b, const BmpHeader& h) {
  const bool palette = h.bpp == 1 || h.bpp == 4 || h.bpp == 8;
  if (h.compression == kBiRgb && (palette || h.bpp == 24 || h.bpp == 32)) return OkStatus();
  if (h.compression == kBiBitfields && h.bpp == 32 && b.size() >= 14 + 40 + 12 &&
      U32(&b[54]) == 0xFF0000 && U32(&b[58]) == 0xFF00 && U32(&b[62]) == 0xFF) {
    return OkStatus();
  }
  return UnimplementedError(fmt::format(
      "BMP with {} bits per pixel and compression {} is not supported", h.bpp, h.compression));
}

}  // namespace

StatusOr<Image> DecodeBmp(std::span<const uint8_t> b, const DecodeOptions& options) {
  ASSIGN_OR_RETURN(BmpHeader h, ParseHeader(b));
  RETURN_IF_ERROR(CheckDimensions("BMP", h.width, h.height, options));
  RETURN_IF_ERROR(CheckFormat(b, h));
  const size_t stride = (static_cast<size_t>(h.width) * h.bpp + 31) / 32 * 4;
  const uint64_t rows_present =
      h.pixel_offset > b.size() ? 0 : (b.size() - h.pixel_offset) / stride;
  if (rows_present < static_cast<uint64_t>(h.height)) {
    return CorruptError("BMP", "pixel data ends early");
  }
  // Palette: BGRx entries after the info header (and after the bitfield masks).
  uint8_t palette[256][3] = {};
  if (h.bpp <= 8) {
    const size_t max_entries = size_t{1} << h.bpp;
    size_t entries = h.colors_used == 0 ? max_entries : h.colors_used;
    if (entries > max_entries) entries = max_entries;
    const size_t start = 14 + h.header_size;
    if (start + entries * 4 > h.pixel_offset) return CorruptError("BMP", "palette is cut off");
    for (size_t i = 0; i < entries; ++i) {
      palette[i][0] = b[start + 4 * i + 2];
      palette[i][1] = b[start + 4 * i + 1];
      palette[i][2] = b[start + 4 * i + 0];
    }
  }
  Image image = MakeImage(static_cast<int>(h.width), static_cast<int>(h.height));
  for (int y = 0; y < image.height; ++y) {
    const int file_row = h.top_down ? y : image.height - 1 - y;
    const uint8_t* src = b.data() + h.pixel_offset + file_row * stride;
    uint8_t* dst = image.Row(y);
    for (int x = 0; x < image.width; ++x) {
      if (h.bpp >= 24) {
        const uint8_t* p = src + x * (h.bpp / 8);
        dst[3 * x + 0] = p[2];
        dst[3 * x + 1] = p[1];
        dst[3 * x + 2] = p[0];
      } else {
        const size_t bit = static_cast<size_t>(x) * h.bpp;
        const uint32_t index = (src[bit / 8] >> (8 - h.bpp - bit % 8)) & ((1u << h.bpp) - 1);
        std::memcpy(dst + 3 * x, palette[index], 3);
      }
    }
  }
  return image;
}

}  // namespace vlserve::media::internal
