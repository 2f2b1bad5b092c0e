// PNG through libspng. Samples are decoded in the file's own layout (SPNG_FMT_RAW:
// packed low bit depths, big-endian 16-bit) and converted to RGB8 here so each case
// matches Pillow's open + convert("RGB") exactly:
//   grey 1/2/4 bit -> scaled to 0..255 (v * 255 / (2^bits - 1));
//   grey 16 bit    -> Pillow opens it as mode "I" and clips to 255 (not the high byte);
//   RGB/RGBA/LA 16 -> high byte; alpha dropped (not composited); tRNS ignored;
//   palette        -> PLTE lookup, indices past the palette give black.
#include <spng.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "media/decode_internal.h"

namespace vlserve::media::internal {
namespace {

struct SpngFree {
  void operator()(spng_ctx* ctx) const { spng_ctx_free(ctx); }
};

// Sample `i` of a row packed at `bits` per sample (1, 2, 4, 8 or 16, big-endian).
inline uint32_t Sample(const uint8_t* row, size_t i, int bits) {
  switch (bits) {
    case 16: return static_cast<uint32_t>(row[2 * i]) << 8 | row[2 * i + 1];
    case 8: return row[i];
    default: {
      const size_t bit = i * bits;
      const int shift = 8 - bits - static_cast<int>(bit % 8);
      return (row[bit / 8] >> shift) & ((1u << bits) - 1);
    }
  }
}

void ConvertRow(const spng_ihdr& ihdr, const spng_plte& plte, const uint8_t* src,
                uint8_t* dst, int width) {
  const int bits = ihdr.bit_depth;
  for (int x = 0; x < width; ++x) {
    uint8_t* px = dst + 3 * x;
    switch (ihdr.color_type) {
      case SPNG_COLOR_TYPE_GRAYSCALE: {
        uint32_t v = Sample(src, x, bits);
        uint8_t g = bits == 16 ? static_cast<uint8_t>(std::min<uint32_t>(v, 255))
                    : bits == 8 ? static_cast<uint8_t>(v)
                                : static_cast<uint8_t>(v * 255 / ((1u << bits) - 1));
        px[0] = px[1] = px[2] = g;
        break;
      }
      case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
        px[0] = px[1] = px[2] = static_cast<uint8_t>(Sample(src, 2 * x, bits) >> (bits - 8));
        break;
      case SPNG_COLOR_TYPE_TRUECOLOR:
      case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: {
        const int channels = ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR ? 3 : 4;
        for (int c = 0; c < 3; ++c) {
          px[c] = static_cast<uint8_t>(Sample(src, channels * x + c, bits) >> (bits - 8));
        }
        break;
      }
      case SPNG_COLOR_TYPE_INDEXED: {
        uint32_t index = Sample(src, x, bits);
        if (index < plte.n_entries) {
          px[0] = plte.entries[index].red;
          px[1] = plte.entries[index].green;
          px[2] = plte.entries[index].blue;
        } else {
          px[0] = px[1] = px[2] = 0;
        }
        break;
      }
    }
  }
}

Status SpngError(int err) { return CorruptError("PNG", spng_strerror(err)); }

}  // namespace

StatusOr<Image> DecodePng(std::span<const uint8_t> bytes, const DecodeOptions& options) {
  std::unique_ptr<spng_ctx, SpngFree> ctx(spng_ctx_new(0));
  if (!ctx) return InternalError("spng_ctx_new failed");
  // Bound ancillary-chunk memory (text, iCCP, ...) independently of the pixel limit.
  spng_set_chunk_limits(ctx.get(), 16u << 20, 64u << 20);
  if (int err = spng_set_png_buffer(ctx.get(), bytes.data(), bytes.size())) return SpngError(err);
  spng_ihdr ihdr{};
  if (int err = spng_get_ihdr(ctx.get(), &ihdr)) return SpngError(err);
  RETURN_IF_ERROR(CheckDimensions("PNG", ihdr.width, ihdr.height, options));
  spng_plte plte{};
  if (ihdr.color_type == SPNG_COLOR_TYPE_INDEXED) {
    if (int err = spng_get_plte(ctx.get(), &plte)) return SpngError(err);
  }
  size_t size = 0;
  if (int err = spng_decoded_image_size(ctx.get(), SPNG_FMT_RAW, &size)) return SpngError(err);
  std::vector<uint8_t> raw(size);
  if (int err = spng_decode_image(ctx.get(), raw.data(), raw.size(), SPNG_FMT_RAW, 0)) {
    return SpngError(err);
  }
  Image image = MakeImage(static_cast<int>(ihdr.width), static_cast<int>(ihdr.height));
  const size_t row_bytes = size / ihdr.height;
  for (int y = 0; y < image.height; ++y) {
    ConvertRow(ihdr, plte, raw.data() + y * row_bytes, image.Row(y), image.width);
  }
  return image;
}

}  // namespace vlserve::media::internal
