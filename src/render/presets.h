// Named render configurations. "glyph" is thu-coai/Glyph's published post-training setting
// (config/config_en.json in github.com/thu-coai/Glyph, read December 2026):
//   page-size "595,842" (A4 in points), dpi 72, margin-x = margin-y = 10, font-size 9,
//   line-height 10, font Verdana.ttf (config_zh.json: SourceHanSansHWSC-VF.ttf), colour
//   #000000 on #FFFFFF, alignment LEFT, horizontal-scale 1.0, indents and paragraph
//   spacing 0, newline-markup "<br/>" (a real line break), auto-crop-width and
//   auto-crop-last-page true.
// The preset fixes geometry and style; the font files stay the caller's choice (Verdana is
// not free: DejaVu Sans, its free relative, is the default; pass Glyph's file with --font).
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "render/options.h"

namespace vlserve::render {

// Glyph's configuration, with font_path / cjk_font_path left empty (= the default search).
RenderOptions GlyphPreset();

// "glyph" (above), "glyph-96dpi" (the same at 96 dpi, which Glyph's README reports reads
// better at 2-3x compression instead of 3-4x). InvalidArgument naming the presets for
// anything else.
StatusOr<RenderOptions> RenderPreset(std::string_view name);
std::string RenderPresetList();  // "glyph, glyph-96dpi"

}  // namespace vlserve::render
