#include "render/layout.h"

#include <hb.h>

#include <algorithm>

#include "render/text.h"

namespace vlserve::render {
namespace {

// Words longer than this are shaped in pieces (split between grapheme clusters) so a
// 10 MB "word" never becomes one HarfBuzz buffer; pieces are not cached.
constexpr int64_t kMaxItemChars = 64;
// Continuation code points one cluster may carry, as in Unicode's stream-safe text format
// (UAX #15): real text needs a handful; "a" + a million U+0301 would otherwise be one
// cluster, one HarfBuzz buffer and quadratic mark positioning. The excess is dropped.
constexpr int64_t kMaxClusterContinuations = 30;
constexpr int64_t kMaxCachedChars = 24;
constexpr size_t kMaxCacheEntries = 1 << 16;

bool EndsWord(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == kZeroWidthSpace ||
         c == kSoftHyphen || IsDropped(c);
}

}  // namespace

void Line::Clear() {
  glyphs.clear();
  stretches.clear();
  begin = end = 0;
  width = indent = 0;
  paragraph_end = false;
  sentence_glyphs = -1;
  sentence_width = 0;
  sentence_next = -1;
}

LineBreaker::LineBreaker(FontSet* fonts, const RenderOptions& options,
                         const LayoutMetrics& metrics, std::u32string_view text)
    : fonts_(fonts), options_(options), metrics_(metrics), text_(text) {
  buffer_ = hb_buffer_create();
  Face* primary = fonts_->primary.get();
  space_advance_ = primary->Advance(primary->NominalGlyph(' '));
  const std::u32string hyphen = U"-";
  const std::u32string marker(1, options_.newline_marker);
  // Shape the two synthetic items directly from their own strings.
  std::u32string_view saved = text_;
  text_ = hyphen;
  ShapeInto(0, 0, 1, &hyphen_);
  text_ = marker;
  ShapeInto(FaceFor(options_.newline_marker), 0, 1, &marker_);
  text_ = saved;
  shaped_chars_ = 0;  // counts the text's shaping only
}

LineBreaker::~LineBreaker() { hb_buffer_destroy(buffer_); }

void LineBreaker::Seek(int64_t pos, bool paragraph_start) {
  pos_ = pos;
  paragraph_start_ = paragraph_start;
}

int LineBreaker::FaceFor(char32_t c) const {
  if (c < 0x7F || !fonts_->fallback) return 0;
  if (fonts_->primary->NominalGlyph(c) != 0) return 0;
  return fonts_->fallback->NominalGlyph(c) != 0 ? 1 : 0;
}

void LineBreaker::ShapeInto(int face_index, int64_t begin, int64_t end, ShapedItem* out) {
  Face* face = fonts_->face(face_index);
  hb_buffer_clear_contents(buffer_);
  hb_buffer_add_utf32(buffer_, reinterpret_cast<const uint32_t*>(text_.data() + begin),
                      static_cast<int>(end - begin), 0, static_cast<int>(end - begin));
  hb_buffer_guess_segment_properties(buffer_);
  hb_shape(face->hb_font(), buffer_, nullptr, 0);
  unsigned n = 0;
  const hb_glyph_info_t* info = hb_buffer_get_glyph_infos(buffer_, &n);
  const hb_glyph_position_t* pos = hb_buffer_get_glyph_positions(buffer_, nullptr);
  out->glyphs.resize(n);
  int32_t pen = 0;
  for (unsigned i = 0; i < n; ++i) {
    out->glyphs[i] = ShapedGlyph{face->Glyph(info[i].codepoint), pen + pos[i].x_offset,
                                 pos[i].y_offset, pos[i].x_advance, info[i].cluster};
    pen += pos[i].x_advance;
  }
  out->width = pen;
  ++shaped_;
  shaped_chars_ += end - begin;
}

const ShapedItem* LineBreaker::Shape(int face, int64_t begin, int64_t end) {
  if (end - begin > kMaxCachedChars) {
    ShapeInto(face, begin, end, &scratch_);
    return &scratch_;
  }
  key_.assign(1, static_cast<char32_t>(face));
  key_.append(text_.data() + begin, static_cast<size_t>(end - begin));
  auto it = cache_.find(key_);
  if (it != cache_.end()) {
    ++hits_;
    return &it->second;
  }
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  ShapedItem& item = cache_[key_];
  ShapeInto(face, begin, end, &item);
  return &item;
}

// A word: code points up to the next break character, CJK boundary, font change or the
// piece limit. break_after says whether a line may end right after it.
LineBreaker::Item LineBreaker::ScanWord(int64_t pos) {
  const int64_t n = static_cast<int64_t>(text_.size());
  const char32_t first = text_[pos];
  const int face = FaceFor(first);
  int64_t end = pos + 1;
  bool break_after = false;
  if (IsCjkBreakable(first)) {
    while (end < n && end - pos <= kMaxClusterContinuations && IsClusterContinuation(text_[end])) {
      ++end;
    }
  } else {
    int64_t continuations = 0;  // of the cluster ending at `end`
    while (end < n) {
      const char32_t c = text_[end];
      if (IsClusterContinuation(c) || text_[end - 1] == 0x200D) {
        if (++continuations > kMaxClusterContinuations) break;  // NextItem drops the rest
        ++end;
        continue;
      }
      continuations = 0;
      if (EndsWord(c) || IsCjkBreakable(c) || end - pos >= kMaxItemChars) break;
      if ((c >= 0x7F || face != 0) && FaceFor(c) != face) break;
      if (text_[end - 1] == '-' && end - pos >= 2 && c != '-' && !IsNoBreakBefore(c)) {
        break_after = true;  // "well-|known"
        break;
      }
      ++end;
    }
  }
  if (end < n && (IsCjkBreakable(first) || IsCjkBreakable(text_[end]))) {
    break_after = !IsNoBreakAfter(text_[end - 1]) && !IsNoBreakBefore(text_[end]) &&
                  !EndsWord(text_[end]);
  }
  return Item{Kind::kWord, pos, end, break_after, Shape(face, pos, end)};
}

LineBreaker::Item LineBreaker::NextItem(int64_t pos) {
  const int64_t n = static_cast<int64_t>(text_.size());
  const char32_t c = text_[pos];
  switch (c) {
    case ' ': {
      int64_t end = pos + 1;
      while (end < n && text_[end] == ' ') ++end;
      return Item{Kind::kSpace, pos, end, true};
    }
    case '\t':
      return Item{Kind::kTab, pos, pos + 1, true};
    case '\r':
      if (pos + 1 < n && text_[pos + 1] == '\n') return Item{Kind::kSkip, pos, pos + 1, false};
      [[fallthrough]];
    case '\n':
      if (options_.newline == NewlineMode::kMarker) {
        return Item{Kind::kWord, pos, pos + 1, true, &marker_};
      }
      return Item{Kind::kNewline, pos, pos + 1, true};
    case kZeroWidthSpace:
      return Item{Kind::kSkip, pos, pos + 1, true};
    case kSoftHyphen:
      return Item{Kind::kSoftHyphen, pos, pos + 1, true};
    default:
      break;
  }
  if (IsDropped(c)) return Item{Kind::kSkip, pos, pos + 1, false};
  if (IsClusterContinuation(c) && pos >= kMaxClusterContinuations) {
    // The excess of a cluster ScanWord capped: drop the run in one step.
    int64_t run = 1;
    while (run <= kMaxClusterContinuations && IsClusterContinuation(text_[pos - run])) ++run;
    if (run > kMaxClusterContinuations) {
      int64_t end = pos + 1;
      while (end < n && IsClusterContinuation(text_[end])) ++end;
      return Item{Kind::kSkip, pos, end, false};
    }
  }
  return ScanWord(pos);
}

// Places as many whole clusters of an overflowing item as fit in `room` at `pen` (at
// least one when `force`). Returns false when nothing was placed (one cluster, nothing
// fits, or right-to-left glyph order).
bool LineBreaker::SplitOversized(const Item& item, int32_t pen, int32_t room, bool force,
                                  Line* line) {
  const auto& g = item.shaped->glyphs;
  if (g.size() < 2 || g.back().cluster < g.front().cluster) return false;
  size_t cut = 0;  // glyphs [0, cut) are placed; g[cut] starts a new cluster
  for (size_t i = 1; i < g.size(); ++i) {
    if (g[i].cluster == g[i - 1].cluster) continue;
    if ((cut != 0 || !force) && g[i].x > room) break;
    cut = i;
    if (g[i].x > room) break;
  }
  if (cut == 0) return false;
  for (size_t i = 0; i < cut; ++i) line->glyphs.push_back({g[i].bitmap, pen + g[i].x, g[i].y});
  line->width = pen + g[cut].x;
  line->end = item.begin + g[cut].cluster;
  return true;
}

bool LineBreaker::NextLine(Line* line) {
  const int64_t n = static_cast<int64_t>(text_.size());
  line->Clear();
  if (pos_ >= n) return false;
  line->begin = pos_;
  line->indent = paragraph_start_ ? metrics_.first_line_indent : 0;
  const int32_t avail = std::max<int32_t>(metrics_.content_width - line->indent, 64);
  struct Break {
    int64_t pos = -1;
    size_t glyphs = 0, stretches = 0;
    int32_t width = 0;
    bool hyphen = false;
  } last;
  int32_t pen = 0, visible = 0;
  bool after_sentence_punct = false;
  int64_t p = pos_;
  bool done = false;
  while (!done) {
    if (p >= n) {
      line->end = n;
      line->paragraph_end = true;
      break;
    }
    const Item item = NextItem(p);
    switch (item.kind) {
      case Kind::kNewline:
        line->end = item.end;
        line->paragraph_end = true;
        done = true;
        continue;
      case Kind::kSpace:
      case Kind::kTab: {
        if (item.kind == Kind::kSpace) {
          line->stretches.push_back({static_cast<uint32_t>(line->glyphs.size()),
                                     static_cast<int32_t>(item.end - item.begin)});
          pen += static_cast<int32_t>(std::min<int64_t>(item.end - item.begin, 1 << 16)) *
                 space_advance_;
        } else {
          pen = (pen / metrics_.tab_stop + 1) * metrics_.tab_stop;
        }
        if (after_sentence_punct) {
          line->sentence_glyphs = static_cast<int32_t>(line->glyphs.size());
          line->sentence_width = visible;
          line->sentence_next = item.end;
        }
        after_sentence_punct = false;
        p = item.end;
        last = Break{p, line->glyphs.size(), line->stretches.size(), visible, false};
        continue;
      }
      case Kind::kSkip:
      case Kind::kSoftHyphen:
        p = item.end;
        if (item.break_after && visible + (item.kind == Kind::kSoftHyphen ? hyphen_.width : 0) <= avail) {
          last = Break{p, line->glyphs.size(), line->stretches.size(), visible,
                       item.kind == Kind::kSoftHyphen};
        }
        continue;
      case Kind::kWord:
        break;
    }
    const int32_t width = item.shaped->width;
    if (pen + width > avail) {
      if (last.pos >= 0) {
        line->glyphs.resize(last.glyphs);
        line->stretches.resize(last.stretches);
        line->width = last.width;
        line->end = last.pos;
        if (last.hyphen) {
          for (const ShapedGlyph& g : hyphen_.glyphs) {
            line->glyphs.push_back({g.bitmap, last.width + g.x, g.y});
          }
          line->width += hyphen_.width;
        }
        if (line->sentence_next > last.pos) line->sentence_glyphs = -1, line->sentence_next = -1;
        break;
      }
      // No break opportunity on the line: split the item between clusters, else break
      // before it (item boundaries are grapheme boundaries).
      if (SplitOversized(item, pen, avail - pen, line->glyphs.empty(), line)) break;
      if (!line->glyphs.empty()) {
        line->width = visible;
        line->end = p;
        break;
      }
    }
    for (const ShapedGlyph& g : item.shaped->glyphs) {
      line->glyphs.push_back({g.bitmap, pen + g.x, g.y});
    }
    pen += width;
    visible = pen;
    p = item.end;
    const char32_t last_char = text_[item.end - 1];
    after_sentence_punct = IsSentenceEnd(last_char) || (last_char == '"' && item.end - item.begin > 1 &&
                                                       IsSentenceEnd(text_[item.end - 2]));
    if (after_sentence_punct && IsCjkBreakable(last_char) && item.break_after) {
      line->sentence_glyphs = static_cast<int32_t>(line->glyphs.size());
      line->sentence_width = visible;
      line->sentence_next = item.end;
    }
    if (item.break_after) {
      last = Break{p, line->glyphs.size(), line->stretches.size(), visible, false};
    }
  }
  if (done || p >= n) line->width = visible;
  // Trailing stretches (hanging spaces) never take part in justification.
  while (!line->stretches.empty() && line->stretches.back().glyph >= line->glyphs.size()) {
    line->stretches.pop_back();
  }
  pos_ = line->end;
  paragraph_start_ = line->paragraph_end;
  return true;
}

}  // namespace vlserve::render
