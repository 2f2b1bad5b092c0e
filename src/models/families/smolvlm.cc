// SmolVLM (clip.projector_type `idefics3`): SigLIP tiles + pixel shuffle + one linear layer.
//  - Preprocessing (transformers Idefics3ImageProcessor): longest edge -> preproc_image_size
//    (default 4 x image_size), Lanczos; the encoder size rounds both sides up to multiples
//    of image_size; above one tile, a grid of image_size tiles (row-major) plus the whole
//    image resized to one tile (the global image, last). mean/std from the mmproj.
//  - Tower: learned positions, tanh-GELU, post-LN (last layer).
//  - Projector: pixel shuffle by scale factor s, then mm.model.fc [text_hidden, hidden s²]
//    without bias. Merged token (X, Y), row-major over (W/s x H/s), is the concatenation
//    over dy (outer) then dx of the patches at column sX + dx, row sY + dy — transformers'
//    Idefics3Connector.pixel_shuffle, and llama.cpp's build_patch_merge_permute.
//  - Prompt (Idefics3Processor _prompt_split_image / _prompt_single_image, N tokens a tile,
//    rows/cols from 1): for each tile "<fake_token_around_image><row_r_col_c>" + N rows,
//    "\n" after each grid row; then "\n<fake_token_around_image><global-img>" + N rows +
//    "<fake_token_around_image>". One tile: without the grid part and its leading "\n".
#include <fmt/format.h>


#include "base/check.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

class Idefics3Projector : public Projector {
 public:
  Idefics3Projector(const VisionConfig& c, kernels::WeightView fc)
      : s_(c.scale_factor), d_(c.hidden), fc_(fc) {}

  int64_t output_width() const override { return fc_.rows; }
  int64_t TokensPerTile(int64_t rows, int64_t cols) const override {
    return (rows / s_) * (cols / s_);
  }
  int64_t MacsPerTile(int64_t rows, int64_t cols) const override {
    return TokensPerTile(rows, cols) * fc_.rows * fc_.cols;
  }

  void Project(const float* features, int64_t num_tiles, int64_t rows, int64_t cols, float* out,
               VisionScratch& scratch, ThreadPool* pool) const override {
    const int64_t tokens = TokensPerTile(rows, cols);
    scratch.proj_tmp.Resize(num_tiles * tokens * fc_.cols);
    float* shuffled = scratch.proj_tmp.data();  // [num_tiles * tokens, s² * hidden]
    MergePatches(features, num_tiles, rows, cols, d_, s_, shuffled);
    kernels::MatMul(fc_, shuffled, num_tiles * tokens, out, pool);
  }

 private:
  int64_t s_, d_;
  kernels::WeightView fc_;  // [text_hidden, hidden * s²]
};

class SmolVlm : public VisionFamily {
 public:
  std::string_view name() const override { return "SmolVLM"; }
  std::string_view projector_type() const override { return "idefics3"; }
  bool uses_post_ln() const override { return true; }

  StatusOr<std::unique_ptr<Projector>> LoadProjector(const gguf::File& f,
                                                     const VisionConfig& c) const override {
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

  StatusOr<ImageLayout> Plan(const VisionConfig& c, int width, int height,
                             const ImageTokenLimits&) const override {
    const media::SmolVlmPreprocessConfig cfg = Config(c);
    const media::SmolVlmSizes s = media::ComputeSmolVlmSizes(width, height, cfg);
    const int t = cfg.tile_size;
    ImageLayout l;
    l.tile_height = l.tile_width = t;
    if (s.encoder_width > t || s.encoder_height > t) {
      l.grid_rows = (s.encoder_height + t - 1) / t;
      l.grid_cols = (s.encoder_width + t - 1) / t;
    }
    l.num_tiles = l.grid_rows * l.grid_cols + 1;
    const int64_t side = c.patches_per_side / c.scale_factor;
    l.tokens = l.num_tiles * side * side;
    return l;
  }

  int DecodeHint(const VisionConfig& c) const override {
    return media::SmolVlmDecodeHint(Config(c));
  }

  media::PixelTiles Preprocess(const VisionConfig& c, const ImageLayout& layout,
                               const media::Image& image, media::BufferPool* pool,
                               media::PreprocessScratch* scratch,
                               media::PreprocessTimings* timings) const override {
    media::PixelTiles tiles = media::PreprocessSmolVlm(image, Config(c), pool, scratch, timings);
    CHECK(tiles.grid_rows == layout.grid_rows && tiles.grid_cols == layout.grid_cols)
        << "SmolVLM layout planned for another image size";
    return tiles;
  }

  void AppendPrompt(const ImageLayout& l, int image, PromptPieces* out) const override {
    const int64_t n = l.tokens / l.num_tiles;
    if (l.grid_rows * l.grid_cols == 0) {
      out->Text("<fake_token_around_image><global-img>");
      out->Run(n, image, 0);
      out->Text("<fake_token_around_image>");
      return;
    }
    int64_t row = 0;
    for (int r = 0; r < l.grid_rows; ++r) {
      for (int c = 0; c < l.grid_cols; ++c) {
        out->Text(fmt::format("<fake_token_around_image><row_{}_col_{}>", r + 1, c + 1));
        out->Run(n, image, row);
        row += n;
      }
      out->Text("\n");
    }
    out->Text("\n<fake_token_around_image><global-img>");
    out->Run(n, image, row);
    out->Text("<fake_token_around_image>");
  }

  std::vector<std::string> RequiredTokens(const ImageLayout& l) const override {
    std::vector<std::string> needed = {"<fake_token_around_image>", "<global-img>"};
    if (l.grid_rows * l.grid_cols > 0) {
      needed.push_back(fmt::format("<row_{}_col_{}>", l.grid_rows, l.grid_cols));
    }
    return needed;
  }

 private:
  static media::SmolVlmPreprocessConfig Config(const VisionConfig& c) {
    media::SmolVlmPreprocessConfig cfg;
    cfg.tile_size = static_cast<int>(c.image_size);
    cfg.longest_edge =
        static_cast<int>(c.preproc_image_size > 0 ? c.preproc_image_size : 4 * c.image_size);
    cfg.norm = {c.image_mean, c.image_std};
    return cfg;
  }
};

}  // namespace

const VisionFamily& SmolVlmFamily() {
  static const SmolVlm family;
  return family;
}

}  // namespace vlserve::models
