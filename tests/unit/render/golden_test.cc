// Compares a rendered line with a golden image drawn by Pillow (an independent
// FreeType/raqm path; tools/reference/render_golden.py regenerates it).
//
// Tolerance: the two paths round glyph positions differently (we round the 26.6 pen
// position per glyph; Pillow/raqm may use hinted advances), so edges may move by one
// pixel. We require mean |diff| < 6 grey levels and fewer than 3% of pixels differing
// by more than 128; a missing glyph, a wrong baseline or a shift of 2+ pixels fails both.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace vlserve::render {
namespace {

bool ReadPgm(const std::string& path, int* w, int* h, std::vector<uint8_t>* pixels) {
  std::ifstream in(path, std::ios::binary);
  std::string magic;
  int maxval = 0;
  if (!(in >> magic >> *w >> *h >> maxval) || magic != "P5" || maxval != 255) return false;
  in.get();
  pixels->resize(static_cast<size_t>(*w) * *h);
  return static_cast<bool>(in.read(reinterpret_cast<char*>(pixels->data()), pixels->size()));
}

TEST(Golden, SingleLineMatchesPillow) {
  SKIP_WITHOUT_FONTS();
  int gw = 0, gh = 0;
  std::vector<uint8_t> golden;
  ASSERT_TRUE(ReadPgm(VLSERVE_SOURCE_DIR "/tests/golden/render/hello_16px.pgm", &gw, &gh, &golden));
  RenderOptions o;
  o.dpi = 96;
  o.font_size_pt = 12;
  o.line_height_pt = 14;
  o.page_width_pt = 300;
  o.page_height_pt = 30;
  o.margin_left_pt = o.margin_right_pt = o.margin_top_pt = o.margin_bottom_pt = 6;
  o.auto_crop_width = o.auto_crop_last_page = false;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  auto pages = testing::AllPages(*renderer, "Hello, world! AVAWAY fi 0123 (Glyph).");
  ASSERT_EQ(pages.size(), 1u);
  ASSERT_EQ(pages[0].width_px, gw);
  ASSERT_EQ(pages[0].height_px, gh);
  std::vector<uint8_t> ours(golden.size());
  renderer->Rasterize(pages[0], ImageView{ours.data(), gw, gh, gw, PixelFormat::kGrey8});
  double sum = 0;
  int big = 0, ink = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    const int d = std::abs(ours[i] - golden[i]);
    sum += d;
    big += d > 128;
    ink += golden[i] < 128;
  }
  const double mean = sum / ours.size();
  EXPECT_GT(ink, 300) << "golden image has no text";
  EXPECT_LT(mean, 6.0);
  EXPECT_LT(big, static_cast<int>(0.03 * ours.size())) << "mean |diff| " << mean;
  std::printf("golden: mean |diff| %.3f, pixels off by >128: %d of %zu\n", mean, big, ours.size());
}

}  // namespace
}  // namespace vlserve::render
