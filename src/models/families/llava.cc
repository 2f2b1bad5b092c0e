// LLaVA-1.5 (clip.projector_type `mlp`): CLIP ViT-L/14 at 336 px, one tile per image.
//  - Preprocessing (LLaVA's expand2square + CLIPImageProcessor): pad to a square of the mean
//    colour, shortest edge -> image_size (bicubic), centre crop, CLIP mean/std.
//  - Tower: CLS + learned positions, pre-LN, quick-GELU; LLaVA reads the second-to-last
//    layer, which llama.cpp's converter already made the last stored one (no post-LN), and
//    drops CLS.
//  - Projector (LlavaMultiModalProjector): mm.0 -> erf-GELU -> mm.2, one row per patch.
//  - Prompt: the image marker becomes its N = 576 embedding rows, nothing around them.
#include <fmt/format.h>

#include "models/gelu_mlp.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

class MlpProjector : public Projector {
 public:
  explicit MlpProjector(GeluMlp mlp) : mlp_(std::move(mlp)) {}

  int64_t output_width() const override { return mlp_.out_width(); }
  int64_t TokensPerTile(int64_t rows, int64_t cols) const override { return rows * cols; }
  int64_t MacsPerTile(int64_t rows, int64_t cols) const override {
    return rows * cols * mlp_.macs_per_row();
  }
  void Project(const float* features, int64_t num_tiles, int64_t rows, int64_t cols,
               float* out, VisionScratch& scratch, ThreadPool* pool) const override {
    mlp_.Run(features, num_tiles * rows * cols, out, scratch.proj_tmp, pool);
  }

 private:
  GeluMlp mlp_;
};

class Llava : public VisionFamily {
 public:
  std::string_view name() const override { return "LLaVA-1.5"; }
  std::string_view projector_type() const override { return "mlp"; }
  bool uses_post_ln() const override { return false; }

  StatusOr<std::unique_ptr<Projector>> LoadProjector(const gguf::File& f,
                                                     const VisionConfig& c) const override {
    ASSIGN_OR_RETURN(GeluMlp mlp, GeluMlp::Load(f, c.hidden, "mlp"));
    return std::unique_ptr<Projector>(new MlpProjector(std::move(mlp)));
  }

  StatusOr<ImageLayout> Plan(const VisionConfig& c, int, int,
                             const ImageTokenLimits&) const override {
    ImageLayout l;
    l.tile_height = l.tile_width = static_cast<int>(c.image_size);
    l.tokens = c.num_patches;
    return l;
  }

  int DecodeHint(const VisionConfig& c) const override {
    return media::LlavaDecodeHint(Config(c));
  }

  media::PixelTiles Preprocess(const VisionConfig& c, const ImageLayout&,
                               const media::Image& image, media::BufferPool* pool,
                               media::PreprocessScratch* scratch,
                               media::PreprocessTimings* timings) const override {
    return media::PreprocessLlava(image, Config(c), pool, scratch, timings);
  }

  void AppendPrompt(const ImageLayout& l, int image, PromptPieces* out) const override {
    out->Run(l.tokens, image, 0);
  }
  std::vector<std::string> RequiredTokens(const ImageLayout&) const override { return {}; }

 private:
  static media::LlavaPreprocessConfig Config(const VisionConfig& c) {
    media::LlavaPreprocessConfig cfg;
    cfg.image_size = static_cast<int>(c.image_size);
    cfg.norm = {c.image_mean, c.image_std};
    return cfg;
  }
};

}  // namespace

const VisionFamily& LlavaFamily() {
  static const Llava family;
  return family;
}

}  // namespace vlserve::models
