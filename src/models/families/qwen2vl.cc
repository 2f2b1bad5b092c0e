// Qwen2-VL (clip.projector_type `qwen2vl_merger`) and Qwen2.5-VL (`qwen2.5vl_merger`): a
// dynamic-resolution ViT whose one forward covers the whole image, and M-RoPE positions for
// its tokens. Qwen2.5-VL differs only in the tower (see the end of this comment).
//  - Preprocessing (transformers Qwen2VLImageProcessor): smart_resize to multiples of
//    factor = patch * merge (28) with min_pixels <= H*W <= max_pixels, PIL bicubic, CLIP
//    mean/std from the mmproj. llama.cpp resizes bilinearly; we follow Hugging Face.
//  - Tower: Conv3d patch embedding over two equal frames = the sum of the two kernels
//    llama.cpp's converter splits it into (v.patch_embd.weight, .weight.1), no bias, no
//    position table: 2-D RoPE on every patch's (row, col) (vit.cc); LayerNorm blocks with
//    q/k/v/out biases, quick-GELU MLP; whole-image attention.
//  - Merger (PatchMerger): v.post_ln (HF merger.ln_q), the 2x2 patches of each merged
//    token concatenated (dy outer, dx inner) -> mm.0 -> erf-GELU -> mm.2. Merged tokens in
//    row-major order of the (H/28, W/28) grid. We run the tower in row-major patch order;
//    HF's processor orders patches by 2x2 windows, which only matters to the merger's
//    grouping (done here) and the RoPE positions (each patch keeps its own).
//  - Prompt: "<|vision_start|>" + H/28 * W/28 rows ("<|image_pad|>") + "<|vision_end|>";
//    the rows take (t, row, col) M-RoPE positions (image_prompt.cc).
//  - Qwen2.5-VL (modeling_qwen2_5_vl.py): RMSNorm (ln1, ln2 and the merger's ln_q =
//    v.post_ln, no biases), SwiGLU MLP with biases (ffn_gate, ffn_up, ffn_down;
//    clip.use_silu), and window attention: layers il with (il + 1) % n_wa_pattern != 0
//    attend within 112-px windows (8 x 8 patches = 4 x 4 merged tokens, edge windows
//    smaller); the others over the whole image. HF reorders patches by window and undoes
//    it after the merger; we attend per window in place (vit.cc WindowAttention).
#include <fmt/format.h>

#include <cmath>

#include "models/gelu_mlp.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

// Qwen2-VL-2B/7B-Instruct preprocessor_config.json: min_pixels 56*56, max_pixels 28*28*16384.
constexpr int64_t kDefaultMinPixels = 3136;
constexpr int64_t kDefaultMaxPixels = 12845056;

class MergerProjector : public Projector {
 public:
  MergerProjector(int64_t hidden, int64_t merge, GeluMlp mlp)
      : d_(hidden), m_(merge), mlp_(std::move(mlp)) {}

  int64_t output_width() const override { return mlp_.out_width(); }
  int64_t TokensPerTile(int64_t rows, int64_t cols) const override {
    return (rows / m_) * (cols / m_);
  }
  int64_t MacsPerTile(int64_t rows, int64_t cols) const override {
    return TokensPerTile(rows, cols) * mlp_.macs_per_row();
  }

  void Project(const float* features, int64_t num_tiles, int64_t rows, int64_t cols, float* out,
               VisionScratch& scratch, ThreadPool* pool) const override {
    const int64_t tokens = TokensPerTile(rows, cols);
    const int64_t width = d_ * m_ * m_;
    scratch.proj_tmp2.Resize(num_tiles * tokens * width);
    float* merged = scratch.proj_tmp2.data();  // [num_tiles * tokens, merge² * hidden]
    MergePatches(features, num_tiles, rows, cols, d_, m_, merged);
    mlp_.Run(merged, num_tiles * tokens, out, scratch.proj_tmp, pool);
  }

 private:
  int64_t d_, m_;
  GeluMlp mlp_;
};

class QwenVl : public VisionFamily {
 public:
  explicit QwenVl(bool v25) : v25_(v25) {}
  std::string_view name() const override { return v25_ ? "Qwen2.5-VL" : "Qwen2-VL"; }
  std::string_view projector_type() const override {
    return v25_ ? "qwen2.5vl_merger" : "qwen2vl_merger";
  }
  bool uses_post_ln() const override { return true; }
  std::string_view placeholder() const override { return "<|image_pad|>"; }

  Status Configure(const gguf::File& f, VisionConfig* c) const override {
    c->positions = VisionPositions::kRope2d;
    c->dynamic_size = true;
    c->patch_pair = f.FindTensor("v.patch_embd.weight.1") != nullptr;
    ASSIGN_OR_RETURN(c->merge, f.GetIntOr("clip.vision.spatial_merge_size", 2));
    ASSIGN_OR_RETURN(c->min_pixels, f.GetIntOr("clip.vision.image_min_pixels", kDefaultMinPixels));
    ASSIGN_OR_RETURN(c->max_pixels, f.GetIntOr("clip.vision.image_max_pixels", kDefaultMaxPixels));
    if (v25_) {
      c->norm = VisionNorm::kRmsNorm;
      c->mlp = VisionMlp::kSwiGlu;
      ASSIGN_OR_RETURN(c->window_pattern, f.GetInt("clip.vision.n_wa_pattern"));
      ASSIGN_OR_RETURN(const int64_t window_px, f.GetIntOr("clip.vision.window_size", 112));
      c->window_patches = window_px / c->patch_size;
      if (c->window_pattern < 1 || c->window_patches < c->merge ||
          c->window_patches % c->merge != 0) {
        return InvalidArgumentError(fmt::format(
            "qwen2.5vl_merger mmproj: n_wa_pattern {} must be >= 1 and the {}-px window a "
            "multiple of {} patches",
            c->window_pattern, window_px, c->merge));
      }
    }
    if (c->merge < 1 || c->min_pixels < 1 || c->max_pixels < c->min_pixels ||
        c->head_dim % 4 != 0) {
      return InvalidArgumentError(fmt::format(
          "qwen2vl_merger mmproj: spatial_merge_size {} and image pixel bounds [{}, {}] must be "
          "positive and ordered, and the head size {} a multiple of 4 (2-D RoPE)",
          c->merge, c->min_pixels, c->max_pixels, c->head_dim));
    }
    return OkStatus();
  }

  StatusOr<std::unique_ptr<Projector>> LoadProjector(const gguf::File& f,
                                                     const VisionConfig& c) const override {
    ASSIGN_OR_RETURN(GeluMlp mlp, GeluMlp::Load(f, c.hidden * c.merge * c.merge,
                                                v25_ ? "qwen2.5vl_merger" : "qwen2vl_merger"));
    return std::unique_ptr<Projector>(new MergerProjector(c.hidden, c.merge, std::move(mlp)));
  }

  StatusOr<ImageLayout> Plan(const VisionConfig& c, int width, int height,
                             const ImageTokenLimits& limits) const override {
    const int64_t factor = c.patch_size * c.merge;
    ASSIGN_OR_RETURN(auto size,
                     SmartResize(height, width, factor,
                                 PixelBound(limits.min_tokens, factor, c.min_pixels),
                                 PixelBound(limits.max_tokens, factor, c.max_pixels)));
    return DynamicGridLayout(size.first, size.second, factor);
  }

  // The resize target depends on the full source size, so decode at full size.
  int DecodeHint(const VisionConfig&) const override { return 0; }

  media::PixelTiles Preprocess(const VisionConfig& c, const ImageLayout& l,
                               const media::Image& image, media::BufferPool* pool,
                               media::PreprocessScratch* scratch,
                               media::PreprocessTimings* timings) const override {
    return media::PreprocessResized(image, l.tile_width, l.tile_height,
                                    media::ResampleFilter::kBicubic,
                                    {c.image_mean, c.image_std}, pool, scratch, timings);
  }

  void AppendPrompt(const ImageLayout& l, int image, PromptPieces* out) const override {
    out->Text("<|vision_start|>");
    out->Run(l.tokens, image, 0, l.merged_rows, l.merged_cols);
    out->Text("<|vision_end|>");
  }
  std::vector<std::string> RequiredTokens(const ImageLayout&) const override {
    return {"<|vision_start|>", "<|vision_end|>"};
  }

  // transformers' smart_resize: (height, width) multiples of factor, aspect kept, area in
  // [min_pixels, max_pixels]. Python's round() is round-half-to-even, as nearbyint.
  static StatusOr<std::pair<int64_t, int64_t>> SmartResize(int64_t h, int64_t w, int64_t factor,
                                                           int64_t min_pixels,
                                                           int64_t max_pixels) {
    if (h < 1 || w < 1 || std::max(h, w) > 200 * std::min(h, w)) {
      return InvalidArgumentError(fmt::format(
          "image of {}x{} pixels: Qwen-VL models take images whose sides differ by at most 200x",
          w, h));
    }
    const double f = static_cast<double>(factor);
    auto round_to = [&](double v) {
      return static_cast<int64_t>(std::nearbyint(v / f)) * factor;
    };
    int64_t hb = std::max(factor, round_to(static_cast<double>(h)));
    int64_t wb = std::max(factor, round_to(static_cast<double>(w)));
    if (hb * wb > max_pixels) {
      const double beta = std::sqrt(static_cast<double>(h) * w / max_pixels);
      hb = std::max(factor, static_cast<int64_t>(std::floor(h / beta / f)) * factor);
      wb = std::max(factor, static_cast<int64_t>(std::floor(w / beta / f)) * factor);
    } else if (hb * wb < min_pixels) {
      const double beta = std::sqrt(static_cast<double>(min_pixels) / (static_cast<double>(h) * w));
      hb = static_cast<int64_t>(std::ceil(h * beta / f)) * factor;
      wb = static_cast<int64_t>(std::ceil(w * beta / f)) * factor;
    }
    return std::pair{hb, wb};
  }

 private:
  bool v25_;
};

}  // namespace

const VisionFamily& Qwen2VlFamily() {
  static const QwenVl family(/*v25=*/false);
  return family;
}

const VisionFamily& Qwen25VlFamily() {
  static const QwenVl family(/*v25=*/true);
  return family;
}

}  // namespace vlserve::models
