// POST /v1/render (vlserve extension): what a document part would become, for the web UI's
// document mode — the rendered pages (as small JPEG data URLs), how many tokens the text
// costs as text, and how many embedding rows the pages cost with the served vision model.
// Nothing is encoded or cached.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "server/chat_service.h"

namespace vlserve::server {

// Body: {"text": "...", "render": {...same fields as a document part...},
//        "max_images": N (pages returned as images, default 4, at most 16)}.
// Answer: {"pages", "chars", "text_tokens", "image_tokens", "compression",
//          "images": ["data:image/jpeg;base64,...", ...], "sizes": [[w, h], ...]}.
// InvalidArgument for bad JSON / fields / render options, FailedPrecondition without
// fonts.
StatusOr<std::string> RenderPreviewJson(std::string_view body, const ModelContext& ctx);

}  // namespace vlserve::server
