// Render configuration: one plain struct, defaults = Glyph's best published setting
// (arXiv 2510.17800: A4, 72 dpi, Verdana-like sans at 9 pt, 10 pt leading, 10 pt margins,
// black on white, left aligned, width auto-crop). All lengths are in points (1/72 inch).
#pragma once

#include <cstdint>
#include <string>

namespace vlserve::render {

enum class Align { kLeft, kJustify, kCenter, kRight };
enum class NewlineMode {
  kBreak,   // '\n' ends the paragraph (a real line break)
  kMarker,  // '\n' becomes a visible marker glyph so short lines share one line
};
enum class PixelFormat { kGrey8, kRgb8 };

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  uint8_t Luma() const { return static_cast<uint8_t>((r * 77 + g * 150 + b * 29 + 128) >> 8); }
  bool operator==(const Rgb&) const = default;
};

struct RenderOptions {
  // Page size. page_height_pt == 0 means "fixed width, automatic height": one page as
  // tall as its text, capped at max_auto_height_px (then a new page starts).
  double page_width_pt = 595;   // A4 = 595 x 842, Letter = 612 x 792
  double page_height_pt = 842;
  int max_auto_height_px = 8192;
  double dpi = 72;

  // Fonts. Empty = search the default path list (see font.h). The CJK face is used for
  // every character the primary face lacks.
  std::string font_path;
  std::string cjk_font_path;
  double font_size_pt = 9;
  double line_height_pt = 10;
  double horizontal_scale = 1.0;  // glyph widths and advances are multiplied by this

  double margin_left_pt = 10, margin_right_pt = 10, margin_top_pt = 10, margin_bottom_pt = 10;
  Align align = Align::kLeft;
  double first_line_indent_pt = 0;
  double paragraph_spacing_pt = 0;  // extra space after each paragraph
  int tab_size = 4;                 // tab stops every tab_size space widths
  NewlineMode newline = NewlineMode::kBreak;
  char32_t newline_marker = 0x21B5;  // "↵" (DejaVu Sans has it)

  Rgb foreground{0, 0, 0};
  Rgb background{255, 255, 255};

  // Crop every page's width to its widest line plus the right margin, and the last
  // page's height to its last line plus the bottom margin.
  bool auto_crop_width = true;
  bool auto_crop_last_page = true;

  // Pagination: a page may end up to this many lines early to end at a paragraph
  // boundary, else at a sentence end within those lines; otherwise it is filled.
  int page_break_lookback_lines = 2;

  bool operator==(const RenderOptions&) const = default;
};

// Standard page sizes in points.
struct PageSizePt {
  double width, height;
};
constexpr PageSizePt kA4{595, 842};
constexpr PageSizePt kLetter{612, 792};

}  // namespace vlserve::render
