// Qwen3-VL (clip.projector_type `qwen3vl_merger`; transformers modeling_qwen3_vl.py
// Qwen3VLVisionModel, llama.cpp's Qwen3VLVisionModel conversion and clip_graph_qwen3vl).
// Qwen2-VL's dynamic-resolution ViT with 16-px patches, a learned position table resampled
// to each image, GELU-tanh, and deepstack: three tower layers also feed the text model.
//  - Preprocessing: as Qwen2-VL (Qwen2VLImageProcessorFast; the plan, resize and prompt are
//    Qwen2VlFamily's): smart_resize to multiples of factor = patch * merge (32) with
//    min_pixels <= H*W <= max_pixels (preprocessor_config.json: shortest_edge 65536,
//    longest_edge 16777216 — 8x8 to 128x128 merged tokens), PIL bicubic, mean/std 0.5.
//  - Tower, in GGUF names ([ne0, ne1, ...] = GGUF order, i.e. PyTorch's shape reversed):
//      v.patch_embd.weight, .weight.1  [p, p, 3, d]  patch_embed.proj (Conv3d over two equal
//                                      frames: the two kernels are summed), p = 16
//      v.patch_embd.bias               [d]
//      v.position_embd.weight          [d, S*S]      pos_embed (nn.Embedding), S = 48
//                                      (num_position_embeddings 2304); row-major S x S grid,
//                                      resampled bilinearly with align-corners coordinates
//                                      (fast_pos_embed_interpolate; vit.cc
//                                      ResizePositionTableBilinear) and added to the patches
//      v.blk.N.ln1 / ln2.{weight,bias} [d]           norm1 / norm2 (LayerNorm, eps 1e-6)
//      v.blk.N.attn_qkv.{weight,bias}  [d, 3d], [3d] attn.qkv; q, k, v row blocks
//      v.blk.N.attn_out.{weight,bias}  [d, d], [d]   attn.proj
//      v.blk.N.ffn_up / ffn_down       [d, F] / [F, d] + biases   mlp.linear_fc1 / fc2,
//                                      gelu_pytorch_tanh between them
//    2-D RoPE on each patch's (row, col), theta 10000, exactly as Qwen2-VL (vit.cc).
//  - Main merger (Qwen3VLVisionPatchMerger, use_postshuffle_norm=False), D = text hidden:
//      v.post_ln.{weight,bias} [d]       merger.norm, LayerNorm per patch (the tower's
//                                        post-LN), then each 2x2 block concatenated (dy
//                                        outer, dx inner) into 4d
//      mm.0.{weight,bias} [4d, 4d]       merger.linear_fc1, erf-GELU (nn.GELU())
//      mm.2.{weight,bias} [4d, D]        merger.linear_fc2
//  - Deepstack mergers (deepstack_merger_list[k], use_postshuffle_norm=True), one per tap
//    at tower layer L = deepstack_visual_indexes[k] (llama.cpp names them by L):
//      v.deepstack.L.norm.{weight,bias} [4d]   LayerNorm over the merged 4d row (merge first)
//      v.deepstack.L.fc1.{weight,bias}  [4d, 4d], erf-GELU
//      v.deepstack.L.fc2.{weight,bias}  [4d, D]
//    reading the residual stream right after layer L (before the next layer's norm1).
//  - Output rows ([H/32 * W/32, (1 + n) * D], row-major merged grid): the main merger's D
//    values, then tap 0's, ..., tap n-1's (llama.cpp's concat order; the text model adds
//    slice k + 1 after its layer k). The text model's n_deepstack_layers must equal n.
//  - Prompt: "<|vision_start|>" + rows ("<|image_pad|>") + "<|vision_end|>", the rows at
//    (t, row, col) M-RoPE positions, as Qwen2-VL.
//  Differences from llama.cpp (we follow Hugging Face): llama.cpp resizes bilinearly and
//  bounds images to 8..4096 tokens; its mergers use ggml_gelu (the tanh approximation)
//  where HF's use erf GELU. Its converter writes the text model's rms_norm_eps as the
//  tower's eps (1e-6 for the released models, as HF's hard-coded LayerNorm eps).
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "models/gelu_mlp.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

constexpr float kMergerEps = 1e-6f;  // Qwen3VLVisionPatchMerger's nn.LayerNorm(eps=1e-6)

ThreadPool& Pool(ThreadPool* pool) { return pool != nullptr ? *pool : DefaultThreadPool(); }

class DeepstackProjector : public Projector {
 public:
  static StatusOr<std::unique_ptr<Projector>> Load(const gguf::File& f, const VisionConfig& c) {
    auto p = std::unique_ptr<DeepstackProjector>(new DeepstackProjector());
    p->d_ = c.hidden, p->m_ = c.merge;
    const int64_t merged = c.hidden * c.merge * c.merge;
    ASSIGN_OR_RETURN(p->main_, GeluMlp::Load(f, merged, "qwen3vl_merger"));
    for (int64_t layer : c.deepstack_layers) {
      const std::string b = fmt::format("v.deepstack.{}.", layer);
      Tap t;
      ASSIGN_OR_RETURN(t.norm_w, VisionVector(f, b + "norm.weight", merged));
      ASSIGN_OR_RETURN(t.norm_b, VisionVector(f, b + "norm.bias", merged));
      ASSIGN_OR_RETURN(t.mlp, GeluMlp::Load(f, merged, "qwen3vl_merger", b + "fc1", b + "fc2"));
      if (t.mlp.out_width() != p->main_.out_width()) {
        return InvalidArgumentError(fmt::format(
            "qwen3vl_merger mmproj: deepstack layer {} projects to {} values but the main "
            "merger to {}; every slice must be the text model's width",
            layer, t.mlp.out_width(), p->main_.out_width()));
      }
      p->taps_.push_back(std::move(t));
    }
    return std::unique_ptr<Projector>(std::move(p));
  }

  int64_t output_width() const override { return slice() * (1 + num_taps()); }
  int64_t TokensPerTile(int64_t rows, int64_t cols) const override {
    return (rows / m_) * (cols / m_);
  }
  int64_t MacsPerTile(int64_t rows, int64_t cols) const override {
    int64_t per_row = main_.macs_per_row();
    for (const Tap& t : taps_) per_row += t.mlp.macs_per_row();
    return TokensPerTile(rows, cols) * per_row;
  }

  // features: post-LN patches (merger.norm is the tower's v.post_ln).
  void Project(const float* features, int64_t num_tiles, int64_t rows, int64_t cols, float* out,
               VisionScratch& s, ThreadPool* pool) const override {
    const int64_t n = num_tiles * TokensPerTile(rows, cols);
    s.proj_tmp2.Resize(n * d_ * m_ * m_);
    MergePatches(features, num_tiles, rows, cols, d_, m_, s.proj_tmp2.data());  // [n, 4d]
    if (taps_.empty()) {
      main_.Run(s.proj_tmp2.data(), n, out, s.proj_tmp, pool);
      return;
    }
    s.proj_slice.Resize(n * slice());
    main_.Run(s.proj_tmp2.data(), n, s.proj_slice.data(), s.proj_tmp, pool);
    Scatter(s.proj_slice.data(), n, 0, out);
  }

  // x: the raw residual stream after the tap's layer; merged, then normed over 4d.
  void ProjectTap(int64_t tap, const float* x, int64_t num_tiles, int64_t rows, int64_t cols,
                  float* out, VisionScratch& s, ThreadPool* pool) const override {
    const Tap& t = taps_[tap];
    const int64_t n = num_tiles * TokensPerTile(rows, cols), w = d_ * m_ * m_;
    s.proj_tmp2.Resize(n * w);
    float* merged = s.proj_tmp2.data();  // [n, 4d]
    MergePatches(x, num_tiles, rows, cols, d_, m_, merged);
    Pool(pool).ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        kernels::LayerNorm(merged + r * w, t.norm_w.data(), t.norm_b.data(), kMergerEps, w,
                           merged + r * w);
      }
    });
    s.proj_slice.Resize(n * slice());
    t.mlp.Run(merged, n, s.proj_slice.data(), s.proj_tmp, pool);
    Scatter(s.proj_slice.data(), n, 1 + tap, out);
  }

 private:
  struct Tap {
    std::vector<float> norm_w, norm_b;  // [4d]
    GeluMlp mlp;                        // fc1 [4d, 4d], fc2 [4d, D]
  };
  DeepstackProjector() = default;

  int64_t slice() const { return main_.out_width(); }
  int64_t num_taps() const { return static_cast<int64_t>(taps_.size()); }
  // rows [n, D] -> columns [k * D, (k + 1) * D) of out's [n, (1 + taps) * D] rows.
  void Scatter(const float* rows, int64_t n, int64_t k, float* out) const {
    const int64_t d = slice(), w = output_width();
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(out + r * w + k * d, rows + r * d, d * sizeof(float));
    }
  }

  int64_t d_ = 0, m_ = 2;
  GeluMlp main_;
  std::vector<Tap> taps_;
};

class Qwen3Vl : public VisionFamily {
 public:
  std::string_view name() const override { return "Qwen3-VL"; }
  std::string_view projector_type() const override { return "qwen3vl_merger"; }
  bool uses_post_ln() const override { return true; }
  std::string_view placeholder() const override { return "<|image_pad|>"; }

  Status Configure(const gguf::File& f, VisionConfig* c) const override {
    c->positions = VisionPositions::kRope2d;
    c->dynamic_size = true;
    c->norm = VisionNorm::kLayerNorm;
    c->mlp = VisionMlp::kGeluTanh;  // gelu_pytorch_tanh (the converter writes clip.use_gelu)
    c->patch_pair = f.FindTensor("v.patch_embd.weight.1") != nullptr;
    c->fused_qkv = f.FindTensor("v.blk.0.attn_qkv.weight") != nullptr;
    const gguf::TensorInfo* pos = f.FindTensor("v.position_embd.weight");
    const int64_t n = pos != nullptr && pos->shape.size() == 2 ? pos->shape[1] : 0;
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
    if (n < 1 || side * side != n) {
      return InvalidArgumentError(fmt::format(
          "qwen3vl_merger mmproj: v.position_embd.weight must be a square grid [hidden, S*S] "
          "(Qwen3-VL: 48 x 48), got {} positions",
          n));
    }
    c->pos_resize_side = side;
    c->pos_resize_bilinear = true;
    // Deepstack taps as llama.cpp's loader finds them: the layers with a v.deepstack.L.norm.
    c->deepstack_layers.clear();
    for (int64_t il = 0; il < c->num_layers; ++il) {
      if (f.FindTensor(fmt::format("v.deepstack.{}.norm.weight", il)) != nullptr) {
        c->deepstack_layers.push_back(il);
      }
    }
    ASSIGN_OR_RETURN(c->merge, f.GetIntOr("clip.vision.spatial_merge_size", 2));
    ASSIGN_OR_RETURN(c->min_pixels, f.GetIntOr("clip.vision.image_min_pixels", 65536));
    ASSIGN_OR_RETURN(c->max_pixels, f.GetIntOr("clip.vision.image_max_pixels", 16777216));
    if (c->merge < 1 || c->min_pixels < 1 || c->max_pixels < c->min_pixels ||
        c->head_dim % 4 != 0) {
      return InvalidArgumentError(fmt::format(
          "qwen3vl_merger mmproj: spatial_merge_size {} and image pixel bounds [{}, {}] must be "
          "positive and ordered, and the head size {} a multiple of 4 (2-D RoPE)",
          c->merge, c->min_pixels, c->max_pixels, c->head_dim));
    }
    return OkStatus();
  }

  StatusOr<std::unique_ptr<Projector>> LoadProjector(const gguf::File& f,
                                                     const VisionConfig& c) const override {
    return DeepstackProjector::Load(f, c);
  }

  // Layout, pixels and prompt are Qwen2-VL's; its rules read patch * merge (here 32) and the
  // pixel bounds from the config.
  StatusOr<ImageLayout> Plan(const VisionConfig& c, int width, int height,
                             const ImageTokenLimits& limits) const override {
    return Qwen2VlFamily().Plan(c, width, height, limits);
  }
  int DecodeHint(const VisionConfig& c) const override { return Qwen2VlFamily().DecodeHint(c); }
  media::PixelTiles Preprocess(const VisionConfig& c, const ImageLayout& l,
                               const media::Image& image, media::BufferPool* pool,
                               media::PreprocessScratch* scratch,
                               media::PreprocessTimings* timings) const override {
    return Qwen2VlFamily().Preprocess(c, l, image, pool, scratch, timings);
  }
  void AppendPrompt(const ImageLayout& l, int image, PromptPieces* out) const override {
    Qwen2VlFamily().AppendPrompt(l, image, out);
  }
  std::vector<std::string> RequiredTokens(const ImageLayout& l) const override {
    return Qwen2VlFamily().RequiredTokens(l);
  }
};

}  // namespace

const VisionFamily& Qwen3VlFamily() {
  static const Qwen3Vl family;
  return family;
}

}  // namespace vlserve::models
