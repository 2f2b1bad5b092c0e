// PNG / PGM file output for the CLI and docs (the server never encodes pages).
#pragma once

#include <string>

#include "base/status.h"
#include "render/raster.h"

namespace vlserve::render {

// Writes the top-left width x height of `image` (grey8 or rgb8). compression_level 0..9.
Status WritePng(const std::string& path, const ImageView& image, int compression_level = 6);
// Binary PGM (grey8) or PPM (rgb8).
Status WritePnm(const std::string& path, const ImageView& image);

}  // namespace vlserve::render
