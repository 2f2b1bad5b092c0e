// The testable parts of `vlserve bench-glyph` (Glyph's claim measured: one question about
// one document, sent as text tokens and as rendered pages): the document of a given token
// count, the two request bodies, and llama.cpp's `llama-mtmd-cli -v` log read back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace vlserve::bench_serve {

// The request both modes send. The document goes first and the question after it, as
// Glyph's client (scripts/vlm_inference.py) orders them.
struct GlyphRequest {
  std::string document;
  std::string question;
  int max_tokens = 16;
  // A fresh cache_salt per request: no prefix, encoder or response cache hit from an
  // earlier run, so every number is a cold prefill.
  std::string cache_salt;
  // Token ids given logit_bias -100 (the end-of-text / end-of-turn ids), so a random-weight
  // model decodes all max_tokens and the decode speed covers the same count in both modes.
  std::vector<int32_t> banned_ids;
  std::string render_preset = "glyph";
};

// The chat body with the document as text: one user turn, "<document>\n\n<question>".
std::string GlyphTextBody(const GlyphRequest& r);
// The chat body with the document as a `document` part rendered with `render_preset`.
std::string GlyphPagesBody(const GlyphRequest& r);

// What one `llama-mtmd-cli -v -n 1` run took, read from its timestamped log.
struct LlamaMtmdTimings {
  int images = 0;            // "encoding mtmd batch" lines of image chunks
  double encode_ms = 0;      // sum of "mtmd batch encoding done in N ms"
  double image_decode_ms = 0;  // sum of "image decoded (batch i/n) in N ms" (the LLM over image tokens)
  int prompt_tokens = 0;     // "prompt eval time = ... / N tokens"
  double prompt_eval_ms = 0;
  double eval_ms = 0;        // "eval time = X ms / K runs": the decode after the first token
  // From the line after start-up (the "experimental CLI" warning, printed just before the
  // images are loaded) to the end of the run, minus eval_ms: image load and preprocessing,
  // encode, prefill and the first token's sampling.
  double ttft_ms = -1;
};
StatusOr<LlamaMtmdTimings> ParseLlamaMtmdLog(std::string_view log);

// "4096,8192" -> {4096, 8192}; each must be a positive integer.
StatusOr<std::vector<int>> ParseSizes(std::string_view list);

}  // namespace vlserve::bench_serve
