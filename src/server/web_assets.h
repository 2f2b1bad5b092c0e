// Static files of the web UI, embedded at build time: CMake (embed_web.cmake) turns every
// file under web/ into a byte array in a generated web_assets_data.cc, so adding a file to
// web/ is all it takes to serve it (GET /<path relative to web/>).
#pragma once

#include <cstddef>
#include <string_view>

namespace vlserve::server {

struct WebAsset {
  const char* path;  // relative to web/, e.g. "index.html", "js/app.js"
  const char* mime;  // Content-Type
  const char* data;
  size_t size;
};

// Null when no such file was embedded. `path` has no leading '/'.
const WebAsset* FindWebAsset(std::string_view path);
// Served at / while web/index.html does not exist.
std::string_view PlaceholderPage();

}  // namespace vlserve::server
