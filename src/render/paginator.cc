#include "render/paginator.h"

#include <algorithm>
#include <cmath>

#include "render/text.h"

namespace vlserve::render {
namespace {

bool IsVisible(char32_t c) {
  return !(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == kZeroWidthSpace ||
           c == kSoftHyphen || c == 0x3000 || IsDropped(c));
}

}  // namespace

Paginator::Paginator(FontSet* fonts, const RenderOptions& options, const PageGeometry& geometry,
                     std::u32string_view text)
    : options_(options), geo_(geometry), text_(text), breaker_(fonts, options, geometry.metrics, text) {
  int64_t last = static_cast<int64_t>(text.size());
  while (last > 0 && !IsVisible(text[last - 1])) --last;
  last_visible_ = last;
}

bool Paginator::PullLine(Line* line) {
  if (!pending_.empty()) {
    *line = std::move(pending_.front());
    pending_.pop_front();
    return true;
  }
  if (breaker_.position() >= last_visible_) return false;  // only white space is left
  return breaker_.NextLine(line);
}

bool Paginator::MoreText() const {
  return !pending_.empty() || breaker_.position() < last_visible_;
}

// Moves the page end back (at most page_break_lookback_lines) to a paragraph end, else to
// a sentence end; the lines after the cut go to the next page.
void Paginator::Cut(std::vector<Line>* lines) {
  const int k = static_cast<int>(lines->size());
  const int lookback = std::min(options_.page_break_lookback_lines, k - 1);
  if (lookback <= 0 || !MoreText() || (*lines)[k - 1].paragraph_end) return;
  for (int i = k - 2; i >= k - 1 - lookback; --i) {
    if ((*lines)[i].paragraph_end) {
      pending_.insert(pending_.begin(), std::make_move_iterator(lines->begin() + i + 1),
                      std::make_move_iterator(lines->end()));
      lines->resize(i + 1);
      return;
    }
  }
  for (int i = k - 1; i >= k - lookback; --i) {
    Line& line = (*lines)[i];
    if (line.sentence_next < 0) continue;
    if (line.sentence_next >= line.end) return;  // already ends at a sentence end
    line.glyphs.resize(line.sentence_glyphs);
    line.width = line.sentence_width;
    line.end = line.sentence_next;
    while (!line.stretches.empty() && line.stretches.back().glyph >= line.glyphs.size()) {
      line.stretches.pop_back();
    }
    lines->resize(i + 1);
    pending_.clear();
    breaker_.Seek(line.end, false);
    return;
  }
}

bool Paginator::Next(PageLayout* page) {
  lines_.clear();
  tops_.clear();
  const bool auto_height = geo_.page_height_px == 0;
  const double page_h = auto_height ? options_.max_auto_height_px : geo_.page_height_px;
  const double content_h = page_h - geo_.margin_top - geo_.margin_bottom;
  double y = 0;
  Line line;
  while (PullLine(&line)) {
    if (!lines_.empty() && y + geo_.line_height > content_h + 1e-6) {
      pending_.push_front(std::move(line));
      break;
    }
    tops_.push_back(y);
    y += geo_.line_height + (line.paragraph_end ? geo_.paragraph_spacing : 0);
    lines_.push_back(std::move(line));
  }
  if (lines_.empty()) return false;
  Cut(&lines_);
  tops_.resize(lines_.size());
  page->index = next_index_++;
  page->lines = static_cast<int>(lines_.size());
  page->char_begin = page->index == 0 ? 0 : lines_.front().begin;
  const bool last = !MoreText();
  page->char_end = last ? static_cast<int64_t>(text_.size()) : lines_.back().end;
  Place(last, page);
  return true;
}

void Paginator::Place(bool last, PageLayout* page) const {
  page->glyphs.clear();
  const int32_t content_w = geo_.metrics.content_width;
  const int32_t left = static_cast<int32_t>(std::lround(geo_.margin_left * 64));
  int32_t max_right = 0;
  for (size_t i = 0; i < lines_.size(); ++i) {
    const Line& line = lines_[i];
    const int32_t avail = content_w - line.indent;
    const int32_t slack = std::max(0, avail - line.width);
    int32_t x0 = left + line.indent;
    if (options_.align == Align::kCenter) x0 += slack / 2;
    if (options_.align == Align::kRight) x0 += slack;
    int64_t spaces = 0;
    const bool justify = options_.align == Align::kJustify && !line.paragraph_end &&
                         !line.stretches.empty();
    if (justify) {
      for (const Line::Stretch& s : line.stretches) spaces += s.spaces;
    }
    const int y = static_cast<int>(std::lround(geo_.margin_top + tops_[i] + geo_.baseline_offset));
    size_t next_stretch = 0;
    int64_t spaces_before = 0;
    int32_t shift = 0;
    for (size_t g = 0; g < line.glyphs.size(); ++g) {
      while (justify && next_stretch < line.stretches.size() &&
             line.stretches[next_stretch].glyph <= g) {
        spaces_before += line.stretches[next_stretch++].spaces;
        shift = static_cast<int32_t>(slack * spaces_before / spaces);
      }
      const LineGlyph& lg = line.glyphs[g];
      page->glyphs.push_back(
          {lg.bitmap, (x0 + lg.x + shift + 32) >> 6, y - ((lg.y + 32) >> 6)});
    }
    max_right = std::max(max_right, x0 + (justify ? avail : line.width));
  }
  page->width_px = geo_.page_width_px;
  if (options_.auto_crop_width && options_.align == Align::kLeft) {
    const int cropped = static_cast<int>(std::ceil(max_right / 64.0 + geo_.margin_right));
    page->width_px = std::clamp(cropped, 1, geo_.page_width_px);
  }
  const double used = geo_.margin_top + tops_.back() + geo_.line_height + geo_.margin_bottom;
  // A last page that no further line would fit on keeps the full height: it is then the
  // same image whether or not more text follows, so a document re-sent with text appended
  // re-encodes only its new pages (the encoder cache keys pages by their pixels).
  const double next_top = tops_.back() + geo_.line_height +
                          (lines_.back().paragraph_end ? geo_.paragraph_spacing : 0);
  const bool full = geo_.page_height_px != 0 &&
                    next_top + geo_.line_height >
                        geo_.page_height_px - geo_.margin_top - geo_.margin_bottom + 1e-6;
  if (geo_.page_height_px == 0 || (last && options_.auto_crop_last_page && !full)) {
    page->height_px = std::max(1, static_cast<int>(std::ceil(used - 1e-9)));
    if (geo_.page_height_px) page->height_px = std::min(page->height_px, geo_.page_height_px);
  } else {
    page->height_px = geo_.page_height_px;
  }
}

}  // namespace vlserve::render
