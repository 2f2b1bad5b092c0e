// Line layout: itemise text into words / space runs / breaks, shape each word once
// (cached by string), and fill lines greedily on the shaped advances.
//
// Break opportunities: after a run of spaces (the spaces hang past the line end), after
// a tab, zero-width space or soft hyphen (which then shows a hyphen), after an ASCII
// hyphen inside a word, and before/after every CJK character except where kinsoku
// punctuation forbids it. A word wider than a whole line is split between grapheme
// clusters. All x quantities are 26.6 fixed-point pixels.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "render/font.h"
#include "render/options.h"

struct hb_buffer_t;

namespace vlserve::render {

struct ShapedGlyph {
  const GlyphBitmap* bitmap;
  int32_t x;        // pen x of this glyph from the item start, x_offset included (26.6)
  int32_t y;        // y_offset, up is positive (26.6)
  int32_t advance;  // (26.6)
  uint32_t cluster; // code point offset of the glyph's cluster within the item
};

struct ShapedItem {
  std::vector<ShapedGlyph> glyphs;
  int32_t width = 0;  // sum of advances (26.6)
};

struct LineGlyph {
  const GlyphBitmap* bitmap;
  int32_t x;  // from the line's content start (26.6)
  int32_t y;  // offset above the baseline (26.6)
};

struct Line {
  std::vector<LineGlyph> glyphs;
  int64_t begin = 0, end = 0;  // code points consumed, trailing spaces / newline included
  int32_t width = 0;           // visible width, hanging spaces excluded (26.6)
  int32_t indent = 0;          // first-line indent (26.6)
  bool paragraph_end = false;  // ends at a newline or at the end of the text
  // Inter-word space runs, for justification: glyphs from index `glyph` on shift right.
  struct Stretch {
    uint32_t glyph;
    int32_t spaces;
  };
  std::vector<Stretch> stretches;
  // The last sentence end on the line (-1 if none): glyphs before it, visible width, and
  // the text offset where the next sentence starts.
  int32_t sentence_glyphs = -1;
  int32_t sentence_width = 0;
  int64_t sentence_next = -1;

  void Clear();
};

struct LayoutMetrics {
  int32_t content_width = 0;  // 26.6
  int32_t first_line_indent = 0;
  int32_t tab_stop = 0;
};

class LineBreaker {
 public:
  LineBreaker(FontSet* fonts, const RenderOptions& options, const LayoutMetrics& metrics,
              std::u32string_view text);
  ~LineBreaker();
  LineBreaker(const LineBreaker&) = delete;
  LineBreaker& operator=(const LineBreaker&) = delete;

  // Lays out the line starting at position(); false when the text is exhausted.
  bool NextLine(Line* line);
  int64_t position() const { return pos_; }
  // Continue from `pos`; paragraph_start decides whether the next line is indented.
  void Seek(int64_t pos, bool paragraph_start);

  int64_t shaped_words() const { return shaped_; }
  int64_t cache_hits() const { return hits_; }
  // Code points handed to HarfBuzz so far: the shaping work, linear in the text.
  int64_t shaped_chars() const { return shaped_chars_; }

 private:
  enum class Kind { kWord, kSpace, kTab, kNewline, kSkip, kSoftHyphen };
  struct Item {
    Kind kind;
    int64_t begin, end;
    bool break_after = false;
    const ShapedItem* shaped = nullptr;  // kWord
  };
  Item NextItem(int64_t pos);
  Item ScanWord(int64_t pos);
  int FaceFor(char32_t c) const;
  const ShapedItem* Shape(int face, int64_t begin, int64_t end);
  void ShapeInto(int face, int64_t begin, int64_t end, ShapedItem* out);
  bool SplitOversized(const Item& item, int32_t pen, int32_t room, bool force, Line* line);

  FontSet* fonts_;
  const RenderOptions& options_;
  LayoutMetrics metrics_;
  std::u32string_view text_;
  int64_t pos_ = 0;
  bool paragraph_start_ = true;
  int32_t space_advance_ = 0;
  ShapedItem hyphen_;
  ShapedItem marker_;
  hb_buffer_t* buffer_ = nullptr;
  // Shaped words keyed by (face, code points); bounded, cleared when full.
  std::unordered_map<std::u32string, ShapedItem> cache_;
  std::u32string key_;
  ShapedItem scratch_;
  int64_t shaped_ = 0, hits_ = 0, shaped_chars_ = 0;
};

}  // namespace vlserve::render
