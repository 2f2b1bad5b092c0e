// LLaVA-1.5 `mlp` projector (transformers LlavaMultiModalProjector): linear_1 (mm.0) ->
// exact erf-GELU -> linear_2 (mm.2), both with biases; one output row per patch (the
// tower already dropped CLS). llama.cpp's converter names linear_1 mm.0 and linear_2 mm.2.
#include <fmt/format.h>

#include "models/vision_model.h"

namespace vlserve::models {
namespace {

class MlpProjector : public Projector {
 public:
  MlpProjector(int64_t num_patches, kernels::WeightView w0, std::vector<float> b0,
               kernels::WeightView w2, std::vector<float> b2)
      : num_patches_(num_patches), w0_(w0), w2_(w2), b0_(std::move(b0)), b2_(std::move(b2)) {}

  int64_t output_width() const override { return w2_.rows; }
  int64_t tokens_per_tile() const override { return num_patches_; }
  int64_t macs_per_tile() const override {
    return num_patches_ * (w0_.rows * w0_.cols + w2_.rows * w2_.cols);
  }

  void Project(const float* features, int64_t num_tiles, float* out, VisionScratch& scratch,
               ThreadPool* pool) const override {
    const int64_t n = num_tiles * num_patches_;
    scratch.proj_tmp.Resize(n * w0_.rows);
    float* mid = scratch.proj_tmp.data();  // [n, mm.0 rows]
    kernels::MatMul(w0_, features, n, mid, pool);
    for (int64_t r = 0; r < n; ++r) {
      kernels::Add(mid + r * w0_.rows, b0_.data(), mid + r * w0_.rows, w0_.rows);
      kernels::GeluErf(mid + r * w0_.rows, w0_.rows);
    }
    kernels::MatMul(w2_, mid, n, out, pool);
    for (int64_t r = 0; r < n; ++r) {
      kernels::Add(out + r * w2_.rows, b2_.data(), out + r * w2_.rows, w2_.rows);
    }
  }

 private:
  int64_t num_patches_;
  kernels::WeightView w0_, w2_;  // [mid, hidden], [text_hidden, mid]
  std::vector<float> b0_, b2_;
};

StatusOr<std::unique_ptr<Projector>> LoadMlp(const gguf::File& f, const VisionConfig& c) {
  const gguf::TensorInfo* t0 = f.FindTensor("mm.0.weight");
  const gguf::TensorInfo* t2 = f.FindTensor("mm.2.weight");
  if (t0 == nullptr || t2 == nullptr || t0->shape.size() != 2 || t2->shape.size() != 2) {
    return NotFoundError("mlp mmproj: tensors 'mm.0.weight' and 'mm.2.weight' must be 2-D");
  }
  const int64_t mid = t0->shape[1], out = t2->shape[1];
  ASSIGN_OR_RETURN(kernels::WeightView w0, VisionMatrix(f, "mm.0.weight", mid, c.hidden));
  ASSIGN_OR_RETURN(std::vector<float> b0, VisionVector(f, "mm.0.bias", mid));
  ASSIGN_OR_RETURN(kernels::WeightView w2, VisionMatrix(f, "mm.2.weight", out, mid));
  ASSIGN_OR_RETURN(std::vector<float> b2, VisionVector(f, "mm.2.bias", out));
  return std::unique_ptr<Projector>(
      new MlpProjector(c.num_patches, w0, std::move(b0), w2, std::move(b2)));
}

}  // namespace

const ProjectorInfo& MlpProjectorInfo() {
  static const ProjectorInfo info{"mlp", /*uses_post_ln=*/false, LoadMlp};
  return info;
}

}  // namespace vlserve::models
