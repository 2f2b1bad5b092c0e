// Warm prompts (`--warm-prompt FILE`): chat requests prefilled once at start-up so that
// their KV blocks sit in the prefix cache (docs/caching.md) before the first user request.
// Typical use: the system prompt (and fixed few-shot examples or images) every client sends.
//
// FILE is JSON Lines: each non-blank line one chat-completions request body, parsed and
// prepared exactly like a request to POST /v1/chat/completions (same media rules: data:
// URLs, file:// below --media-dir). Each runs with max_tokens 1 and temperature 0.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/status.h"
#include "server/chat_service.h"
#include "server/media_input.h"

namespace vlserve::server {

struct WarmPromptOptions {
  int max_media_parts = 8;            // as --max-images
  std::chrono::seconds timeout{300};  // for the whole file
};

struct WarmPromptStats {
  int64_t prompts = 0;
  int64_t prompt_tokens = 0;  // summed over prompts
  int64_t cached_tokens = 0;  // of those, already resident (e.g. a prefix shared by lines)
};

// Parses every line first (nothing runs when one is bad), then prepares and runs them one
// after the other on ctx.engine. Errors name the file and line: NotFound (file), the
// parse / PrepareChat error (InvalidArgument, NotFound for a wrong "model"), engine errors,
// DeadlineExceeded past options.timeout. An empty file warms nothing and is not an error.
StatusOr<WarmPromptStats> RunWarmPrompts(const std::string& path, const ModelContext& ctx,
                                         const MediaConfig& media,
                                         const WarmPromptOptions& options = {});

}  // namespace vlserve::server
