// JPEG through the TurboJPEG API, with DCT-domain downscaling (1/2, 1/4, 1/8) when the
// caller's target long edge allows it, and EXIF orientation applied afterwards.
#include <turbojpeg.h>

#include <memory>

#include <fmt/format.h>

#include "media/decode_internal.h"
#include "media/exif.h"

namespace vlserve::media::internal {
namespace {

struct TjDestroy {
  void operator()(void* h) const { tjDestroy(h); }
};

// One decompressor per thread: tjInitDecompress allocates, and decode runs on a pool.
// After a failure TurboJPEG 2.1 leaves the handle mid-state ("Improper call to JPEG
// library in state ..." on the next file), so a failed handle is replaced.
std::unique_ptr<void, TjDestroy>& ThreadHandle() {
  thread_local std::unique_ptr<void, TjDestroy> handle;
  return handle;
}

tjhandle ThreadDecompressor() {
  auto& handle = ThreadHandle();
  if (!handle) handle.reset(tjInitDecompress());
  return handle.get();
}

Status JpegError(tjhandle tj) {
  Status status = CorruptError("JPEG", tjGetErrorStr2(tj));
  ThreadHandle().reset();
  return status;
}

// The largest reduction 8/denom (denom in 8, 4, 2) whose scaled long edge is still
// >= target, so the resize that follows keeps downsampling; 1 when none fits.
int PickDctDenominator(int width, int height, int target_long_edge) {
  if (target_long_edge <= 0) return 1;
  const int long_edge = width > height ? width : height;
  for (int denom : {8, 4, 2}) {
    tjscalingfactor sf{1, denom};
    if (TJSCALED(long_edge, sf) >= target_long_edge) return denom;
  }
  return 1;
}

}  // namespace

StatusOr<Image> DecodeJpeg(std::span<const uint8_t> bytes, const DecodeOptions& options) {
  tjhandle tj = ThreadDecompressor();
  if (tj == nullptr) return InternalError("tjInitDecompress failed");
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, bytes.data(), bytes.size(), &width, &height, &subsamp,
                          &colorspace) != 0) {
    return JpegError(tj);
  }
  // A header cut off before the frame marker can "succeed" with a 0x0 size.
  if (width <= 0 || height <= 0) {
    ThreadHandle().reset();
    return CorruptError("JPEG", "no frame header");
  }
  RETURN_IF_ERROR(CheckDimensions("JPEG", width, height, options));
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    return UnimplementedError("CMYK JPEG images are not supported; convert the image to RGB");
  }
  const int denom = PickDctDenominator(width, height, options.target_long_edge);
  const tjscalingfactor sf{1, denom};
  Image image = MakeImage(TJSCALED(width, sf), TJSCALED(height, sf));
  image.source_width = width;
  image.source_height = height;
  image.dct_scale_denom = denom;
  // Accurate integer IDCT and fancy upsampling: the defaults Pillow decodes with.
  // STOPONWARNING turns "premature end of data" into an error (Pillow: "image file is
  // truncated"); LIMITSCANS rejects progressive files built to burn CPU.
  const int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  if (tjDecompress2(tj, bytes.data(), bytes.size(), image.pixels.data(), image.width,
                    0 /*pitch*/, image.height, TJPF_RGB, flags) != 0) {
    return JpegError(tj);
  }
  const int orientation = ReadJpegExifOrientation(bytes);
  return ApplyOrientation(std::move(image), orientation);
}

}  // namespace vlserve::media::internal
