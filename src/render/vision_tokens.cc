#include "render/vision_tokens.h"

#include <algorithm>
#include <cmath>

namespace vlserve::render {

VisionCost EstimateVisionTokens(int width, int height, const VisionConfig& config) {
  VisionCost cost;
  if (width <= 0 || height <= 0 || config.tile_size <= 0) return cost;
  double w = width, h = height;
  const double longest = std::max(w, h);
  if (config.max_long_edge > 0 && (longest > config.max_long_edge || config.upscale)) {
    const double s = config.max_long_edge / longest;
    // The processor keeps the aspect ratio and truncates the short side.
    if (w >= h) {
      h = std::max(1.0, std::floor(h * s));
      w = config.max_long_edge;
    } else {
      w = std::max(1.0, std::floor(w * s));
      h = config.max_long_edge;
    }
  }
  const int t = config.tile_size;
  cost.tiles_x = static_cast<int>(std::ceil(w / t));
  cost.tiles_y = static_cast<int>(std::ceil(h / t));
  cost.resized_width = cost.tiles_x * t;
  cost.resized_height = cost.tiles_y * t;
  const int tiles = cost.tiles_x * cost.tiles_y;
  cost.images = tiles + (tiles > 1 && config.global_image ? 1 : 0);
  cost.tokens = static_cast<int64_t>(cost.images) * config.tokens_per_tile;
  return cost;
}

int64_t EstimateTextTokens(int64_t non_cjk_chars, int64_t cjk_chars) {
  return (non_cjk_chars + 3) / 4 + cjk_chars;
}

}  // namespace vlserve::render
