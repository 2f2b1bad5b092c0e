#include "server/vision_input.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <span>

#include "base/clock.h"
#include "media/buffer_pool.h"
#include "media/preprocess.h"
#include "render/presets.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Per worker thread: preprocessing buffers are reused across requests.
media::BufferPool& ThreadBufferPool() {
  static thread_local media::BufferPool pool(4);
  return pool;
}
media::PreprocessScratch& ThreadScratch() {
  static thread_local media::PreprocessScratch scratch;
  return scratch;
}

// Looks the key up; on a hit fills `out` (tiling + embeddings) and counts it.
bool TryCache(const VisionContext& vision, const std::string& key, PreparedImage* out,
              VisionTimings* timings) {
  out->cache_key = key;
  ++timings->images;
  if (vision.cache == nullptr) return false;
  std::optional<EncoderOutput> hit = vision.cache->Lookup(key);
  if (!hit) return false;
  out->layout = hit->layout;
  out->embeddings = hit->embeddings;
  ++timings->cached;
  return true;
}

// Plans the family's layout for a decoded image and preprocesses it into an encode job.
Status MakeJob(const VisionContext& vision, const media::Image& image,
               const models::ImageTokenLimits& limits, PreparedImage* out,
               VisionTimings* timings) {
  Stopwatch watch;
  ASSIGN_OR_RETURN(models::ImageLayout layout,
                   vision.model->Plan(image.width, image.height, limits));
  media::PixelTiles tiles =
      vision.model->Preprocess(layout, image, &ThreadBufferPool(), &ThreadScratch());
  auto job = std::make_shared<engine::EncodeJob>();
  job->cache_key = out->cache_key;
  job->layout = layout;
  job->tiles.assign(tiles.Tile(0), tiles.Tile(0) + layout.num_tiles * layout.tile_floats());
  out->layout = layout;
  out->job = std::move(job);
  timings->preprocess_ms += watch.ElapsedMs();
  ++timings->preprocessed;
  return OkStatus();
}

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

std::string PreprocessId(const models::VisionModel& model) {
  const models::VisionConfig& c = model.config();
  const models::ImageTokenLimits& limits = model.default_limits();
  return fmt::format(
      "{} tile={} longest_edge={} decode_hint={} pixels={}..{} tokens={}..{} mean={},{},{} "
      "std={},{},{}",
      c.projector_type, c.image_size, c.preproc_image_size, model.DecodeHint(), c.min_pixels,
      c.max_pixels, limits.min_tokens, limits.max_tokens, c.image_mean[0], c.image_mean[1],
      c.image_mean[2], c.image_std[0], c.image_std[1], c.image_std[2]);
}

std::string MmprojId(const std::string& path) {
  if (path.empty()) return "builtin-test-mmproj";
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const auto mtime = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
  return fmt::format("{} size={} mtime={}", std::filesystem::absolute(path).string(),
                     ec ? 0 : size, ec ? 0 : mtime);
}

// The request's token limits change the layout: part of every cache key.
std::string PreprocessKey(const VisionContext& vision, const models::ImageTokenLimits& l) {
  if (l.min_tokens == 0 && l.max_tokens == 0) return vision.preprocess_id;
  return fmt::format("{} request_tokens={}..{}", vision.preprocess_id, l.min_tokens,
                     l.max_tokens);
}

StatusOr<PreparedImage> PrepareImageUrl(std::string_view url, const VisionContext& vision,
                                        const MediaConfig& media, VisionTimings* timings,
                                        const models::ImageTokenLimits& limits) {
  Stopwatch fetch;
  ASSIGN_OR_RETURN(std::string bytes, FetchImageBytes(url, media));
  if (bytes.size() > media.max_image_bytes) {
    return OutOfRangeError(fmt::format("image is {} bytes; the limit is {}", bytes.size(),
                                       media.max_image_bytes));
  }
  timings->fetch_ms += fetch.ElapsedMs();
  PreparedImage out;
  const std::string key =
      EncoderCacheKey(Bytes(bytes), PreprocessKey(vision, limits), vision.mmproj_id);
  if (TryCache(vision, key, &out, timings)) return out;

  Stopwatch decode;
  media::DecodeOptions options;
  options.max_pixels = media.max_image_pixels;
  options.max_bytes = media.max_image_bytes;
  options.target_long_edge = vision.model->DecodeHint();
  auto image = media::Decode(Bytes(bytes), options);
  timings->decode_ms += decode.ElapsedMs();
  ++timings->decoded;
  if (!image.ok()) return image.status().WithContext("image");
  RETURN_IF_ERROR(MakeJob(vision, *image, limits, &out, timings));
  return out;
}

media::Image PageImage(const render::ImageView& view) {
  media::Image image = media::MakeImage(view.width, view.height);
  for (int y = 0; y < view.height; ++y) {
    std::memcpy(image.Row(y), view.data + y * view.stride, image.RowBytes());
  }
  return image;
}

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
      "auto_crop",   "preset"};
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

StatusOr<std::vector<PreparedImage>> PrepareDocument(std::string_view text,
                                                     std::string_view render_json,
                                                     const VisionContext& vision,
                                                     VisionTimings* timings,
                                                     const models::ImageTokenLimits& limits) {
  if (vision.renderer == nullptr) {
    return FailedPreconditionError("document rendering is not available (no fonts loaded)");
  }
  Stopwatch render_watch;
  ++timings->documents;
  std::shared_ptr<const render::Renderer> renderer = vision.renderer;
  if (!render_json.empty()) {
    ASSIGN_OR_RETURN(render::RenderOptions options,
                     ParseRenderOptions(render_json, vision.renderer->options()));
    ASSIGN_OR_RETURN(auto custom, render::Renderer::Create(options));
    renderer = std::move(custom);
  }
  std::vector<PreparedImage> pages;
  double preprocess_before = timings->preprocess_ms;
  Status s = renderer->RenderAll(
      text, render::PixelFormat::kRgb8, nullptr,
      [&](const render::PageLayout& layout, const render::ImageView& view) -> Status {
        if (static_cast<int>(pages.size()) >= vision.max_document_pages) {
          return InvalidArgumentError(fmt::format(
              "the document renders to more than {} pages; send less text or raise "
              "--max-document-pages",
              vision.max_document_pages));
        }
        (void)layout;
        // The key covers the exact pixels the tower will see (and their shape).
        EncoderKeyBuilder key;
        key.Update(fmt::format("page {}x{}\n", view.width, view.height));
        for (int y = 0; y < view.height; ++y) {
          key.Update(std::span<const uint8_t>(view.data + y * view.stride,
                                              static_cast<size_t>(view.width) * 3));
        }
        PreparedImage page;
        if (TryCache(vision, key.Finish(PreprocessKey(vision, limits), vision.mmproj_id), &page,
                     timings)) {
          pages.push_back(std::move(page));
          return OkStatus();
        }
        RETURN_IF_ERROR(MakeJob(vision, PageImage(view), limits, &page, timings));
        pages.push_back(std::move(page));
        return OkStatus();
      });
  RETURN_IF_ERROR(s);
  if (pages.empty()) {
    return InvalidArgumentError("the document text is empty (nothing to render)");
  }
  // Rendering time excludes the preprocessing done inside the page callback.
  timings->render_ms += render_watch.ElapsedMs() - (timings->preprocess_ms - preprocess_before);
  return pages;
}

}  // namespace vlserve::server
