// Command-line flags shared by `vlserve render` and `vlserve bench-render`: every
// RenderOptions / VisionConfig field that a user may want to change, with its default.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <string>

#include "render/options.h"
#include "render/presets.h"
#include "render/vision_tokens.h"

namespace vlserve::app {

struct RenderFlags {
  std::string preset;  // render/presets.h; flags given on the command line override it
  render::RenderOptions options;
  render::VisionConfig vision;
  std::string page = "a4";  // a4 | letter | WxH (points) | W (points, automatic height)
  std::string align = "left";
  std::string newline = "break";
  bool no_crop = false;

  void Add(CLI::App& app) {
    app_ = &app;
    app.add_option("--render-preset", preset,
                   "named configuration: glyph (Glyph's published one: A4, 72 dpi, 9 pt on 10 pt "
                   "lines, 10 pt margins, width auto-crop; = the defaults) or glyph-96dpi");
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
    if (!preset.empty() && !ApplyPreset()) {
      return "--render-preset must be one of " + render::RenderPresetList() + ", got '" +
             preset + "'";
    }
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

 private:
  // The preset replaces every value its flag did not set on the command line.
  bool ApplyPreset() {
    auto named = render::RenderPreset(preset);
    if (!named.ok()) return false;
    const render::RenderOptions& p = *named;
    auto given = [this](const char* flag) { return app_ != nullptr && app_->count(flag) > 0; };
    if (!given("--page")) {
      page = p.page_height_pt > 0 ? fmt::format("{}x{}", p.page_width_pt, p.page_height_pt)
                                  : fmt::format("{}", p.page_width_pt);
    }
    if (!given("--dpi")) options.dpi = p.dpi;
    if (!given("--font-size")) options.font_size_pt = p.font_size_pt;
    if (!given("--line-height")) options.line_height_pt = p.line_height_pt;
    if (!given("--hscale")) options.horizontal_scale = p.horizontal_scale;
    if (!given("--margin")) options.margin_left_pt = p.margin_left_pt;
    if (!given("--indent")) options.first_line_indent_pt = p.first_line_indent_pt;
    if (!given("--para-spacing")) options.paragraph_spacing_pt = p.paragraph_spacing_pt;
    if (!given("--tab-size")) options.tab_size = p.tab_size;
    if (!given("--lookback")) options.page_break_lookback_lines = p.page_break_lookback_lines;
    if (!given("--align")) {
      align = p.align == render::Align::kJustify  ? "justify"
              : p.align == render::Align::kCenter ? "center"
              : p.align == render::Align::kRight  ? "right"
                                                  : "left";
    }
    if (!given("--newline")) {
      newline = p.newline == render::NewlineMode::kMarker ? "marker" : "break";
    }
    if (!given("--no-crop")) no_crop = !p.auto_crop_width;
    options.auto_crop_last_page = p.auto_crop_last_page;
    options.foreground = p.foreground;
    options.background = p.background;
    return true;
  }

  CLI::App* app_ = nullptr;
};

}  // namespace vlserve::app
