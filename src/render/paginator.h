// Pagination: pulls lines from the LineBreaker and cuts them into pages. Streaming: only
// the current page's lines are held, so memory does not grow with the text.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "render/layout.h"
#include "render/options.h"

namespace vlserve::render {

// A glyph at its final pixel position: (x, y) is the pen position on the baseline.
struct PlacedGlyph {
  const GlyphBitmap* bitmap;
  int32_t x, y;
};

struct PageLayout {
  int index = 0;
  int width_px = 0, height_px = 0;
  int64_t char_begin = 0, char_end = 0;  // code point range of the text on this page
  int lines = 0;
  std::vector<PlacedGlyph> glyphs;
  int64_t chars() const { return char_end - char_begin; }
};

// Pixel geometry derived once from RenderOptions.
struct PageGeometry {
  int page_width_px = 0, page_height_px = 0;  // height 0 = automatic
  double margin_left = 0, margin_right = 0, margin_top = 0, margin_bottom = 0;
  double line_height = 0, paragraph_spacing = 0;
  double baseline_offset = 0;  // from a line box's top to its baseline
  LayoutMetrics metrics;
};

class Paginator {
 public:
  // `text` must outlive the paginator.
  Paginator(FontSet* fonts, const RenderOptions& options, const PageGeometry& geometry,
            std::u32string_view text);

  // Lays out the next page; false when no text is left.
  bool Next(PageLayout* page);

  const LineBreaker& breaker() const { return breaker_; }

 private:
  bool PullLine(Line* line);
  bool MoreText() const;
  void Cut(std::vector<Line>* lines);
  void Place(bool last, PageLayout* page) const;

  const RenderOptions& options_;
  PageGeometry geo_;
  std::u32string_view text_;
  LineBreaker breaker_;
  std::deque<Line> pending_;  // lines laid out but moved to the next page
  std::vector<Line> lines_;   // the current page's lines
  std::vector<double> tops_;  // each line box's top below the content top (pixels)
  int next_index_ = 0;
  int64_t last_visible_ = 0;  // one past the last visible character
};

}  // namespace vlserve::render
