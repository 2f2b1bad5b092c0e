#include "server/vision_input.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <span>

#include "base/clock.h"
#include "media/buffer_pool.h"
#include "media/preprocess.h"

namespace vlserve::server {
namespace {

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
                                        const models::ImageTokenLimits& limits,
                                        std::string_view cache_salt) {
  Stopwatch fetch;
  ASSIGN_OR_RETURN(std::string bytes, FetchImageBytes(url, media));
  if (bytes.size() > media.max_image_bytes) {
    return OutOfRangeError(fmt::format("image is {} bytes; the limit is {}", bytes.size(),
                                       media.max_image_bytes));
  }
  timings->fetch_ms += fetch.ElapsedMs();
  PreparedImage out;
  const std::string key = EncoderCacheKey(Bytes(bytes), PreprocessKey(vision, limits),
                                          vision.mmproj_id, cache_salt);
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

StatusOr<std::shared_ptr<const render::Renderer>> RendererFor(const VisionContext& vision,
                                                              const render::RenderOptions& options) {
  if (vision.renderers != nullptr) return vision.renderers->Get(options);
  if (vision.renderer != nullptr && vision.renderer->options() == options) return vision.renderer;
  ASSIGN_OR_RETURN(std::unique_ptr<render::Renderer> made, render::Renderer::Create(options));
  return std::shared_ptr<const render::Renderer>(std::move(made));
}

media::Image PageImage(const render::ImageView& view) {
  media::Image image = media::MakeImage(view.width, view.height);
  for (int y = 0; y < view.height; ++y) {
    std::memcpy(image.Row(y), view.data + y * view.stride, image.RowBytes());
  }
  return image;
}

StatusOr<std::vector<PreparedImage>> PrepareDocument(std::string_view text,
                                                     std::string_view render_json,
                                                     const VisionContext& vision,
                                                     VisionTimings* timings,
                                                     const models::ImageTokenLimits& limits,
                                                     std::string_view cache_salt) {
  if (vision.renderer == nullptr) {
    return FailedPreconditionError("document rendering is not available (no fonts loaded)");
  }
  Stopwatch render_watch;
  ++timings->documents;
  std::shared_ptr<const render::Renderer> renderer = vision.renderer;
  if (!render_json.empty()) {
    ASSIGN_OR_RETURN(render::RenderOptions options,
                     ParseRenderOptions(render_json, vision.renderer->options()));
    ASSIGN_OR_RETURN(renderer, RendererFor(vision, options));
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
        EncoderKeyBuilder key(cache_salt);
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
