#include "render/raster.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace vlserve::render {
namespace {

// (a * b + 127) / 255 for a, b in [0, 255], exact, without a division.
inline int MulDiv255(int a, int b) {
  const int t = a * b + 128;
  return (t + (t >> 8)) >> 8;
}

inline uint8_t Blend(uint8_t dst, int fg, int coverage) {
  return static_cast<uint8_t>(dst + (fg >= dst ? MulDiv255(fg - dst, coverage)
                                               : -MulDiv255(dst - fg, coverage)));
}

void FillBackground(const ImageView& out, int w, int h, Rgb bg) {
  for (int y = 0; y < h; ++y) {
    uint8_t* row = out.data + y * out.stride;
    if (out.format == PixelFormat::kGrey8) {
      std::memset(row, bg.Luma(), w);
    } else if (bg.r == bg.g && bg.g == bg.b) {
      std::memset(row, bg.r, static_cast<size_t>(w) * 3);
    } else {
      for (int x = 0; x < w; ++x) row[3 * x] = bg.r, row[3 * x + 1] = bg.g, row[3 * x + 2] = bg.b;
    }
  }
}

// Clipped blit of one glyph whose top-left pixel lands at (x0, y0).
template <PixelFormat kFormat>
void BlitGlyph(const GlyphBitmap& g, int x0, int y0, int w, int h, Rgb fg, const ImageView& out) {
  const int gx0 = std::max(0, -x0), gy0 = std::max(0, -y0);
  const int gx1 = std::min<int>(g.width, w - x0), gy1 = std::min<int>(g.height, h - y0);
  for (int gy = gy0; gy < gy1; ++gy) {
    const uint8_t* src = g.pixels + gy * g.width;
    uint8_t* dst = out.data + (y0 + gy) * out.stride;
    for (int gx = gx0; gx < gx1; ++gx) {
      const int a = src[gx];
      if (a == 0) continue;
      if constexpr (kFormat == PixelFormat::kGrey8) {
        uint8_t& d = dst[x0 + gx];
        d = Blend(d, fg.Luma(), a);
      } else {
        uint8_t* d = dst + 3 * (x0 + gx);
        d[0] = Blend(d[0], fg.r, a);
        d[1] = Blend(d[1], fg.g, a);
        d[2] = Blend(d[2], fg.b, a);
      }
    }
  }
}

}  // namespace

void RasterizePage(const PageLayout& page, Rgb foreground, Rgb background, const ImageView& out) {
  CHECK(out.data != nullptr && out.width >= page.width_px && out.height >= page.height_px)
      << "page " << page.width_px << "x" << page.height_px << " does not fit the "
      << out.width << "x" << out.height << " view";
  const int w = page.width_px, h = page.height_px;
  FillBackground(out, w, h, background);
  for (const PlacedGlyph& pg : page.glyphs) {
    const GlyphBitmap& g = *pg.bitmap;
    const int x0 = pg.x + g.left, y0 = pg.y - g.top;
    if (g.width == 0 || x0 >= w || y0 >= h || x0 + g.width <= 0 || y0 + g.height <= 0) continue;
    if (out.format == PixelFormat::kGrey8) {
      BlitGlyph<PixelFormat::kGrey8>(g, x0, y0, w, h, foreground, out);
    } else {
      BlitGlyph<PixelFormat::kRgb8>(g, x0, y0, w, h, foreground, out);
    }
  }
}

}  // namespace vlserve::render
