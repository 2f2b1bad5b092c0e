// The "glyph" render preset: Glyph's published configuration (thu-coai/Glyph
// config/config_en.json) and the page geometry it gives, against hand-computed values.
#include <gtest/gtest.h>

#include <string>

#include "render/presets.h"
#include "test_util.h"

namespace vlserve::render {
namespace {

TEST(RenderPreset, GlyphIsThePublishedConfiguration) {
  // config_en.json: "page-size": "595,842", "dpi": 72, "margin-x"/"margin-y": 10,
  // "font-size": 9, "line-height": 10, "alignment": "LEFT", "horizontal-scale": 1.0,
  // indents / spacing 0, black on white, both auto-crop flags true, "<br/>" newlines.
  const RenderOptions o = GlyphPreset();
  EXPECT_EQ(o.page_width_pt, 595);
  EXPECT_EQ(o.page_height_pt, 842);
  EXPECT_EQ(o.dpi, 72);
  EXPECT_EQ(o.font_size_pt, 9);
  EXPECT_EQ(o.line_height_pt, 10);
  EXPECT_EQ(o.margin_left_pt, 10);
  EXPECT_EQ(o.margin_right_pt, 10);
  EXPECT_EQ(o.margin_top_pt, 10);
  EXPECT_EQ(o.margin_bottom_pt, 10);
  EXPECT_EQ(o.horizontal_scale, 1.0);
  EXPECT_EQ(o.first_line_indent_pt, 0);
  EXPECT_EQ(o.paragraph_spacing_pt, 0);
  EXPECT_EQ(o.align, Align::kLeft);
  EXPECT_EQ(o.newline, NewlineMode::kBreak);
  EXPECT_EQ(o.foreground.Luma(), 0);
  EXPECT_EQ(o.background.Luma(), 255);
  EXPECT_TRUE(o.auto_crop_width);
  EXPECT_TRUE(o.auto_crop_last_page);
  EXPECT_TRUE(o.font_path.empty());  // the server's / CLI's font, DejaVu Sans by default
}

TEST(RenderPreset, UnknownNameListsThePresets) {
  auto bad = RenderPreset("glyf");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("glyph, glyph-96dpi"), std::string::npos)
      << bad.status().ToString();
  ASSERT_TRUE(RenderPreset("glyph").ok());
  EXPECT_EQ(RenderPreset("glyph-96dpi")->dpi, 96);
}

// 100 one-letter lines. Hand-computed at 72 dpi (1 pt = 1 px): A4 = 595 x 842 px; the
// text area is 842 - 2 * 10 = 822 px tall, so 10-px lines give floor(822 / 10) = 82 lines
// on page 1 (every line ends a paragraph, so no look-back shortens it) and 18 on page 2,
// cropped to 10 + 18 * 10 + 10 = 200 px. Width: "x" in DejaVu Sans at 9 px advances
// 1212/2048 em = 5.33 px (PIL's getlength: 5.328125), so the crop is
// ceil(10 + 5.328 + 10) = 26 px.
TEST(RenderPreset, GlyphPageGeometryAt72Dpi) {
  SKIP_WITHOUT_FONTS();
  auto renderer = testing::MakeRenderer(GlyphPreset());
  ASSERT_NE(renderer, nullptr);
  EXPECT_EQ(renderer->max_page_width(), 595);
  EXPECT_EQ(renderer->max_page_height(), 842);
  std::string text;
  for (int i = 0; i < 100; ++i) text += "x\n";
  const auto pages = testing::AllPages(*renderer, text);
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(pages[0].lines, 82);
  EXPECT_EQ(pages[0].height_px, 842);
  EXPECT_EQ(pages[0].width_px, 26);
  EXPECT_EQ(pages[1].lines, 18);
  EXPECT_EQ(pages[1].height_px, 200);
  EXPECT_EQ(pages[1].width_px, 26);
}

// Without auto-crop every page keeps the full 595 x 842 A4 raster.
TEST(RenderPreset, GlyphWithoutCropKeepsTheA4Page) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o = GlyphPreset();
  o.auto_crop_width = o.auto_crop_last_page = false;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  const auto pages = testing::AllPages(*renderer, "x\ny\n");
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_EQ(pages[0].width_px, 595);
  EXPECT_EQ(pages[0].height_px, 842);
}

// 96 dpi scales by 4/3: lround(595 * 4/3) = 793, lround(842 * 4/3) = 1123; margins and
// lines are 13.33 px, so floor((1123 - 26.67) / 13.33) = 82 lines still fit, and the last
// page of 18 lines is ceil(20 * 13.33) = 267 px. "x" at 12 px advances 7.10 px:
// ceil(13.33 + 7.10 + 13.33) = 34.
TEST(RenderPreset, Glyph96DpiGeometry) {
  SKIP_WITHOUT_FONTS();
  auto preset = RenderPreset("glyph-96dpi");
  ASSERT_TRUE(preset.ok());
  auto renderer = testing::MakeRenderer(*preset);
  ASSERT_NE(renderer, nullptr);
  EXPECT_EQ(renderer->max_page_width(), 793);
  EXPECT_EQ(renderer->max_page_height(), 1123);
  std::string text;
  for (int i = 0; i < 100; ++i) text += "x\n";
  const auto pages = testing::AllPages(*renderer, text);
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(pages[0].lines, 82);
  EXPECT_EQ(pages[0].height_px, 1123);
  EXPECT_EQ(pages[1].lines, 18);
  EXPECT_EQ(pages[1].height_px, 267);
  EXPECT_EQ(pages[1].width_px, 34);
}

}  // namespace
}  // namespace vlserve::render
