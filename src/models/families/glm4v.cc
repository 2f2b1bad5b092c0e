// GLM-4.1V (clip.projector_type `glm4v`; transformers Glm4vVisionModel, llama.cpp's
// Glm4VVisionModel conversion and clip_graph_glm4v). A dynamic-resolution ViT like
// Qwen2-VL's (one forward over the whole image, 2-D RoPE, M-RoPE positions for its tokens)
// with a learned position table resampled to each image, and a conv + SwiGLU merger.
//  - Preprocessing (Glm4vImageProcessor): smart_resize with factor = patch * merge (28) and
//    the image counted as 2 frames (temporal_patch_size): 2 * H * W within
//    [min_pixels, max_pixels] = [112², 28² * 15000] (HF class defaults). Unlike Qwen2-VL,
//    a side below 28 px first scales the image up so that side is 28 (int() truncation).
//    PIL-style bicubic, CLIP mean/std from the mmproj. We keep image-area bounds
//    (VisionConfig::min/max_pixels = HF's / 2), which is the same test.
//  - Tower, in GGUF names ([ne0, ne1, ...] = GGUF order, i.e. PyTorch's shape reversed):
//      v.patch_embd.weight, .weight.1  [p, p, 3, d]  HF patch_embed.proj (Conv3d, two frames
//                                      of the same image: the two kernels are summed)
//      v.patch_embd.bias               [d]
//      v.norm_embd.weight              [d]           post_conv_layernorm (RMSNorm)
//      v.position_embd.weight          [d, S*S]      embeddings.position_embedding, S = 24
//                                      (image_size / patch); row-major S x S grid, resampled
//                                      bicubically to the image's patch grid and added after
//                                      norm_embd (vit.cc ResizePositionTable)
//      v.blk.N.ln1.weight / ln2.weight [d]           norm1 / norm2 (RMSNorm, eps =
//                                      clip.vision.attention.layer_norm_epsilon, 1e-5)
//      v.blk.N.attn_qkv.weight         [d, 3d]       attn.qkv, no bias; q, k, v row blocks
//      v.blk.N.attn_out.weight         [d, d]        attn.proj, no bias
//      v.blk.N.ffn_gate/ffn_up.weight  [d, F]        mlp.gate_proj / up_proj (F = HF
//      v.blk.N.ffn_down.weight         [F, d]        out_hidden_size), down(silu(g) * u)
//      v.post_ln.weight                [d]           post_layernorm (RMSNorm)
//    2-D RoPE on each patch's (row, col), theta 10000, as Qwen2-VL (vit.cc RopeTables).
//  - Merger (Glm4vVisionModel.downsample + Glm4vVisionPatchMerger), D = text hidden:
//      mm.patch_merger.weight [2, 2, d, D] + .bias [D]   downsample Conv2d(d, D, 2, stride 2)
//                                      over each 2x2 patch block: weight row o holds
//                                      (channel, dy, dx) row-major
//      mm.model.fc.weight     [D, D]   merger.proj, no bias
//      mm.post_norm.weight/.bias [D]   merger.post_projection_norm (LayerNorm, eps 1e-5),
//                                      then erf-GELU
//      mm.gate / mm.up.weight [D, I], mm.down.weight [I, D]   SwiGLU (I = HF
//                                      intermediate_size), no biases (read if present)
//    Merged tokens in row-major order of the (H/28, W/28) grid.
//  - Prompt: "<|begin_of_image|>" + H/28 * W/28 rows ("<|image|>") + "<|end_of_image|>";
//    the rows take (t, row, col) M-RoPE positions (Glm4vModel.get_rope_index, the same rule
//    as Qwen2-VL; image_prompt.cc).
//  Differences from llama.cpp (we follow Hugging Face): llama.cpp resizes bilinearly and
//  bounds images to 8..4096 tokens; HF resizes bicubically and allows 8..7500.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "kernels/matmul_fused.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

// Glm4vImageProcessor's size {shortest_edge: 112 * 112, longest_edge: 28 * 28 * 15000},
// compared with 2 frames x H x W: image-area bounds are half of them.
constexpr int64_t kDefaultMinPixels = 112 * 112 / 2;
constexpr int64_t kDefaultMaxPixels = 28 * 28 * 15000 / 2;
constexpr float kPostNormEps = 1e-5f;  // nn.LayerNorm's default

ThreadPool& Pool(ThreadPool* pool) { return pool != nullptr ? *pool : DefaultThreadPool(); }

StatusOr<std::vector<float>> OptionalBias(const gguf::File& f, const std::string& name, int64_t n) {
  if (f.FindTensor(name) == nullptr) return std::vector<float>(n, 0.0f);
  return VisionVector(f, name, n);
}

class GlmMergerProjector : public Projector {
 public:
  static StatusOr<std::unique_ptr<Projector>> Load(const gguf::File& f, const VisionConfig& c) {
    const gguf::TensorInfo* ds = f.FindTensor("mm.patch_merger.weight");
    const gguf::TensorInfo* up = f.FindTensor("mm.up.weight");
    if (ds == nullptr || ds->shape.size() != 4 || up == nullptr || up->shape.size() != 2) {
      return NotFoundError(
          "glm4v mmproj: tensors 'mm.patch_merger.weight' (4-D conv kernel) and 'mm.up.weight' "
          "(2-D) must be present; convert the model with a current llama.cpp "
          "convert_hf_to_gguf.py --mmproj");
    }
    auto p = std::unique_ptr<GlmMergerProjector>(new GlmMergerProjector());
    const int64_t d = c.hidden, m = c.merge, out = ds->shape[3], inter = up->shape[1];
    p->d_ = d, p->m_ = m;
    ASSIGN_OR_RETURN(p->ds_,
                     VisionMatrix(f, "mm.patch_merger.weight", out, d * m * m, {m, m, d, out}));
    ASSIGN_OR_RETURN(p->ds_b_, VisionVector(f, "mm.patch_merger.bias", out));
    ASSIGN_OR_RETURN(p->fc_, VisionMatrix(f, "mm.model.fc.weight", out, out));
    ASSIGN_OR_RETURN(p->norm_w_, VisionVector(f, "mm.post_norm.weight", out));
    ASSIGN_OR_RETURN(p->norm_b_, VisionVector(f, "mm.post_norm.bias", out));
    ASSIGN_OR_RETURN(p->gate_, VisionMatrix(f, "mm.gate.weight", inter, out));
    ASSIGN_OR_RETURN(p->up_, VisionMatrix(f, "mm.up.weight", inter, out));
    ASSIGN_OR_RETURN(p->down_, VisionMatrix(f, "mm.down.weight", out, inter));
    ASSIGN_OR_RETURN(p->gate_b_, OptionalBias(f, "mm.gate.bias", inter));
    ASSIGN_OR_RETURN(p->up_b_, OptionalBias(f, "mm.up.bias", inter));
    ASSIGN_OR_RETURN(p->down_b_, OptionalBias(f, "mm.down.bias", out));
    return std::unique_ptr<Projector>(std::move(p));
  }

  int64_t output_width() const override { return down_.rows; }
  int64_t TokensPerTile(int64_t rows, int64_t cols) const override {
    return (rows / m_) * (cols / m_);
  }
  int64_t MacsPerTile(int64_t rows, int64_t cols) const override {
    const int64_t out = down_.rows, inter = up_.rows;
    return TokensPerTile(rows, cols) * (ds_.cols * out + out * out + 3 * out * inter);
  }

  void Project(const float* features, int64_t num_tiles, int64_t rows, int64_t cols, float* y,
               VisionScratch& s, ThreadPool* pool) const override {
    const int64_t tokens = TokensPerTile(rows, cols), n = num_tiles * tokens;
    const int64_t out = down_.rows, inter = up_.rows;
    s.proj_tmp2.Resize(n * ds_.cols);
    Gather(features, num_tiles, rows, cols, s.proj_tmp2.data());  // [n, d * m²]
    kernels::MatMul(ds_, s.proj_tmp2.data(), n, y, pool);         // y as [n, out] scratch
    s.proj_tmp.Resize(n * out);
    float* h = s.proj_tmp.data();  // [n, out]
    Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        kernels::Add(y + r * out, ds_b_.data(), y + r * out, out);
    });
    kernels::MatMul(fc_, y, n, h, pool);
    Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        kernels::LayerNorm(h + r * out, norm_w_.data(), norm_b_.data(), kPostNormEps, out,
                           h + r * out);
        kernels::GeluErf(h + r * out, out);
      }
    });
    s.proj_tmp2.Resize(2 * n * inter);
    float* g = s.proj_tmp2.data();  // [n, inter] gate, then silu(gate) * up
    float* u = g + n * inter;       // [n, inter]
    const kernels::WeightView gu[] = {gate_, up_};
    float* const gu_out[] = {g, u};
    kernels::MatMulFused(gu, gu_out, 2, h, n, pool);
    Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        kernels::Add(g + r * inter, gate_b_.data(), g + r * inter, inter);
        kernels::Add(u + r * inter, up_b_.data(), u + r * inter, inter);
        kernels::SwiGlu(g + r * inter, u + r * inter, g + r * inter, inter);
      }
    });
    kernels::MatMul(down_, g, n, y, pool);
    for (int64_t r = 0; r < n; ++r) kernels::Add(y + r * out, down_b_.data(), y + r * out, out);
  }

 private:
  GlmMergerProjector() = default;

  // The conv's input layout: merged token (X, Y)'s row holds, for channel ch and offset
  // (dy, dx), the feature of patch (mY + dy, mX + dx) at ch * m² + dy * m + dx — the
  // conv kernel's (in, ky, kx) order, so the kernel stays a matrix as stored.
  void Gather(const float* features, int64_t num_tiles, int64_t rows, int64_t cols,
              float* dst) const {
    const int64_t d = d_, m = m_, mr = rows / m, mc = cols / m, np = rows * cols;
    for (int64_t t = 0; t < num_tiles; ++t) {
      for (int64_t ty = 0; ty < mr; ++ty) {
        for (int64_t tx = 0; tx < mc; ++tx) {
          float* row = dst + ((t * mr + ty) * mc + tx) * d * m * m;
          for (int64_t dy = 0; dy < m; ++dy) {
            for (int64_t dx = 0; dx < m; ++dx) {
              const float* src = features + (t * np + (m * ty + dy) * cols + m * tx + dx) * d;
              for (int64_t ch = 0; ch < d; ++ch) row[ch * m * m + dy * m + dx] = src[ch];
            }
          }
        }
      }
    }
  }

  int64_t d_ = 0, m_ = 2;
  kernels::WeightView ds_{}, fc_{}, gate_{}, up_{}, down_{};
  std::vector<float> ds_b_, norm_w_, norm_b_, gate_b_, up_b_, down_b_;
};

class Glm4v : public VisionFamily {
 public:
  std::string_view name() const override { return "GLM-4.1V"; }
  std::string_view projector_type() const override { return "glm4v"; }
  bool uses_post_ln() const override { return true; }
  std::string_view placeholder() const override { return "<|image|>"; }

  Status Configure(const gguf::File& f, VisionConfig* c) const override {
    c->positions = VisionPositions::kRope2d;
    c->dynamic_size = true;
    c->norm = VisionNorm::kRmsNorm;
    c->mlp = VisionMlp::kSwiGlu;
    c->embd_norm = true;
    c->optional_biases = true;
    c->patch_pair = f.FindTensor("v.patch_embd.weight.1") != nullptr;
    c->fused_qkv = f.FindTensor("v.blk.0.attn_qkv.weight") != nullptr;
    if (const gguf::TensorInfo* pos = f.FindTensor("v.position_embd.weight"); pos != nullptr) {
      const int64_t n = pos->shape.size() == 2 ? pos->shape[1] : 0;
      const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
      if (n < 1 || side * side != n) {
        return InvalidArgumentError(fmt::format(
            "glm4v mmproj: v.position_embd.weight must be a square grid [hidden, S*S], got {} "
            "positions",
            n));
      }
      c->pos_resize_side = side;
    }
    ASSIGN_OR_RETURN(c->merge, f.GetIntOr("clip.vision.spatial_merge_size", 2));
    ASSIGN_OR_RETURN(c->min_pixels, f.GetIntOr("clip.vision.image_min_pixels", kDefaultMinPixels));
    ASSIGN_OR_RETURN(c->max_pixels, f.GetIntOr("clip.vision.image_max_pixels", kDefaultMaxPixels));
    if (c->merge < 1 || c->min_pixels < 1 || c->max_pixels < c->min_pixels ||
        c->head_dim % 4 != 0) {
      return InvalidArgumentError(
          fmt::format("glm4v mmproj: spatial_merge_size {} and image pixel bounds [{}, {}] must be "
                      "positive and ordered, and the head size {} a multiple of 4 (2-D RoPE)",
                      c->merge, c->min_pixels, c->max_pixels, c->head_dim));
    }
    return OkStatus();
  }

  StatusOr<std::unique_ptr<Projector>> LoadProjector(const gguf::File& f,
                                                     const VisionConfig& c) const override {
    return GlmMergerProjector::Load(f, c);
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
                                    media::ResampleFilter::kBicubic, {c.image_mean, c.image_std},
                                    pool, scratch, timings);
  }

  void AppendPrompt(const ImageLayout& l, int image, PromptPieces* out) const override {
    out->Text("<|begin_of_image|>");
    out->Run(l.tokens, image, 0, l.merged_rows, l.merged_cols);
    out->Text("<|end_of_image|>");
  }
  std::vector<std::string> RequiredTokens(const ImageLayout&) const override {
    return {"<|begin_of_image|>", "<|end_of_image|>"};
  }

  // transformers' glm4v smart_resize for one image (2 frames), in image-area terms
  // (min/max_pixels = HF's / 2; the comparisons and beta are the same numbers). Python's
  // round() is round-half-to-even, as nearbyint.
  static StatusOr<std::pair<int64_t, int64_t>> SmartResize(int64_t h, int64_t w, int64_t factor,
                                                           int64_t min_pixels, int64_t max_pixels) {
    if (h < 1 || w < 1) {
      return InvalidArgumentError(fmt::format("image of {}x{} pixels is empty", w, h));
    }
    double height = static_cast<double>(h), width = static_cast<double>(w);
    const double f = static_cast<double>(factor);
    if (height < f || width < f) {  // a side under one merged token: scale up first
      const double scale = std::max(f / height, f / width);
      height = std::trunc(height * scale);
      width = std::trunc(width * scale);
    }
    if (std::max(height, width) / std::min(height, width) > 200) {
      return InvalidArgumentError(fmt::format(
          "image of {}x{} pixels: GLM-4.1V takes images whose sides differ by at most 200x", w, h));
    }
    auto round_to = [&](double v) { return static_cast<int64_t>(std::nearbyint(v / f)) * factor; };
    int64_t hb = round_to(height), wb = round_to(width);
    if (hb * wb > max_pixels) {
      const double beta = std::sqrt(height * width / static_cast<double>(max_pixels));
      hb = std::max(factor, static_cast<int64_t>(std::floor(height / beta / f)) * factor);
      wb = std::max(factor, static_cast<int64_t>(std::floor(width / beta / f)) * factor);
    } else if (hb * wb < min_pixels) {
      const double beta = std::sqrt(static_cast<double>(min_pixels) / (height * width));
      hb = static_cast<int64_t>(std::ceil(height * beta / f)) * factor;
      wb = static_cast<int64_t>(std::ceil(width * beta / f)) * factor;
    }
    return std::pair{hb, wb};
  }
};

}  // namespace

const VisionFamily& Glm4vFamily() {
  static const Glm4v family;
  return family;
}

}  // namespace vlserve::models
