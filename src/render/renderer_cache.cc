#include "render/renderer_cache.h"

#include <utility>

namespace vlserve::render {

RendererCache::RendererCache(std::shared_ptr<const Renderer> base, size_t capacity)
    : base_(std::move(base)), capacity_(capacity) {}

StatusOr<std::shared_ptr<const Renderer>> RendererCache::Get(const RenderOptions& options) {
  if (base_ != nullptr && base_->options() == options) return base_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = recent_.begin(); it != recent_.end(); ++it) {
      if (it->options == options) {
        recent_.splice(recent_.begin(), recent_, it);
        return recent_.front().renderer;
      }
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Renderer> made, Renderer::Create(options));
  std::shared_ptr<const Renderer> renderer = std::move(made);
  std::lock_guard<std::mutex> lock(mu_);
  // Another request may have made the same one meanwhile; either copy serves.
  recent_.push_front(Entry{options, renderer});
  while (recent_.size() > capacity_) recent_.pop_back();
  return renderer;
}

size_t RendererCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recent_.size();
}

}  // namespace vlserve::render
