// Images and Glyph documents of a chat request -> what the engine needs to put them into
// the prompt: per image (or rendered page) its family layout and either cached embeddings
// or an encode job (preprocessed tiles) that the engine runs in its step loop.
//
// Order of work for one image: fetch bytes -> encoder-cache key (SHA-256 of the bytes +
// preprocessing + tower) -> hit: done, nothing decoded; miss: decode (DCT-scaled JPEG),
// preprocess into tiles. A document is rendered in-process; each page's pixels go straight
// into preprocessing (never through PNG), keyed by the SHA-256 of the page pixels.
// docs/api.md (image_url, document parts) and docs/caching.md describe the behaviour.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "cache/encoder_cache.h"
#include "engine/request.h"
#include "media/image.h"
#include "models/family.h"
#include "models/vision_model.h"
#include "render/renderer.h"
#include "render/renderer_cache.h"
#include "server/media_input.h"

namespace vlserve::server {

// The served vision tower and what identifies its outputs.
struct VisionContext {
  std::shared_ptr<const models::VisionModel> model;
  std::shared_ptr<EncoderCache> cache;  // null = no encoder cache
  std::string preprocess_id;            // every parameter that changes the tiles
  std::string mmproj_id;                // identity of the tower (file name, size, mtime)
  std::shared_ptr<const render::Renderer> renderer;  // default document renderer
  // Renderers for requests' own render options (null: made per request).
  std::shared_ptr<render::RendererCache> renderers;
  int max_document_pages = 16;
};

// The renderer for a request's render options: vision.renderer when they are its options,
// else one from vision.renderers (or a new one).
StatusOr<std::shared_ptr<const render::Renderer>> RendererFor(const VisionContext& vision,
                                                              const render::RenderOptions& options);

// Builds preprocess_id / mmproj_id for `model` (loaded from `path`, "" = built in).
std::string PreprocessId(const models::VisionModel& model);
std::string MmprojId(const std::string& path);

// One image or rendered page, ready for the prompt.
struct PreparedImage {
  models::ImageLayout layout;
  std::string cache_key;
  std::shared_ptr<const std::vector<float>> embeddings;  // encoder-cache hit
  std::shared_ptr<engine::EncodeJob> job;                // miss: the engine encodes it
};

// Stage times (ms) and counts, added up over a request's media.
struct VisionTimings {
  double fetch_ms = 0, decode_ms = 0, render_ms = 0, preprocess_ms = 0;
  int images = 0, cached = 0;
  int decoded = 0, documents = 0, preprocessed = 0;  // which stages ran at all
};

// An image_url part. Errors: InvalidArgument (bad URL / data), OutOfRange (too large),
// InvalidArgument also for file:// outside --media-dir and hosts not allowed.
// `limits`: the request's image_min_tokens / image_max_tokens (0 = the server's).
// `cache_salt`: the request's cache partition, part of the encoder-cache key ("" = the
// shared default partition).
StatusOr<PreparedImage> PrepareImageUrl(std::string_view url, const VisionContext& vision,
                                        const MediaConfig& media, VisionTimings* timings,
                                        const models::ImageTokenLimits& limits = {},
                                        std::string_view cache_salt = {});

// A document part: `text` rendered with the default options changed by `render_json`
// (a JSON object, "" = defaults; docs/api.md lists the fields). One PreparedImage per
// page, in order. InvalidArgument for bad options, empty text or too many pages.
StatusOr<std::vector<PreparedImage>> PrepareDocument(std::string_view text,
                                                     std::string_view render_json,
                                                     const VisionContext& vision,
                                                     VisionTimings* timings,
                                                     const models::ImageTokenLimits& limits = {},
                                                     std::string_view cache_salt = {});

// A copy of a rendered RGB8 page as a media::Image (the input of preprocessing and of
// the JPEG previews of POST /v1/render).
media::Image PageImage(const render::ImageView& view);

// The render options of a document part's "render" object (exposed for tests).
StatusOr<render::RenderOptions> ParseRenderOptions(std::string_view render_json,
                                                   const render::RenderOptions& defaults);

}  // namespace vlserve::server
