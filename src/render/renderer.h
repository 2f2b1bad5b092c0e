// The renderer's public API: text -> page images, in-process, into caller buffers.
//
//   ASSIGN_OR_RETURN(auto renderer, render::Renderer::Create(options));
//   ASSIGN_OR_RETURN(auto doc, renderer->Open(utf8_text));
//   render::PageLayout page;
//   while (doc->Next(&page)) renderer->Rasterize(page, view_into_preprocess_buffer);
//
// A Renderer is immutable after Create (its glyph caches are internally synchronised), so
// one instance serves concurrent requests; each Document belongs to one thread. Memory
// per document is the decoded text (4 bytes per character) plus one page of layout;
// there is never a whole-document bitmap.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/thread_pool.h"
#include "render/font.h"
#include "render/options.h"
#include "render/paginator.h"
#include "render/raster.h"
#include "render/text.h"

namespace vlserve::render {

struct TextStats {
  int64_t chars = 0;          // code points after UTF-8 decoding
  int64_t invalid_bytes = 0;  // replaced by U+FFFD
  int64_t cjk_chars = 0;
};

class Document {
 public:
  // Lays out the next page; false when the text is exhausted (an empty or white-space-only
  // text has no pages).
  bool Next(PageLayout* page) { return paginator_->Next(page); }
  const TextStats& stats() const { return stats_; }
  int64_t shaped_words() const { return paginator_->breaker().shaped_words(); }
  int64_t shape_cache_hits() const { return paginator_->breaker().cache_hits(); }
  int64_t shaped_chars() const { return paginator_->breaker().shaped_chars(); }

 private:
  friend class Renderer;
  Document() = default;
  DecodedText text_;
  TextStats stats_;
  std::unique_ptr<Paginator> paginator_;
};

struct RenderSummary {
  int pages = 0;
  TextStats text;
  double seconds = 0;
};

class Renderer {
 public:
  // Validates the options and opens the fonts. Errors: InvalidArgument for impossible
  // geometry (e.g. a page too small for one line), NotFound for missing fonts.
  static StatusOr<std::unique_ptr<Renderer>> Create(const RenderOptions& options);

  const RenderOptions& options() const { return options_; }
  const PageGeometry& geometry() const { return geometry_; }
  const FontSet& fonts() const { return fonts_; }
  // The largest page this configuration produces; size buffers with it.
  int max_page_width() const { return geometry_.page_width_px; }
  int max_page_height() const;

  // Decodes (invalid UTF-8 is replaced and counted, never an error) and starts paginating.
  std::unique_ptr<Document> Open(std::string_view utf8) const;

  void Rasterize(const PageLayout& page, const ImageView& out) const {
    RasterizePage(page, options_.foreground, options_.background, out);
  }

  // Convenience: every page of `utf8`, laid out on this thread and rasterised in
  // parallel batches on `pool` (null = this thread only). `sink` is called on this
  // thread in page order; the image is only valid during the call. A sink error stops
  // rendering and is returned.
  using PageSink = std::function<Status(const PageLayout& page, const ImageView& image)>;
  Status RenderAll(std::string_view utf8, PixelFormat format, ThreadPool* pool,
                   const PageSink& sink, RenderSummary* summary = nullptr) const;

 private:
  Renderer() = default;
  RenderOptions options_;
  PageGeometry geometry_;
  mutable FontSet fonts_;  // glyph caches fill lazily behind their own locks
};

}  // namespace vlserve::render
