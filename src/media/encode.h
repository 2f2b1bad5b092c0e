// JPEG encoding (TurboJPEG), for benchmarks and tests that need a JPEG made at run time.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "media/image.h"

namespace vlserve::media {

// Baseline JPEG, 4:2:0 chroma subsampling, accurate DCT; quality 1..100.
StatusOr<std::vector<uint8_t>> EncodeJpeg(const Image& image, int quality);

}  // namespace vlserve::media
