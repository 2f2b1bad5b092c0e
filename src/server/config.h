// Configuration of `vlserve serve`: one struct, each field declared once with its default,
// and ForEachServeFlag(), the single table from which the CLI flags are generated (apps/
// cmd_serve.cc feeds it to CLI11; docs/serve.md mirrors it). Flag names follow llama-server.
#pragma once

#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/http_server.h"
#include "server/media_input.h"

namespace vlserve::server {

struct ServerConfig {
  std::string model_path;    // "" = the built-in tiny test model (noise answers)
  std::string mmproj_path;   // vision tower ("" with no -m = the built-in tiny tower)
  std::string vision_compute = "f32";  // f32 | bf16 (models::ParseVisionComputeType)
  std::string kv_type = "f16";         // f16 | bf16 | f32 (models::ParseKvType)
  std::string chat_template; // "" = recognise from the GGUF
  std::string alias;         // the model id clients see ("" = the GGUF's general.name)
  std::string api_key;       // "" = no authentication; several keys: comma-separated
  std::string cache_isolation = "none";  // none | api-key (server/cache_isolation.h)
  std::string trace_file;
  std::string log_format = "text";  // text | json (base/log.h)
  std::string default_model_dir;  // where the built-in model is cached ("" = in memory)
  HttpConfig http;
  double max_body_mb = 64;
  int read_timeout_s = 60;
  int write_timeout_s = 60;
  MediaConfig media;
  int max_media_parts = 8;
  double encoder_cache_mb = 256;  // 0 = off
  int max_document_pages = 16;
  // Document rendering: a named configuration (render/presets.h; "" = the renderer's
  // defaults, which equal Glyph's today) and the font files ("" = the default search).
  std::string render_preset;
  std::string font_path;
  std::string cjk_font_path;
  // Per-image token bounds applied through the family's layout rule (Qwen-VL's smart_resize
  // pixel bounds, InternVL's tile count); fixed layouts above max_tokens are refused.
  // 0 = the model's own.
  int64_t image_min_tokens = 0;
  int64_t image_max_tokens = 0;
  int default_max_tokens = 256;
  bool warmup = true;
  double response_cache_mb = 0;  // 0 = response cache off (docs/caching.md)
  std::vector<std::string> warm_prompt_files;  // JSON Lines of chat requests to prefill
  engine::EngineConfig engine;
};

// f(names, member reference, help) for every flag, in --help order. `names` is a CLI11
// name list ("-m,--model").
template <typename F>
void ForEachServeFlag(ServerConfig& c, F&& f) {
  f("-m,--model", c.model_path,
    "text model GGUF; default: a built-in tiny random model (its answers are noise)");
  f("--mmproj", c.mmproj_path, "vision encoder / projector GGUF (mmproj) for images and documents");
  f("-a,--alias", c.alias,
    "model id shown by /v1/models and echoed in responses; requests may name it or the "
    "model's own id (default: the GGUF's general.name)");
  f("--vision-compute", c.vision_compute,
    "vision tower math: f32 (exact) or bf16 (AVX512-BF16, ~2x faster, ~0.5% relative error)");
  f("--host", c.http.host, "IP address to listen on");
  f("--port", c.http.port, "TCP port (0 = any free port, printed at start)");
  f("--api-key", c.api_key,
    "require 'Authorization: Bearer KEY' on every API route (not /health and the web UI's "
    "files); several keys: comma-separated");
  f("--cache-isolation", c.cache_isolation,
    "none: all callers share the prefix, encoder and response caches (a request's "
    "cache_salt opts out); api-key: callers with different --api-key keys never share "
    "cached entries (docs/caching.md)");
  f("--http-threads", c.http.threads, "I/O threads of the HTTP server");
  f("--max-connections", c.http.max_connections,
    "open connections; at the limit a new one closes the longest-idle one (503 if none is)");
  f("--max-body-mb", c.max_body_mb, "largest request body in MiB (413 above)");
  f("--max-inflight-body-mb", c.http.max_inflight_body_mb,
    "MiB of request bodies all connections may hold at once (503 + Retry-After above)");
  f("--timeout", c.read_timeout_s, "seconds to read one request (and keep-alive idle time)");
  f("--write-timeout", c.write_timeout_s, "seconds one response write may take");
  f("--media-dir", c.media.media_dir, "allow file:// image URLs below this directory");
  f("--allow-media-domains", c.media.allowed_hosts,
    "hosts whose http(s) image URLs may be fetched ('.example.com' = its subdomains too)");
  f("--media-fetch-timeout", c.media.fetch_timeout_s,
    "seconds one remote image fetch may take, redirects included");
  f("--max-images", c.max_media_parts, "images + documents per request");
  f("--max-document-pages", c.max_document_pages, "pages one document part may render to");
  f("--render-preset", c.render_preset,
    "how document parts are rendered: glyph (Glyph's published configuration: A4, 72 dpi, 9 pt "
    "on 10 pt lines, 10 pt margins, width auto-crop) or glyph-96dpi; default: the same as glyph");
  f("--font", c.font_path,
    "font file for document pages (Glyph was trained on Verdana); default: DejaVu Sans");
  f("--cjk-font", c.cjk_font_path,
    "font for characters the --font lacks (CJK); default: WenQuanYi Zen Hei if installed");
  f("--image-min-tokens", c.image_min_tokens,
    "fewest tokens one image becomes (Qwen-VL: scaled up; InternVL: fewer tiles allowed); "
    "0 = the model's default");
  f("--image-max-tokens", c.image_max_tokens,
    "most tokens one image may cost: Qwen-VL scales images down and InternVL uses fewer "
    "tiles to fit; fixed-layout families (SmolVLM, LLaVA) refuse larger images with a 400; "
    "0 = the model's default");
  f("--encoder-cache-mb", c.encoder_cache_mb,
    "MiB of projected image embeddings kept for repeated images (0 = off)");
  f("--chat-template", c.chat_template,
    "built-in chat template (chatml, qwen2, smolvlm, vicuna); default: from the GGUF");
  f("-n,--n-predict", c.default_max_tokens, "max_tokens when a request gives none");
  f("--max-waiting-requests", c.engine.max_waiting_requests,
    "queued requests before 503 + Retry-After");
  f("--max-waiting-tokens", c.engine.max_waiting_tokens,
    "queued prompt tokens before 503 + Retry-After");
  f("--max-running", c.engine.max_running, "requests batched together (holding KV)");
  f("-b,--batch-tokens", c.engine.max_batch_tokens, "token budget of one engine step");
  f("--encoder-budget", c.engine.encoder_budget,
    "vision-tower work of one engine step in tower token-layers (0 = no limit: every "
    "pending image is encoded in one step); lower = smoother decoding for others while a "
    "document is encoded");
  f("-t,--threads", c.engine.threads, "threads of the forward pass (0 = all cores)");
  f("-c,--ctx-size", c.engine.kv_tokens, "total KV cache tokens (0 = 2 x model context)");
  f("--kv-type", c.kv_type,
    "KV cache storage: f16 (default), bf16 (both half the memory of f32) or f32 (exact, "
    "the previous behaviour)");
  f("--max-context", c.engine.max_context, "longest sequence (0 = the model's context)");
  f("--prefix-cache,!--no-prefix-cache", c.engine.enable_prefix_cache,
    "reuse KV blocks of earlier requests that share a prefix");
  f("--response-cache-mb", c.response_cache_mb,
    "replay answers of repeated deterministic requests from a cache of this size (0 = off)");
  f("--warm-prompt", c.warm_prompt_files,
    "JSON Lines file of chat requests prefilled at start-up into the prefix cache (repeatable)");
  f("--warmup,!--no-warmup", c.warmup,
    "run a text and (with a vision tower) an image + document request before /health is 200");
  f("--trace-file", c.trace_file, "write Chrome trace-event JSON of request spans here");
  f("--log-format", c.log_format,
    "text (one line per event, ISO 8601 UTC times) or json (one JSON object per line); "
    "either way one line per request with id, route, status, tokens and times");
  f("--default-model-dir", c.default_model_dir,
    "cache directory for the built-in model (default: generated in memory)");
}

}  // namespace vlserve::server
