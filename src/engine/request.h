// What the server hands the engine (Request) and what comes back (Event), as plain data.
// The event queue between them is RequestStream (request_stream.h); the engine itself is
// engine.h. docs/engine.md describes the behaviour for users.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/logprobs.h"
#include "engine/sampling.h"
#include "models/family.h"
#include "models/vision_model.h"

namespace vlserve::engine {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

// The vision work of one image (or rendered page) that the engine runs in its step loop,
// batched with other requests' images, the first time a prefill chunk reaches one of its
// spans (a span served from the prefix cache never needs it). Shared by every ImageSpan
// of that image; after Submit only the engine thread touches it.
struct EncodeJob {
  std::string cache_key;        // encoder-cache key (SHA-256 hex); "" = do not cache
  models::ImageLayout layout;   // the family's layout, stored with the cached embeddings
  // [num_tiles, 3, tile_height, tile_width] normalized pixels; freed after encode.
  std::vector<float> tiles;
  // Set by the engine when the encode is complete: [layout.tokens, width], width =
  // TextConfig::embedding_width() (hidden, or (1 + n) x hidden for n deepstack layers).
  std::shared_ptr<const std::vector<float>> embeddings;
  // Engine-owned while the encode is spread over steps (scheduled encoding).
  std::shared_ptr<models::EncodeProgress> progress;
  std::shared_ptr<std::vector<float>> partial;  // rows of finished tile groups
};

// A run of image (or rendered page) embeddings inside the prompt. prompt_tokens holds
// placeholder ids at [position, position + num_tokens); the engine feeds embedding rows
// [first_row, first_row + num_tokens) of `embeddings` (or of `encode`'s output) there.
struct ImageSpan {
  int64_t position = 0;    // index in Request::prompt_tokens of the first placeholder
  int64_t num_tokens = 0;  // placeholders (= embedding rows) of this span
  int64_t first_row = 0;   // row of the image's embeddings fed at `position`
  // Identity used by the prefix cache (docs/architecture.md "Caches"): SHA-256 hex of the
  // image bytes
  // (or rendered page) + preprocessing + tower, plus the span's row range. Never an
  // xxHash: user-controlled. Empty = the span's blocks are never shared.
  std::string content_hash;
  // Exactly one of the two: ready embeddings ([rows >= first_row + num_tokens, width]
  // float32 as in EncodeJob, e.g. from the encoder cache), or the job that computes them.
  std::shared_ptr<const std::vector<float>> embeddings;
  std::shared_ptr<EncodeJob> encode;
};

// Per-stage timings in milliseconds; a negative value means "stage did not run".
// The server fills the stages before Submit (it owns the clock for those); the engine
// fills the rest and returns the whole struct in the final Event.
struct RequestTimings {
  // --- filled by the server (before Submit) ---
  double http_read_ms = -1;    // reading the request body
  double parse_ms = -1;        // JSON parse + schema mapping
  double media_fetch_ms = -1;  // data: URL decode / file read
  double image_decode_ms = -1; // JPEG/PNG/WebP -> RGB
  double render_ms = -1;       // text -> page images (document mode)
  double preprocess_ms = -1;   // resize/normalize/tiling
  double encode_ms = -1;       // vision encoder + projector (engine; 0 when every image
                               // came from the encoder cache)
  int32_t images = 0;          // images + rendered pages of the request
  int32_t images_cached = 0;   // of those, served by the encoder cache (not decoded)
  double tokenize_ms = -1;     // chat template + tokenization
  // Document parts only (-1 = none): what their text would cost as text tokens (the
  // model's tokenizer) and what their rendered pages cost as embedding rows.
  int64_t document_text_tokens = -1;
  int64_t document_image_tokens = -1;
  // --- filled by the engine ---
  double queue_ms = -1;        // Submit -> first scheduled step
  double prefill_ms = -1;      // first scheduled step -> prompt fully computed
  int64_t prefill_tokens = 0;  // prompt tokens computed (excluding prefix-cache hits)
  double ttft_ms = -1;         // Request::arrival (or Submit) -> first token emitted
  double decode_ms = -1;       // first token -> last token
  int64_t decode_tokens = 0;   // tokens generated after the first one
  double decode_tokens_per_s = -1;  // decode_tokens / decode_ms
  double e2e_ms = -1;          // Request::arrival (or Submit) -> finish
  int32_t preemptions = 0;     // times the request lost its KV and was recomputed
};

enum class FinishReason {
  kNone = 0,    // not finished (delta events)
  kStop,        // end-of-generation token, a stop_token_id, or a stop string
  kLength,      // max_tokens reached, or the model context / KV capacity is full
  kCancelled,   // RequestStream::Cancel() (client went away) or engine shutdown
  kDeadline,    // Request::deadline passed
};
// "stop", "length", "cancelled", "deadline" (OpenAI's names for the first two).
std::string_view FinishReasonName(FinishReason reason);

struct Usage {
  int64_t prompt_tokens = 0;      // Request::prompt_tokens.size() (image placeholders count)
  int64_t completion_tokens = 0;  // generated tokens, including a final EOS / stop token
  int64_t cached_tokens = 0;      // prompt tokens served from the prefix cache (0 for now)
};

struct Request {
  std::string id;                      // echoed in logs; need not be unique
  std::vector<int32_t> prompt_tokens;  // non-empty; already chat-templated and tokenized
  std::vector<ImageSpan> images;       // sorted by position, non-overlapping
  // M-RoPE models with image grids (models::ExpandedPrompt): the prompt's RoPE positions
  // [prompt_tokens.size(), 4] and the position of the first generated token, which
  // continues on every axis. Empty: a token's position is its index.
  std::vector<int32_t> rope_positions;
  int64_t next_rope_position = 0;
  SamplingParams sampling;             // validated by Submit against the vocabulary
  // -1: no log probabilities (nothing computed). 0..kMaxTopLogprobs: every event carries
  // a TokenLogprob per generated token with that many alternatives (engine/logprobs.h).
  int32_t logprobs = -1;
  int priority = 0;                    // higher runs first; equal priority is FIFO
  // The cache partition ("" = the shared default): prefix-cache blocks are shared only
  // between requests of equal salts (mixed into the hash chain; docs/caching.md).
  std::string cache_salt;
  // Past it the request finishes with FinishReason::kDeadline (checked every step,
  // also while waiting). Unset = no deadline.
  std::optional<TimePoint> deadline;
  // When the server received the request (for ttft_ms / e2e_ms). Unset = Submit time.
  std::optional<TimePoint> arrival;
  RequestTimings timings;              // server-side stages; the engine fills the rest
};

struct Event {
  enum class Kind {
    kDelta,     // new tokens/text; more events follow
    kFinished,  // last event: may still carry text/tokens (held-back text is flushed)
    kError,     // last event: `error` says why (e.g. the forward pass failed)
  };
  Kind kind = Kind::kDelta;
  // Newly completed UTF-8 text: never half a character; text that might be the start of
  // a stop string is held back until it cannot be, and a matched stop string (and what
  // follows) is removed. May be empty even when `tokens` is not. Concatenating `text` of
  // all events of a request gives the whole completion.
  std::string text;
  std::vector<int32_t> tokens;  // generated ids of this event (incl. a final EOS)
  // With Request::logprobs >= 0: one entry per id of `tokens`, in order; else empty.
  std::vector<TokenLogprob> logprobs;
  FinishReason finish_reason = FinishReason::kNone;  // set on kFinished
  Status error;                 // set on kError
  Usage usage;                  // running totals; exact on kFinished / kError
  RequestTimings timings;       // complete on kFinished / kError
};

}  // namespace vlserve::engine
