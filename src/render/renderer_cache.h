// Renderers by their options. A request that names a render preset or changes a field
// needs a renderer for those options; making one opens the fonts again (100-300 ms on a
// busy machine: the CJK fallback is a 16 MB file), which a page of text then waits for.
// The cache keeps the server's default renderer and the most recently used others.
#pragma once

#include <cstddef>
#include <list>
#include <utility>
#include <memory>
#include <mutex>

#include "base/status.h"
#include "render/renderer.h"

namespace vlserve::render {

class RendererCache {
 public:
  // `base`: the default renderer, always kept; `capacity`: how many others are kept.
  explicit RendererCache(std::shared_ptr<const Renderer> base, size_t capacity = 8);

  const std::shared_ptr<const Renderer>& base() const { return base_; }

  // A renderer for `options`: the default one or a kept one when the options are equal,
  // else a new one (Renderer::Create's errors), kept in place of the least recently used.
  // Thread-safe; fonts are opened outside the lock.
  StatusOr<std::shared_ptr<const Renderer>> Get(const RenderOptions& options);

  size_t size() const;  // kept renderers besides the default

 private:
  std::shared_ptr<const Renderer> base_;
  size_t capacity_;
  mutable std::mutex mu_;
  // Keyed by the options asked for (Create may adjust its copy, e.g. the height cap).
  struct Entry {
    RenderOptions options;
    std::shared_ptr<const Renderer> renderer;
  };
  std::list<Entry> recent_;  // most recently used first
};

}  // namespace vlserve::render
