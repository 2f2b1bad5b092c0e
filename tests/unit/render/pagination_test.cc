// Pagination and bad-input behaviour.
#include <limits>
#include <gtest/gtest.h>

#include "render/sample_text.h"
#include "render/text.h"
#include "test_util.h"

namespace vlserve::render {
namespace {

// A page that holds exactly `lines` lines at the default 10 pt line height.
RenderOptions SmallPage(int lines, double width_pt = 300) {
  RenderOptions o;
  o.page_width_pt = width_pt;
  o.page_height_pt = 20 + 10 * lines;
  return o;
}

void ExpectContiguous(const std::vector<PageLayout>& pages, int64_t total) {
  ASSERT_FALSE(pages.empty());
  EXPECT_EQ(pages.front().char_begin, 0);
  for (size_t i = 1; i < pages.size(); ++i) {
    EXPECT_EQ(pages[i].char_begin, pages[i - 1].char_end) << "page " << i;
    EXPECT_GT(pages[i].chars(), 0);
  }
  EXPECT_EQ(pages.back().char_end, total);
}

TEST(Pagination, RangesCoverTheTextAndPagesAreFull) {
  SKIP_WITHOUT_FONTS();
  auto renderer = testing::MakeRenderer(RenderOptions{});
  ASSERT_NE(renderer, nullptr);
  const std::string text = SampleEnglish(60'000);
  auto pages = testing::AllPages(*renderer, text);
  ExpectContiguous(pages, static_cast<int64_t>(text.size()));
  // A4 at 10 pt lines with 10 pt margins holds 82 lines; the look-back allows 2 fewer.
  for (size_t i = 0; i + 1 < pages.size(); ++i) {
    EXPECT_GE(pages[i].lines, 80);
    EXPECT_LE(pages[i].lines, 82);
    EXPECT_EQ(pages[i].width_px, 595);  // prose fills the width: little to crop
    EXPECT_EQ(pages[i].height_px, 842);
  }
  EXPECT_LT(pages.back().height_px, 842);  // the last page is cropped to its text
}

// A last page as full as a page can be is not cropped: it is the same page whether or not
// text follows, so a document re-sent with more text re-encodes only its new pages.
TEST(Pagination, AFullLastPageKeepsItsHeight) {
  SKIP_WITHOUT_FONTS();
  auto renderer = testing::MakeRenderer(RenderOptions{});  // A4, 82 lines of 10 px
  ASSERT_NE(renderer, nullptr);
  std::string full;
  for (int i = 0; i < 82; ++i) full += "line " + std::to_string(i) + "\n";
  auto one = testing::AllPages(*renderer, full);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].lines, 82);
  EXPECT_EQ(one[0].height_px, 842);  // not 840, the height of its text plus margins
  auto two = testing::AllPages(*renderer, full + "one more line\n");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].height_px, one[0].height_px);
  EXPECT_EQ(two[0].width_px, one[0].width_px);
  EXPECT_EQ(two[0].char_end, one[0].char_end);
  EXPECT_EQ(two[1].height_px, 30);  // a short last page is still cropped: 10 + 10 + 10
  auto short_page = testing::AllPages(*renderer, "line 0\nline 1\n");
  ASSERT_EQ(short_page.size(), 1u);
  EXPECT_EQ(short_page[0].height_px, 40);
}

TEST(Pagination, PrefersParagraphEnds) {
  SKIP_WITHOUT_FONTS();
  auto renderer = testing::MakeRenderer(SmallPage(5));
  ASSERT_NE(renderer, nullptr);
  std::string text = "one\ntwo\nthree\nfour\n";
  for (int i = 0; i < 40; ++i) text += "a long paragraph that continues ";
  auto pages = testing::AllPages(*renderer, text);
  ASSERT_GE(pages.size(), 2u);
  EXPECT_EQ(pages[0].lines, 4);
  EXPECT_EQ(pages[0].char_end, 19);  // just after "four\n"
  ExpectContiguous(pages, static_cast<int64_t>(text.size()));
}

TEST(Pagination, PrefersSentenceEndsOverLineEnds) {
  SKIP_WITHOUT_FONTS();
  const std::string text = SampleEnglish(40'000, 7, /*newlines=*/false);
  const std::u32string chars = DecodeUtf8(text).chars;
  auto count_sentence_ends = [&](int lookback) {
    RenderOptions o = SmallPage(12);
    o.page_break_lookback_lines = lookback;
    auto renderer = testing::MakeRenderer(o);
    auto pages = testing::AllPages(*renderer, text);
    ExpectContiguous(pages, static_cast<int64_t>(chars.size()));
    int ends = 0;
    for (size_t i = 0; i + 1 < pages.size(); ++i) {
      int64_t e = pages[i].char_end;
      while (e > 0 && chars[e - 1] == ' ') --e;
      ends += IsSentenceEnd(chars[e - 1]);
    }
    return std::pair<int, int>(ends, static_cast<int>(pages.size()) - 1);
  };
  auto [with, pages_with] = count_sentence_ends(2);
  auto [without, pages_without] = count_sentence_ends(0);
  EXPECT_GT(with, pages_with * 8 / 10);
  EXPECT_LT(without, pages_without * 4 / 10);
}

TEST(Pagination, NeverSplitsAGraphemeCluster) {
  SKIP_WITHOUT_FONTS();
  // One 1-line page per line, 60 pt wide; the text is a single "word" of e + U+0301.
  auto renderer = testing::MakeRenderer(SmallPage(1, 60));
  ASSERT_NE(renderer, nullptr);
  std::string text;
  for (int i = 0; i < 300; ++i) text += "e\xCC\x81";
  const std::u32string chars = DecodeUtf8(text).chars;
  auto pages = testing::AllPages(*renderer, text);
  ASSERT_GT(pages.size(), 5u);
  ExpectContiguous(pages, static_cast<int64_t>(chars.size()));
  for (const PageLayout& p : pages) EXPECT_EQ(chars[p.char_begin], U'e') << p.char_begin;
}

TEST(Pagination, CjkBreaksBetweenCharactersWithKinsoku) {
  SKIP_WITHOUT_FONTS();
  if (!std::filesystem::exists(testing::kWqy)) GTEST_SKIP() << "fonts-wqy-zenhei not installed";
  auto renderer = testing::MakeRenderer(SmallPage(1, 100));
  ASSERT_NE(renderer, nullptr);
  const std::string text = SampleChinese(3000);
  const std::u32string chars = DecodeUtf8(text).chars;
  auto pages = testing::AllPages(*renderer, text);
  ASSERT_GT(pages.size(), 20u);
  ExpectContiguous(pages, static_cast<int64_t>(chars.size()));
  for (const PageLayout& p : pages) {
    EXPECT_FALSE(IsNoBreakBefore(chars[p.char_begin])) << "line starts with punctuation";
    EXPECT_LE(p.chars(), 10);  // 80 pt of 9 pt ideographs: at most 8-9 per line (+ newline)
  }
  // Han characters come from the fallback face.
  EXPECT_GT(renderer->fonts().fallback->cached_glyphs(), 20);
}

TEST(BadInput, EmptyAndWhitespaceOnlyHaveNoPages) {
  SKIP_WITHOUT_FONTS();
  auto renderer = testing::MakeRenderer(RenderOptions{});
  ASSERT_NE(renderer, nullptr);
  EXPECT_TRUE(testing::AllPages(*renderer, "").empty());
  EXPECT_TRUE(testing::AllPages(*renderer, " \n\t\r\n   \n\xE2\x80\x8B").empty());
}

TEST(BadInput, InvalidUtf8IsReplacedAndCounted) {
  SKIP_WITHOUT_FONTS();
  auto renderer = testing::MakeRenderer(RenderOptions{});
  ASSERT_NE(renderer, nullptr);
  auto doc = renderer->Open("ok \xFF\xFE bad");
  EXPECT_EQ(doc->stats().invalid_bytes, 2);
  PageLayout page;
  ASSERT_TRUE(doc->Next(&page));
  EXPECT_EQ(page.chars(), 9);
  EXPECT_EQ(page.glyphs.size(), 7u);  // o k U+FFFD U+FFFD b a d
}

TEST(BadInput, LongTextWithoutNewlineOrSpaces) {
  SKIP_WITHOUT_FONTS();
  auto renderer = testing::MakeRenderer(RenderOptions{});
  ASSERT_NE(renderer, nullptr);
  const std::string text(300'000, 'x');
  auto pages = testing::AllPages(*renderer, text);
  ExpectContiguous(pages, static_cast<int64_t>(text.size()));
  EXPECT_GE(pages[0].lines, 80);  // emergency breaks fill every line
}

TEST(BadInput, MissingFontIsNotFoundWithThePath) {
  RenderOptions o;
  o.font_path = "/nonexistent/font.ttf";
  auto r = Renderer::Create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/font.ttf"), std::string::npos);
}

TEST(BadInput, PageTooSmallForOneLine) {
  RenderOptions o;
  o.page_height_pt = 25;  // 5 pt between 10 pt margins < 10 pt line
  auto r = Renderer::Create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("too small for one line"), std::string::npos);
}

TEST(BadInput, IndentAndParagraphSpacingAreBoundedByThePage) {
  // An indent of 1e12 pt once overflowed the 26.6 fixed-point layout width; NaN and
  // infinity must not slip past the comparisons either.
  const double bad[] = {1e12, std::numeric_limits<double>::infinity(),
                        std::numeric_limits<double>::quiet_NaN(), -1};
  for (double v : bad) {
    RenderOptions o;
    o.first_line_indent_pt = v;
    auto r = Renderer::Create(o);
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << v;
    RenderOptions p;
    p.paragraph_spacing_pt = v;
    r = Renderer::Create(p);
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << v;
  }
  RenderOptions ok;
  ok.first_line_indent_pt = 20;
  ok.paragraph_spacing_pt = 5;
  auto r = Renderer::Create(ok);  // may lack fonts here (NotFound), but is valid
  if (!r.ok()) {
    EXPECT_NE(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
  }
}

TEST(BadInput, PagesOverFortyMegapixelsAreRefused) {
  RenderOptions o;
  o.page_width_pt = o.page_height_pt = 3900;  // 16,250 px a side at 300 dpi: each side fits
  o.dpi = 300;
  auto r = Renderer::Create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("megapixels"), std::string::npos) << r.status().message();
  RenderOptions a4;  // A4 at 600 dpi: 4961 x 7016 px, 34.8 MP
  a4.dpi = 600;
  auto ok = Renderer::Create(a4);
  if (!ok.ok()) {
    EXPECT_NE(ok.status().code(), StatusCode::kInvalidArgument) << ok.status().message();
  }
}

TEST(Pagination, WideAutoHeightPagesStayUnderFortyMegapixels) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o;
  o.page_height_pt = 0;
  o.page_width_pt = 3000;  // 12,500 px wide at 300 dpi: at most 3,200 px tall
  o.dpi = 300;
  o.auto_crop_width = false;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  std::string text;
  for (int i = 0; i < 400; ++i) text += "line " + std::to_string(i) + "\n";
  auto pages = testing::AllPages(*renderer, text);
  ASSERT_GT(pages.size(), 1u);
  for (const auto& p : pages) {
    EXPECT_LE(int64_t{p.width_px} * p.height_px, 40'000'000) << p.width_px << "x" << p.height_px;
  }
}

TEST(Pagination, AutoHeightIsOnePageForShortText) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o;
  o.page_height_pt = 0;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  auto pages = testing::AllPages(*renderer, "line one\nline two\nline three");
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_EQ(pages[0].lines, 3);
  EXPECT_EQ(pages[0].height_px, 10 + 3 * 10 + 10);
}

TEST(Layout, NewlineMarkerJoinsShortLines) {
  SKIP_WITHOUT_FONTS();
  RenderOptions o;
  o.newline = NewlineMode::kMarker;
  auto renderer = testing::MakeRenderer(o);
  ASSERT_NE(renderer, nullptr);
  auto pages = testing::AllPages(*renderer, "a\nb\nc");
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_EQ(pages[0].lines, 1);
  EXPECT_EQ(pages[0].glyphs.size(), 5u);  // a ↵ b ↵ c
}

}  // namespace
}  // namespace vlserve::render
