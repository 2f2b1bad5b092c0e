// ParseRenderOptions (declared in vision_input.h): a document part's "render" object ->
// RenderOptions. In its own file so the render-options fuzzer (tests/fuzz) can build it
// without the vision stack that the rest of vision_input.cc needs.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <utility>

#include "render/presets.h"
#include "server/vision_input.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;

Status ReadNumber(const json::object& o, const char* key, double* out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return OkStatus();
  if (!v->is_number()) {
    return InvalidArgumentError(fmt::format("document render.{} must be a number", key));
  }
  *out = v->to_number<double>();
  return OkStatus();
}

Status ReadString(const json::object& o, const char* key, std::string* out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return OkStatus();
  if (!v->is_string()) {
    return InvalidArgumentError(fmt::format("document render.{} must be a string", key));
  }
  *out = std::string(v->as_string());
  return OkStatus();
}

}  // namespace

StatusOr<render::RenderOptions> ParseRenderOptions(std::string_view render_json,
                                                   const render::RenderOptions& defaults) {
  render::RenderOptions o = defaults;
  if (render_json.empty()) return o;
  boost::system::error_code ec;
  json::value v = json::parse(render_json, ec);
  if (ec || !v.is_object()) {
    return InvalidArgumentError("document render must be a JSON object");
  }
  const json::object& r = v.as_object();
  static constexpr const char* kKnown[] = {
      "page",        "page_width",  "page_height", "dpi",    "font_size", "line_height",
      "margin",      "align",       "newline",     "indent", "paragraph_spacing",
      "auto_crop",   "auto_crop_width", "auto_crop_last_page", "preset"};
  for (const auto& kv : r) {
    bool known = false;
    for (const char* k : kKnown) known = known || kv.key() == k;
    if (!known) {
      return InvalidArgumentError(fmt::format(
          "document render.{} is not a render option (see docs/api.md)", std::string(kv.key())));
    }
  }
  std::string preset, page, align, newline;
  // A preset replaces the server's geometry and style (not its font files, which a request
  // cannot name); the other fields then adjust it.
  RETURN_IF_ERROR(ReadString(r, "preset", &preset));
  if (!preset.empty()) {
    auto named = render::RenderPreset(preset);
    if (!named.ok()) return named.status().WithContext("document render.preset");
    named->font_path = defaults.font_path;
    named->cjk_font_path = defaults.cjk_font_path;
    o = *named;
  }
  RETURN_IF_ERROR(ReadString(r, "page", &page));
  if (page == "A4" || page == "a4") {
    o.page_width_pt = render::kA4.width, o.page_height_pt = render::kA4.height;
  } else if (page == "Letter" || page == "letter") {
    o.page_width_pt = render::kLetter.width, o.page_height_pt = render::kLetter.height;
  } else if (page == "auto") {
    o.page_height_pt = 0;
  } else if (!page.empty()) {
    return InvalidArgumentError("document render.page must be \"A4\", \"Letter\" or \"auto\"");
  }
  double margin = -1;
  RETURN_IF_ERROR(ReadNumber(r, "page_width", &o.page_width_pt));
  RETURN_IF_ERROR(ReadNumber(r, "page_height", &o.page_height_pt));
  RETURN_IF_ERROR(ReadNumber(r, "dpi", &o.dpi));
  RETURN_IF_ERROR(ReadNumber(r, "font_size", &o.font_size_pt));
  RETURN_IF_ERROR(ReadNumber(r, "line_height", &o.line_height_pt));
  RETURN_IF_ERROR(ReadNumber(r, "margin", &margin));
  RETURN_IF_ERROR(ReadNumber(r, "indent", &o.first_line_indent_pt));
  RETURN_IF_ERROR(ReadNumber(r, "paragraph_spacing", &o.paragraph_spacing_pt));
  if (margin >= 0) {
    o.margin_left_pt = o.margin_right_pt = o.margin_top_pt = o.margin_bottom_pt = margin;
  }
  RETURN_IF_ERROR(ReadString(r, "align", &align));
  if (align == "justify") o.align = render::Align::kJustify;
  else if (align == "center") o.align = render::Align::kCenter;
  else if (align == "right") o.align = render::Align::kRight;
  else if (align == "left") o.align = render::Align::kLeft;
  else if (!align.empty()) {
    return InvalidArgumentError("document render.align must be left, justify, center or right");
  }
  RETURN_IF_ERROR(ReadString(r, "newline", &newline));
  if (newline == "marker") o.newline = render::NewlineMode::kMarker;
  else if (newline == "break") o.newline = render::NewlineMode::kBreak;
  else if (!newline.empty()) {
    return InvalidArgumentError("document render.newline must be \"break\" or \"marker\"");
  }
  if (const json::value* crop = r.if_contains("auto_crop")) {
    if (!crop->is_bool()) return InvalidArgumentError("document render.auto_crop must be a bool");
    o.auto_crop_width = o.auto_crop_last_page = crop->as_bool();
  }
  // Glyph's configuration has the two separately (auto-crop-width, auto-crop-last-page).
  for (const auto& [key, field] : {std::pair{"auto_crop_width", &o.auto_crop_width},
                                   std::pair{"auto_crop_last_page", &o.auto_crop_last_page}}) {
    if (const json::value* crop = r.if_contains(key)) {
      if (!crop->is_bool()) {
        return InvalidArgumentError(fmt::format("document render.{} must be a bool", key));
      }
      *field = crop->as_bool();
    }
  }
  // Bounds that keep one request's pages reasonable (a page is at most 8192 px tall).
  if (!(o.dpi >= 36 && o.dpi <= 300)) {
    return InvalidArgumentError("document render.dpi must be in [36, 300]");
  }
  if (!(o.page_width_pt >= 72 && o.page_width_pt <= 2000) ||
      !(o.page_height_pt == 0 || (o.page_height_pt >= 72 && o.page_height_pt <= 4000))) {
    return InvalidArgumentError(
        "document render page size must be 72..2000 pt wide and 72..4000 pt tall (0 = auto)");
  }
  if (!(o.font_size_pt >= 4 && o.font_size_pt <= 72) ||
      !(o.line_height_pt >= 4 && o.line_height_pt <= 144)) {
    return InvalidArgumentError("document render.font_size must be 4..72 pt, line_height 4..144");
  }
  return o;
}

}  // namespace vlserve::server
