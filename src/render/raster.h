// Rasterisation: blits cached glyph coverage into a caller-provided buffer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "render/options.h"
#include "render/paginator.h"

namespace vlserve::render {

// A caller-owned image: rows of `stride` bytes, grey8 (1 byte/pixel) or rgb8 (3).
struct ImageView {
  uint8_t* data = nullptr;
  int width = 0, height = 0;
  ptrdiff_t stride = 0;
  PixelFormat format = PixelFormat::kGrey8;
};

// Fills the page's [width_px, height_px] area of `out` with the background and draws
// the glyphs with coverage blending: dst = dst + (fg - dst) * coverage / 255 per channel,
// so overlapping glyphs composite (source-over) instead of overwriting. Glyphs are
// clipped to the view. `out` must be at least as large as the page.
void RasterizePage(const PageLayout& page, Rgb foreground, Rgb background, const ImageView& out);

}  // namespace vlserve::render
