// Command-line flags shared by `vlserve render` and `vlserve bench-render`: every
// RenderOptions / VisionConfig field that a user may want to change, with its default.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "render/options.h"
#include "render/vision_tokens.h"

namespace vlserve::app {

struct RenderFlags {
  render::RenderOptions options;
  render::VisionConfig vision;
  std::string page = "a4";  // a4 | letter | WxH (points) | W (points, automatic height)
  std::string align = "left";
  std::string newline = "break";
  bool no_crop = false;

  void Add(CLI::App& app) {
    app.add_option("--page", page, "page size: a4, letter, WxH in points, or W (auto height)")
        ->capture_default_str();
    app.add_option("--dpi", options.dpi, "resolution")->capture_default_str();
    app.add_option("--font", options.font_path, "font file (default: DejaVu Sans)");
    app.add_option("--cjk-font", options.cjk_font_path, "fallback font for CJK (default: WenQuanYi Zen Hei)");
    app.add_option("--font-size", options.font_size_pt, "font size in points")->capture_default_str();
    app.add_option("--line-height", options.line_height_pt, "line height in points")->capture_default_str();
    app.add_option("--hscale", options.horizontal_scale, "horizontal glyph scale")->capture_default_str();
    app.add_option("--margin", options.margin_left_pt, "all four margins in points")->capture_default_str();
    app.add_option("--align", align, "left | justify | center | right")->capture_default_str();
    app.add_option("--indent", options.first_line_indent_pt, "first-line indent in points")->capture_default_str();
    app.add_option("--para-spacing", options.paragraph_spacing_pt, "space after paragraphs, points")->capture_default_str();
    app.add_option("--tab-size", options.tab_size, "tab stop in space widths")->capture_default_str();
    app.add_option("--newline", newline, "break (line break) | marker (visible ↵, lines run on)")->capture_default_str();
    app.add_flag("--no-crop", no_crop, "keep full page width / last-page height");
    app.add_option("--lookback", options.page_break_lookback_lines,
                   "lines a page may end early to end at a paragraph / sentence")->capture_default_str();
    app.add_option("--tile-size", vision.tile_size, "vision tile side (pixels)")->capture_default_str();
    app.add_option("--tokens-per-tile", vision.tokens_per_tile, "VLM tokens per tile")->capture_default_str();
    app.add_option("--max-edge", vision.max_long_edge, "processor's longest-edge resize")->capture_default_str();
  }

  // Applies the string flags; returns an error message or "".
  std::string Finish() {
    options.margin_right_pt = options.margin_top_pt = options.margin_bottom_pt = options.margin_left_pt;
    if (no_crop) options.auto_crop_width = options.auto_crop_last_page = false;
    if (align == "left") options.align = render::Align::kLeft;
    else if (align == "justify") options.align = render::Align::kJustify;
    else if (align == "center") options.align = render::Align::kCenter;
    else if (align == "right") options.align = render::Align::kRight;
    else return "--align must be left, justify, center or right, got '" + align + "'";
    if (newline == "break") options.newline = render::NewlineMode::kBreak;
    else if (newline == "marker") options.newline = render::NewlineMode::kMarker;
    else return "--newline must be break or marker, got '" + newline + "'";
    if (page == "a4" || page == "A4") {
      options.page_width_pt = render::kA4.width, options.page_height_pt = render::kA4.height;
    } else if (page == "letter") {
      options.page_width_pt = render::kLetter.width, options.page_height_pt = render::kLetter.height;
    } else {
      double w = 0, h = 0;
      char x = 0;
      const int n = std::sscanf(page.c_str(), "%lf%c%lf", &w, &x, &h);
      if (n == 1 && w > 0) {
        options.page_width_pt = w, options.page_height_pt = 0;
      } else if (n == 3 && (x == 'x' || x == 'X') && w > 0 && h > 0) {
        options.page_width_pt = w, options.page_height_pt = h;
      } else {
        return "--page must be a4, letter, WxH or W (points), got '" + page + "'";
      }
    }
    return "";
  }
};

}  // namespace vlserve::app
