// Coverage blending against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>

#include "render/raster.h"

namespace vlserve::render {
namespace {

TEST(Raster, CoverageBlendingAndClipping) {
  // A 2x2 glyph with coverages 0, 128, 255, 64 drawn twice at the same spot (so the
  // second pass composites over the first), and once half outside the page.
  const uint8_t cov[4] = {0, 128, 255, 64};
  GlyphBitmap g;
  g.left = 0, g.top = 2, g.width = 2, g.height = 2;
  g.pixels = cov;
  PageLayout page;
  page.width_px = 6, page.height_px = 4;
  page.glyphs = {{&g, 1, 2}, {&g, 1, 2}, {&g, 5, 4}};
  std::vector<uint8_t> px(6 * 4 * 3, 7);
  ImageView grey{px.data(), 6, 4, 6, PixelFormat::kGrey8};
  RasterizePage(page, Rgb{0, 0, 0}, Rgb{255, 255, 255}, grey);
  auto once = [](double dst, double a) { return std::lround(dst - dst * a / 255); };
  for (int i = 0; i < 4; ++i) {
    const int x = 1 + i % 2, y = i / 2;
    EXPECT_EQ(px[y * 6 + x], once(once(255, cov[i]), cov[i])) << i;
  }
  EXPECT_EQ(px[2 * 6 + 5], once(255, cov[0]));  // clipped glyph: only its top-left pixel
  EXPECT_EQ(px[3 * 6 + 5], once(255, cov[2]));
  EXPECT_EQ(px[0], 255);

  // RGB with a coloured foreground: every channel blends independently.
  ImageView rgb{px.data(), 6, 4, 18, PixelFormat::kRgb8};
  page.glyphs = {{&g, 1, 2}};
  RasterizePage(page, Rgb{200, 0, 100}, Rgb{10, 250, 30}, rgb);
  const uint8_t* p = px.data() + 0 * 18 + 2 * 3;  // (x=2, y=0): coverage 128
  EXPECT_EQ(p[0], std::lround(10 + (200 - 10) * 128 / 255.0));
  EXPECT_EQ(p[1], std::lround(250 - 250 * 128 / 255.0));
  EXPECT_EQ(p[2], std::lround(30 + (100 - 30) * 128 / 255.0));
}

}  // namespace
}  // namespace vlserve::render
