#include "server/web_assets.h"

namespace vlserve::server {

// Defined in the generated web_assets_data.cc (entries [0, kNumWebAssets)).
extern const WebAsset kWebAssets[];
extern const size_t kNumWebAssets;

const WebAsset* FindWebAsset(std::string_view path) {
  if (path.empty() || path.find("..") != std::string_view::npos) return nullptr;
  for (size_t i = 0; i < kNumWebAssets; ++i) {
    if (path == kWebAssets[i].path) return &kWebAssets[i];
  }
  return nullptr;
}

std::string_view PlaceholderPage() {
  return R"(<!doctype html>
<html><head><meta charset="utf-8"><title>vlserve</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>vlserve</h1>
<p>The web UI is not part of this build yet. The OpenAI-compatible API is at
<code>POST /v1/chat/completions</code>; see <code>docs/api.md</code>.</p>
<p><a href="/health">/health</a> &middot; <a href="/v1/models">/v1/models</a> &middot;
<a href="/metrics">/metrics</a></p>
</body></html>
)";
}

}  // namespace vlserve::server
