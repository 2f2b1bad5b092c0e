#include "render/presets.h"

#include <fmt/format.h>

namespace vlserve::render {

RenderOptions GlyphPreset() {
  RenderOptions o;
  o.page_width_pt = kA4.width;
  o.page_height_pt = kA4.height;
  o.dpi = 72;
  o.font_size_pt = 9;
  o.line_height_pt = 10;
  o.horizontal_scale = 1.0;
  o.margin_left_pt = o.margin_right_pt = o.margin_top_pt = o.margin_bottom_pt = 10;
  o.align = Align::kLeft;
  o.first_line_indent_pt = 0;
  o.paragraph_spacing_pt = 0;
  o.newline = NewlineMode::kBreak;
  o.foreground = {0, 0, 0};
  o.background = {255, 255, 255};
  o.auto_crop_width = true;
  o.auto_crop_last_page = true;
  return o;
}

StatusOr<RenderOptions> RenderPreset(std::string_view name) {
  if (name == "glyph") return GlyphPreset();
  if (name == "glyph-96dpi") {
    RenderOptions o = GlyphPreset();
    o.dpi = 96;
    return o;
  }
  return InvalidArgumentError(
      fmt::format("render preset '{}' is not known; presets: {}", name, RenderPresetList()));
}

std::string RenderPresetList() { return "glyph, glyph-96dpi"; }

}  // namespace vlserve::render
