#include "render/renderer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/aligned.h"
#include "base/clock.h"
#include "fmt/format.h"

namespace vlserve::render {
namespace {

constexpr int kMaxPageSidePx = 16384;
constexpr int64_t kMaxPagePixels = 40'000'000;

// The tallest an auto-height page may grow: max_auto_height_px, or less where a wide page
// would pass kMaxPagePixels.
int MaxAutoHeightPx(const RenderOptions& o) {
  const double width_px = std::max(1.0, o.page_width_pt * o.dpi / 72);
  return static_cast<int>(std::min<double>(o.max_auto_height_px, kMaxPagePixels / width_px));
}

Status ValidateOptions(const RenderOptions& o) {
  if (!(o.dpi >= 10 && o.dpi <= 1200)) {
    return InvalidArgumentError(fmt::format("dpi must be 10..1200, got {}", o.dpi));
  }
  if (!(o.font_size_pt > 0) || !(o.line_height_pt > 0)) {
    return InvalidArgumentError(fmt::format("font size ({} pt) and line height ({} pt) must be > 0",
                                            o.font_size_pt, o.line_height_pt));
  }
  if (!(o.horizontal_scale >= 0.1 && o.horizontal_scale <= 10)) {
    return InvalidArgumentError(
        fmt::format("horizontal scale must be 0.1..10, got {}", o.horizontal_scale));
  }
  // Written as !(x >= 0) so that NaN fails too; infinities fail the width checks below.
  if (!(o.margin_left_pt >= 0) || !(o.margin_right_pt >= 0) || !(o.margin_top_pt >= 0) ||
      !(o.margin_bottom_pt >= 0) || !(o.paragraph_spacing_pt >= 0) ||
      !(o.first_line_indent_pt >= 0)) {
    return InvalidArgumentError("margins, indent and paragraph spacing must be >= 0");
  }
  if (o.tab_size < 1 || o.page_break_lookback_lines < 0 || o.max_auto_height_px < 1) {
    return InvalidArgumentError("tab size and max auto height must be >= 1, lookback >= 0");
  }
  const double content_w = o.page_width_pt - o.margin_left_pt - o.margin_right_pt;
  if (content_w < o.font_size_pt) {
    return InvalidArgumentError(fmt::format(
        "page too narrow: {} pt between the margins is less than one em ({} pt); widen the "
        "page or reduce the margins",
        content_w, o.font_size_pt));
  }
  if (!(o.first_line_indent_pt <= content_w)) {
    return InvalidArgumentError(fmt::format(
        "first-line indent ({} pt) is wider than the {} pt between the margins",
        o.first_line_indent_pt, content_w));
  }
  const double page_h = o.page_height_pt > 0 ? o.page_height_pt : MaxAutoHeightPx(o) * 72 / o.dpi;
  if (!(o.paragraph_spacing_pt <= page_h)) {
    return InvalidArgumentError(fmt::format(
        "paragraph spacing ({} pt) is taller than the page ({} pt)", o.paragraph_spacing_pt,
        page_h));
  }
  const double content_h = page_h - o.margin_top_pt - o.margin_bottom_pt;
  if (content_h + 1e-9 < o.line_height_pt) {
    return InvalidArgumentError(fmt::format(
        "page too small for one line: {} pt between the top and bottom margins is less than "
        "the line height ({} pt); use a taller page, smaller margins or a smaller line height",
        content_h, o.line_height_pt));
  }
  const double scale = o.dpi / 72;
  if (o.page_width_pt * scale > kMaxPageSidePx || o.page_height_pt * scale > kMaxPageSidePx) {
    return InvalidArgumentError(fmt::format("page larger than {} pixels a side at {} dpi",
                                            kMaxPageSidePx, o.dpi));
  }
  // Each side may be fine and the page still huge (3900 pt at 300 dpi is 16,250 px square,
  // 264 MB of grey): the same 40-megapixel bound as a decoded image (media/image.h). An
  // auto-height page is cut shorter instead (MaxAutoHeightPx).
  const double width_px = o.page_width_pt * scale;
  const double height_px = o.page_height_pt * scale;
  if (o.page_height_pt > 0 && width_px * height_px > kMaxPagePixels) {
    return InvalidArgumentError(fmt::format(
        "page of {:.0f} x {:.0f} pixels is over {} megapixels; lower the dpi or the page size",
        width_px, height_px, kMaxPagePixels / 1'000'000));
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Renderer>> Renderer::Create(const RenderOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  std::unique_ptr<Renderer> r(new Renderer());
  r->options_ = options;
  r->options_.max_auto_height_px = MaxAutoHeightPx(options);
  const double s = options.dpi / 72;
  ASSIGN_OR_RETURN(r->fonts_, OpenFontSet(options.font_path, options.cjk_font_path,
                                          options.font_size_pt * s, options.horizontal_scale));
  PageGeometry& g = r->geometry_;
  g.page_width_px = static_cast<int>(std::lround(options.page_width_pt * s));
  g.page_height_px =
      options.page_height_pt > 0 ? static_cast<int>(std::lround(options.page_height_pt * s)) : 0;
  g.margin_left = options.margin_left_pt * s;
  g.margin_right = options.margin_right_pt * s;
  g.margin_top = options.margin_top_pt * s;
  g.margin_bottom = options.margin_bottom_pt * s;
  g.line_height = options.line_height_pt * s;
  g.paragraph_spacing = options.paragraph_spacing_pt * s;
  const Face& face = *r->fonts_.primary;
  g.baseline_offset = (g.line_height + face.ascent_px() - face.descent_px()) / 2;
  g.metrics.content_width =
      static_cast<int32_t>(std::floor((g.page_width_px - g.margin_left - g.margin_right) * 64));
  g.metrics.first_line_indent =
      static_cast<int32_t>(std::lround(options.first_line_indent_pt * s * 64));
  const int32_t space = face.Advance(face.NominalGlyph(' '));
  g.metrics.tab_stop = std::max(64, space * options.tab_size);
  return r;
}

int Renderer::max_page_height() const {
  return geometry_.page_height_px ? geometry_.page_height_px : options_.max_auto_height_px;
}

std::unique_ptr<Document> Renderer::Open(std::string_view utf8) const {
  std::unique_ptr<Document> doc(new Document());
  doc->text_ = DecodeUtf8(utf8);
  doc->stats_.chars = static_cast<int64_t>(doc->text_.chars.size());
  doc->stats_.invalid_bytes = doc->text_.invalid_bytes;
  for (char32_t c : doc->text_.chars) doc->stats_.cjk_chars += c >= 0x2E80 && IsCjkBreakable(c);
  doc->paginator_ = std::make_unique<Paginator>(&fonts_, options_, geometry_, doc->text_.chars);
  return doc;
}

Status Renderer::RenderAll(std::string_view utf8, PixelFormat format, ThreadPool* pool,
                           const PageSink& sink, RenderSummary* summary) const {
  Stopwatch timer;
  std::unique_ptr<Document> doc = Open(utf8);
  const int threads = pool ? pool->num_threads() : 1;
  const int batch = threads > 1 ? 4 * threads : 1;
  const int bpp = format == PixelFormat::kGrey8 ? 1 : 3;
  const ptrdiff_t stride = static_cast<ptrdiff_t>(max_page_width()) * bpp;
  const size_t page_bytes = static_cast<size_t>(stride) * max_page_height();
  AlignedBuffer<uint8_t> pixels(page_bytes * batch);
  std::vector<PageLayout> pages(batch);
  int total = 0;
  for (bool more = true; more;) {
    int n = 0;
    while (n < batch && (more = doc->Next(&pages[n]))) ++n;
    auto view = [&](int i) {
      return ImageView{pixels.data() + page_bytes * i, pages[i].width_px, pages[i].height_px,
                       stride, format};
    };
    if (pool && n > 1) {
      pool->ParallelFor(n, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) Rasterize(pages[i], view(static_cast<int>(i)));
      });
    } else {
      for (int i = 0; i < n; ++i) Rasterize(pages[i], view(i));
    }
    for (int i = 0; i < n; ++i) RETURN_IF_ERROR(sink(pages[i], view(i)));
    total += n;
  }
  if (summary) {
    summary->pages = total;
    summary->text = doc->stats();
    summary->seconds = timer.ElapsedSeconds();
  }
  return OkStatus();
}

}  // namespace vlserve::render
