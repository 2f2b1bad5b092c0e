// Glyph positions and advances against HarfBuzz's own shaping of the same line.
#include <gtest/gtest.h>
#include <hb-ot.h>
#include <hb.h>

#include <cmath>

#include "test_util.h"

namespace vlserve::render {
namespace {

struct HbGlyph {
  uint32_t gid;
  int32_t x;  // 26.6 pen position + x_offset from the line start
};

std::vector<HbGlyph> ShapeLine(const std::string& text, double size_px) {
  hb_blob_t* blob = hb_blob_create_from_file(testing::kDejaVu);
  hb_face_t* face = hb_face_create(blob, 0);
  hb_font_t* font = hb_font_create(face);
  const int scale = static_cast<int>(std::lround(size_px * 64));
  hb_font_set_scale(font, scale, scale);
  hb_buffer_t* buf = hb_buffer_create();
  hb_buffer_add_utf8(buf, text.data(), static_cast<int>(text.size()), 0, -1);
  hb_buffer_guess_segment_properties(buf);
  hb_shape(font, buf, nullptr, 0);
  unsigned n = 0;
  hb_glyph_info_t* info = hb_buffer_get_glyph_infos(buf, &n);
  hb_glyph_position_t* pos = hb_buffer_get_glyph_positions(buf, nullptr);
  std::vector<HbGlyph> out;
  int32_t pen = 0;
  for (unsigned i = 0; i < n; ++i) {
    out.push_back({info[i].codepoint, pen + pos[i].x_offset});
    pen += pos[i].x_advance;
  }
  hb_buffer_destroy(buf);
  hb_font_destroy(font);
  hb_face_destroy(face);
  hb_blob_destroy(blob);
  return out;
}

TEST(Layout, PositionsMatchHarfBuzzLine) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o;  // defaults: 9 pt at 72 dpi = 9 px; widen the page so nothing wraps
  o.dpi = 144;      // 18 px: kerning differences are whole pixels
  o.page_width_pt = 2000;
  o.page_height_pt = 100;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  const std::string text = "AVAWAY To. Yes, we've fixed it: \"office\" LT 12,345.67 Vä";
  auto pages = testing::AllPages(*renderer, text);
  ASSERT_EQ(pages.size(), 1u);
  const std::vector<HbGlyph> want = ShapeLine(text, 18);
  // Spaces have no ink but are glyphs in HarfBuzz's output; our layout places words
  // only, so drop HarfBuzz's space glyphs.
  Face* face = renderer->fonts().primary.get();
  const uint32_t space = face->NominalGlyph(' ');
  std::vector<HbGlyph> ink;
  for (const HbGlyph& g : want) {
    if (g.gid != space) ink.push_back(g);
  }
  const auto& got = pages[0].glyphs;
  ASSERT_EQ(got.size(), ink.size());
  const int32_t left = static_cast<int32_t>(std::lround(10 * 2.0 * 64));  // 10 pt margin
  for (size_t i = 0; i < ink.size(); ++i) {
    EXPECT_EQ(got[i].bitmap, face->Glyph(ink[i].gid)) << "glyph " << i;
    EXPECT_EQ(got[i].x, (left + ink[i].x + 32) >> 6) << "glyph " << i;
  }
  // Kerning really is applied: "AV" is tighter than the sum of nominal advances.
  EXPECT_LT(ink[1].x, face->Advance(face->NominalGlyph('A')));
}

TEST(Layout, LinesNeverExceedTheContentWidth) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o;
  o.page_width_pt = 200;
  o.auto_crop_width = false;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  std::string text;
  for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i * 7919 % 1000) + " ";
  auto pages = testing::AllPages(*renderer, text);
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_GT(pages[0].lines, 10);
  for (const PlacedGlyph& g : pages[0].glyphs) {
    EXPECT_LE(g.x + g.bitmap->left + g.bitmap->width, 200 - 10 + 1);
    EXPECT_GE(g.x, 10);
  }
}

TEST(Layout, JustifiedLinesReachTheRightMargin) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o;
  o.page_width_pt = 200;
  o.align = Align::kJustify;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  std::string text;
  for (int i = 0; i < 60; ++i) text += "lorem ipsum dolor ";
  auto pages = testing::AllPages(*renderer, text);
  ASSERT_EQ(pages.size(), 1u);
  // The first line's last glyph ends within a pixel of the right margin.
  const int first_baseline = pages[0].glyphs[0].y;
  int right = 0;
  for (const PlacedGlyph& g : pages[0].glyphs) {
    if (g.y == first_baseline) right = std::max(right, g.x + g.bitmap->left + g.bitmap->width);
  }
  EXPECT_NEAR(right, 190, 2);
}

// "a" + N combining acute accents is one grapheme cluster: unbounded, HarfBuzz's mark
// positioning was quadratic in it (64k marks took 7 s). The cluster keeps at most 30
// continuations (Unicode's stream-safe bound) and the rest is dropped, so the shaping work
// stays the same whatever N is.
TEST(Layout, HugeClusterIsCappedAndShapingStaysLinear) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  const auto layout = [&](int marks, int repeats, std::string base = "a") {
    std::string text;
    for (int r = 0; r < repeats; ++r) {
      text += (r > 0 ? " " : "") + base;
      for (int i = 0; i < marks; ++i) text += "\xCC\x81";  // U+0301
    }
    auto doc = renderer->Open(text);
    PageLayout page;
    size_t glyphs = 0;
    while (doc->Next(&page)) glyphs += page.glyphs.size();
    return std::pair<int64_t, size_t>{doc->shaped_chars(), glyphs};
  };
  const auto [few_chars, few_glyphs] = layout(3, 1);
  EXPECT_EQ(few_chars, 4);  // an ordinary cluster is shaped whole
  EXPECT_GE(few_glyphs, 3u);  // HarfBuzz may compose a + U+0301 into one glyph
  const auto [small_chars, small_glyphs] = layout(2000, 1);
  const auto [big_chars, big_glyphs] = layout(100000, 1);
  EXPECT_EQ(small_chars, 31);  // the base + 30 marks
  EXPECT_EQ(big_chars, 31);
  EXPECT_LE(big_glyphs, 31u);
  EXPECT_EQ(big_glyphs, small_glyphs);
  EXPECT_EQ(layout(100000, 1, "\xE4\xB8\xAD").first, 31);  // U+4E2D: the CJK path too
  EXPECT_EQ(layout(100000, 1, "").first, 31);  // marks with no base at all
  // Many capped clusters: work proportional to their count.
  const auto [many_chars, many_glyphs] = layout(1000, 50);
  EXPECT_LE(many_chars, 50 * 31);
  EXPECT_EQ(many_glyphs, 50 * small_glyphs);
}

}  // namespace
}  // namespace vlserve::render
