// libFuzzer target for documents (a chat request's `document` part, POST /v1/render): the
// `render` options object (ParseRenderOptions, src/server/render_options.cc) and then
// laying out and rasterising a short text of arbitrary bytes (invalid UTF-8, control
// characters, tabs, CJK) with those options (src/render/).
// Input: the render JSON, a NUL byte, the text; without a NUL the whole input is the text
// and the options are the defaults. At most 4 pages are laid out and the first is
// rasterised when it has at most 4 M pixels, so one input stays in milliseconds.
// Properties: refused options are InvalidArgument with a message; accepted ones are within
// the documented bounds and either make a renderer or are refused by Renderer::Create
// with InvalidArgument; pages fit the renderer's maximum page size and cover the text's
// characters in order. Without fonts installed only the option parser runs.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "base/check.h"
#include "base/log.h"
#include "render/renderer.h"
#include "server/vision_input.h"

namespace {

namespace render = vlserve::render;
using vlserve::StatusCode;

constexpr size_t kMaxTextBytes = 4096;
constexpr int kMaxPages = 4;
constexpr int64_t kMaxRasterPixels = 4 << 20;

void CheckRefusal(const vlserve::Status& s) {
  CHECK(s.code() == StatusCode::kInvalidArgument) << s.ToString();
  CHECK(!s.message().empty());
}

// The server's default renderer, made once (opening fonts costs more than a small page).
const render::Renderer* DefaultRenderer() {
  static const std::unique_ptr<render::Renderer> renderer = [] {
    vlserve::SetLogLevel(vlserve::LogLevel::kError);  // "no CJK font" once per renderer
    auto r = render::Renderer::Create(render::RenderOptions{});
    return r.ok() ? std::move(*r) : nullptr;
  }();
  return renderer.get();
}

// Renderers by options: opening the fonts costs ~50x laying out a small page under ASan, and most inputs change the text, not the options. The key lists the
// fields ParseRenderOptions can set; a field missing here only means a renderer made for
// slightly different options is reused, and every check is relative to the one used.
const render::Renderer* CachedRenderer(const render::RenderOptions& o, vlserve::Status* error) {
  static std::map<std::string, std::unique_ptr<render::Renderer>> cache;
  const std::string key = fmt::format(
      "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}", o.page_width_pt, o.page_height_pt,
      o.dpi, o.font_size_pt, o.line_height_pt, o.margin_left_pt, o.margin_right_pt,
      o.margin_top_pt, o.margin_bottom_pt, static_cast<int>(o.align), o.first_line_indent_pt,
      o.paragraph_spacing_pt, static_cast<int>(o.newline), o.auto_crop_width,
      o.auto_crop_last_page, o.horizontal_scale);
  if (auto it = cache.find(key); it != cache.end()) return it->second.get();
  auto renderer = render::Renderer::Create(o);
  if (!renderer.ok()) {
    *error = renderer.status();
    return nullptr;
  }
  if (cache.size() >= 32) cache.clear();  // each holds fonts and glyph caches
  return cache.emplace(key, std::move(*renderer)).first->second.get();
}

void RenderPages(const render::Renderer& renderer, std::string_view text) {
  std::unique_ptr<render::Document> doc = renderer.Open(text);
  const int64_t chars = doc->stats().chars;
  CHECK(chars <= static_cast<int64_t>(text.size()));
  render::PageLayout page;
  int64_t covered = 0;
  for (int i = 0; i < kMaxPages && doc->Next(&page); ++i) {
    CHECK(page.index == i);
    CHECK(page.width_px > 0 && page.width_px <= renderer.max_page_width()) << page.width_px;
    CHECK(page.height_px > 0 && page.height_px <= renderer.max_page_height()) << page.height_px;
    CHECK(page.char_begin >= covered && page.char_begin <= page.char_end &&
          page.char_end <= chars)
        << page.char_begin << ".." << page.char_end << " of " << chars;
    covered = page.char_end;
    if (i == 0 && int64_t{page.width_px} * page.height_px <= kMaxRasterPixels) {
      const ptrdiff_t stride = static_cast<ptrdiff_t>(page.width_px) * 3;
      std::vector<uint8_t> pixels(static_cast<size_t>(stride) * page.height_px);
      renderer.Rasterize(page, {pixels.data(), page.width_px, page.height_px, stride,
                                render::PixelFormat::kRgb8});
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = nul == std::string_view::npos ? "" : input.substr(0, nul);
  std::string_view text = nul == std::string_view::npos ? input : input.substr(nul + 1);
  if (text.size() > kMaxTextBytes) text = text.substr(0, kMaxTextBytes);

  const render::Renderer* base = DefaultRenderer();
  const render::RenderOptions defaults;
  auto options = vlserve::server::ParseRenderOptions(json, defaults);
  if (!options.ok()) {
    CheckRefusal(options.status());
    return 0;
  }
  const render::RenderOptions& o = *options;
  CHECK(o.dpi >= 36 && o.dpi <= 300) << o.dpi;
  CHECK(o.page_width_pt >= 72 && o.page_width_pt <= 2000) << o.page_width_pt;
  CHECK(o.page_height_pt == 0 || (o.page_height_pt >= 72 && o.page_height_pt <= 4000));
  CHECK(o.font_size_pt >= 4 && o.font_size_pt <= 72 && o.line_height_pt >= 4 &&
        o.line_height_pt <= 144);
  if (base == nullptr) return 0;  // no fonts installed: only the option parser runs
  if (json.empty()) {
    RenderPages(*base, text);
    return 0;
  }
  vlserve::Status error;
  const render::Renderer* renderer = CachedRenderer(o, &error);
  if (renderer == nullptr) {
    CheckRefusal(error);
    return 0;
  }
  RenderPages(*renderer, text);
  return 0;
}
