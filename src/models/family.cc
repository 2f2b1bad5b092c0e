// The one table of vision-language families, keyed by clip.projector_type. Adding a family
// = one families/<name>.cc defining its VisionFamily + one line here.
#include "models/family.h"

#include <fmt/format.h>

namespace vlserve::models {

const std::vector<const VisionFamily*>& VisionFamilies() {
  static const std::vector<const VisionFamily*> table = {
      &SmolVlmFamily(),
      &LlavaFamily(),
      &Qwen2VlFamily(),
      &Qwen25VlFamily(),
      &InternVlFamily(),
      &Glm4vFamily(),
      &Qwen3VlFamily(),
  };
  return table;
}

std::string SupportedProjectorList() {
  std::string out;
  for (const VisionFamily* f : VisionFamilies()) {
    out += fmt::format("{}{} ({})", out.empty() ? "" : ", ", f->projector_type(), f->name());
  }
  return out;
}

StatusOr<const VisionFamily*> FindVisionFamily(std::string_view projector_type) {
  for (const VisionFamily* f : VisionFamilies()) {
    if (projector_type == f->projector_type()) return f;
  }
  return UnimplementedError(
      fmt::format("mmproj projector_type '{}' is not supported; supported: {}", projector_type,
                  SupportedProjectorList()));
}

Status VisionFamily::Configure(const gguf::File&, VisionConfig*) const { return OkStatus(); }

void PromptPieces::Text(std::string_view s) {
  if (pieces_.empty() || pieces_.back().run_tokens > 0) pieces_.push_back(Piece{});
  pieces_.back().text += s;
}

void PromptPieces::Run(int64_t rows, int image, int64_t first_row, int grid_rows,
                       int grid_cols) {
  pieces_.push_back(Piece{"", rows, image, first_row, grid_rows, grid_cols});
}

int64_t PixelBound(int64_t tokens, int64_t factor, int64_t config_pixels) {
  return tokens > 0 ? tokens * factor * factor : config_pixels;
}

ImageLayout DynamicGridLayout(int64_t height, int64_t width, int64_t factor) {
  ImageLayout l;
  l.tile_height = static_cast<int>(height);
  l.tile_width = static_cast<int>(width);
  l.merged_rows = static_cast<int>(height / factor);
  l.merged_cols = static_cast<int>(width / factor);
  l.tokens = int64_t{l.merged_rows} * l.merged_cols;
  return l;
}

}  // namespace vlserve::models
