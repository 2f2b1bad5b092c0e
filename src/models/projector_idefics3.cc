// idefics3 projector (SmolVLM): pixel shuffle by scale factor s, then one linear layer
// `mm.model.fc.weight` [text_hidden, hidden * s²] without bias.
//
// Pixel shuffle, as transformers' Idefics3Connector.pixel_shuffle computes it (view
// [h, w, d] -> [h, w/s, s*d] -> permute -> [w/s, h/s, s²d] -> permute -> [h/s * w/s, s²d]):
// merged token (X, Y), in row-major order over (W/s x H/s) (Y outer), is the concatenation
// over dy (outer) then dx of the patch features at column s*X + dx, row s*Y + dy.
// llama.cpp's build_patch_merge_permute produces the same order.
#include <fmt/format.h>

#include <cstring>

#include "models/vision_model.h"

namespace vlserve::models {
namespace {

class Idefics3Projector : public Projector {
 public:
  Idefics3Projector(const VisionConfig& c, kernels::WeightView fc)
      : side_(c.patches_per_side), s_(c.scale_factor), d_(c.hidden), fc_(fc) {}

  int64_t output_width() const override { return fc_.rows; }
  int64_t tokens_per_tile() const override { return (side_ / s_) * (side_ / s_); }
  int64_t macs_per_tile() const override { return tokens_per_tile() * fc_.rows * fc_.cols; }

  void Project(const float* features, int64_t num_tiles, float* out, VisionScratch& scratch,
               ThreadPool* pool) const override {
    const int64_t merged_side = side_ / s_, tokens = tokens_per_tile();
    const int64_t np = side_ * side_;
    scratch.proj_tmp.Resize(num_tiles * tokens * fc_.cols);
    float* shuffled = scratch.proj_tmp.data();  // [num_tiles * tokens, s² * hidden]
    for (int64_t t = 0; t < num_tiles; ++t) {
      for (int64_t y = 0; y < merged_side; ++y) {
        for (int64_t x = 0; x < merged_side; ++x) {
          float* dst = shuffled + (t * tokens + y * merged_side + x) * fc_.cols;
          for (int64_t dy = 0; dy < s_; ++dy) {
            for (int64_t dx = 0; dx < s_; ++dx) {
              const int64_t patch = (s_ * y + dy) * side_ + s_ * x + dx;
              std::memcpy(dst + (dy * s_ + dx) * d_, features + (t * np + patch) * d_,
                          d_ * sizeof(float));
            }
          }
        }
      }
    }
    kernels::MatMul(fc_, shuffled, num_tiles * tokens, out, pool);
  }

 private:
  int64_t side_, s_, d_;
  kernels::WeightView fc_;  // [text_hidden, hidden * s²]
};

StatusOr<std::unique_ptr<Projector>> LoadIdefics3(const gguf::File& f, const VisionConfig& c) {
  if (c.patches_per_side % c.scale_factor != 0) {
    return InvalidArgumentError(
        fmt::format("idefics3 mmproj: scale_factor {} does not divide the {} patches per side",
                    c.scale_factor, c.patches_per_side));
  }
  const gguf::TensorInfo* t = f.FindTensor("mm.model.fc.weight");
  if (t == nullptr || t->shape.size() != 2) {
    return NotFoundError("idefics3 mmproj: tensor 'mm.model.fc.weight' is missing or not 2-D");
  }
  const int64_t cols = c.hidden * c.scale_factor * c.scale_factor;
  ASSIGN_OR_RETURN(kernels::WeightView fc,
                   VisionMatrix(f, "mm.model.fc.weight", t->shape[1], cols));
  return std::unique_ptr<Projector>(new Idefics3Projector(c, fc));
}

}  // namespace

const ProjectorInfo& Idefics3ProjectorInfo() {
  static const ProjectorInfo info{"idefics3", /*uses_post_ln=*/true, LoadIdefics3};
  return info;
}

}  // namespace vlserve::models
