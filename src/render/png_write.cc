#include "render/png_write.h"

#include <spng.h>

#include <cstdio>
#include <memory>
#include <vector>

namespace vlserve::render {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
struct SpngFree {
  void operator()(spng_ctx* c) const { spng_ctx_free(c); }
};

}  // namespace

Status WritePng(const std::string& path, const ImageView& image, int compression_level) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
  if (!file) return NotFoundError("cannot create '" + path + "'; does the directory exist?");
  std::unique_ptr<spng_ctx, SpngFree> ctx(spng_ctx_new(SPNG_CTX_ENCODER));
  if (!ctx) return InternalError("spng_ctx_new failed");
  spng_set_png_file(ctx.get(), file.get());
  spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_LEVEL, compression_level);
  spng_ihdr ihdr{};
  ihdr.width = static_cast<uint32_t>(image.width);
  ihdr.height = static_cast<uint32_t>(image.height);
  ihdr.bit_depth = 8;
  const bool grey = image.format == PixelFormat::kGrey8;
  ihdr.color_type = grey ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR;
  spng_set_ihdr(ctx.get(), &ihdr);
  const size_t row_bytes = static_cast<size_t>(image.width) * (grey ? 1 : 3);
  int err = spng_encode_image(ctx.get(), nullptr, 0, SPNG_FMT_PNG,
                              SPNG_ENCODE_PROGRESSIVE | SPNG_ENCODE_FINALIZE);
  for (int y = 0; err == 0 && y < image.height; ++y) {
    err = spng_encode_row(ctx.get(), image.data + y * image.stride, row_bytes);
  }
  if (err == SPNG_EOI) err = 0;
  if (err != 0) return InternalError(std::string("PNG encode failed: ") + spng_strerror(err));
  return OkStatus();
}

Status WritePnm(const std::string& path, const ImageView& image) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
  if (!file) return NotFoundError("cannot create '" + path + "'; does the directory exist?");
  const bool grey = image.format == PixelFormat::kGrey8;
  std::fprintf(file.get(), "%s\n%d %d\n255\n", grey ? "P5" : "P6", image.width, image.height);
  const size_t row_bytes = static_cast<size_t>(image.width) * (grey ? 1 : 3);
  for (int y = 0; y < image.height; ++y) {
    if (std::fwrite(image.data + y * image.stride, 1, row_bytes, file.get()) != row_bytes) {
      return DataLossError("short write to '" + path + "' (disk full?)");
    }
  }
  return OkStatus();
}

}  // namespace vlserve::render
