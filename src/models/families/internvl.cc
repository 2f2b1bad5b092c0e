// InternVL (clip.projector_type `internvl`: InternVL2.5 / InternVL3 with InternViT-300M,
// e.g. InternVL3-1B/2B/8B). Written from OpenGVLab's modeling_intern_vit.py,
// modeling_internvl_chat.py and the model card's load_image (= transformers'
// GotOcr2ImageProcessor.crop_to_patches + InternVLProcessor).
//  - Preprocessing (dynamic_preprocess): candidate grids (cols, rows) with
//    min_tiles <= cols * rows <= max_tiles (preproc_{min,max}_tiles, default 1..12), in
//    order of tile count, then cols; find_closest_aspect_ratio picks the grid whose
//    cols / rows is nearest W / H, and on an exactly equal difference a later grid wins
//    when W * H > 0.5 * tile² * cols * rows. The image is resized to (tile * cols,
//    tile * rows) and cut into tiles row-major; above one tile the whole image resized to
//    tile x tile (the thumbnail) comes last. Every resize is PIL bicubic (torchvision's
//    T.Resize on a PIL image, and PIL's default). mean/std (ImageNet) from the mmproj.
//  - Tower (InternViT-300M): conv patch embedding with bias, CLS first and the learned
//    position table's row 0 on it, LayerNorm blocks with q/k/v/out biases, erf-GELU MLP,
//    layer scale ls1/ls2 on both branches, no post-LN; CLS dropped. The 6B tower
//    (RMSNorm, QK-norm) is refused.
//  - Projector (mlp1): pixel shuffle by scale_factor s (ps_version v2) — merged token
//    (X, Y), row-major over (W/s x H/s) patches, is the concatenation over dy (outer) then
//    dx of the patches at column sX + dx, row sY + dy — then LayerNorm (mm.model.mlp.0,
//    torch's default eps 1e-5) -> mm.model.mlp.1 -> erf-GELU -> mm.model.mlp.3.
//  - Prompt (InternVLChatModel.chat): "<img>" + 256 "<IMG_CONTEXT>" rows per tile, all
//    tiles in one run, + "</img>"; 1-D positions.
// Where llama.cpp differs: tests/golden/internvl/README.md.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "base/clock.h"
#include "models/gelu_mlp.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

// nn.LayerNorm's default; the converter writes no key for mlp1.0.
constexpr float kProjectorNormEps = 1e-5f;
// The HF config's min_dynamic_patch / max_dynamic_patch when the mmproj has no
// preproc_{min,max}_tiles (older conversions).
constexpr int64_t kDefaultMinTiles = 1;
constexpr int64_t kDefaultMaxTiles = 12;

class InternVlProjector : public Projector {
 public:
  InternVlProjector(int64_t hidden, int64_t scale, std::vector<float> norm_w,
                    std::vector<float> norm_b, GeluMlp mlp)
      : d_(hidden),
        s_(scale),
        norm_w_(std::move(norm_w)),
        norm_b_(std::move(norm_b)),
        mlp_(std::move(mlp)) {}

  int64_t output_width() const override { return mlp_.out_width(); }
  int64_t TokensPerTile(int64_t rows, int64_t cols) const override {
    return (rows / s_) * (cols / s_);
  }
  int64_t MacsPerTile(int64_t rows, int64_t cols) const override {
    return TokensPerTile(rows, cols) * mlp_.macs_per_row();
  }

  void Project(const float* features, int64_t num_tiles, int64_t rows, int64_t cols, float* out,
               VisionScratch& scratch, ThreadPool* pool) const override {
    const int64_t tokens = TokensPerTile(rows, cols);
    const int64_t width = d_ * s_ * s_, n = num_tiles * tokens;
    scratch.proj_tmp2.Resize(n * width);
    float* merged = scratch.proj_tmp2.data();  // [num_tiles * tokens, s² * hidden]
    MergePatches(features, num_tiles, rows, cols, d_, s_, merged);
    ThreadPool& p = pool != nullptr ? *pool : DefaultThreadPool();
    p.ParallelFor(n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        kernels::LayerNorm(merged + r * width, norm_w_.data(), norm_b_.data(), kProjectorNormEps,
                           width, merged + r * width);
      }
    });
    mlp_.Run(merged, n, out, scratch.proj_tmp, pool);
  }

 private:
  int64_t d_, s_;
  std::vector<float> norm_w_, norm_b_;  // [s² * hidden]
  GeluMlp mlp_;                         // [text_hidden, s² * hidden], [text_hidden, text_hidden]
};

struct Grid {
  int cols = 1, rows = 1;
};

// find_closest_aspect_ratio over the grids of min_tiles..max_tiles tiles (see the top).
Grid ClosestGrid(int width, int height, int64_t tile, int64_t min_tiles, int64_t max_tiles) {
  std::vector<Grid> grids;
  for (int64_t n = min_tiles; n <= max_tiles; ++n) {
    for (int c = 1; c <= n; ++c) {
      if (n % c == 0) grids.push_back({c, static_cast<int>(n / c)});
    }
  }
  const double aspect = static_cast<double>(width) / height;
  const double area = static_cast<double>(width) * height;
  const double tile_area = static_cast<double>(tile) * static_cast<double>(tile);
  double best_diff = INFINITY;
  Grid best;
  for (const Grid& g : grids) {
    const double diff = std::fabs(aspect - static_cast<double>(g.cols) / g.rows);
    if (diff < best_diff) {
      best_diff = diff;
      best = g;
    } else if (diff == best_diff && area > 0.5 * tile_area * g.cols * g.rows) {
      best = g;
    }
  }
  return best;
}

// Resizes unless the size already matches (Pillow then returns a copy; we skip it).
const media::Image& Resized(const media::Image& src, int w, int h, media::Image* dst,
                            std::vector<uint8_t>* tmp) {
  if (src.width == w && src.height == h) return src;
  media::ResizeInto(src, w, h, media::ResampleFilter::kBicubic, dst, tmp);
  return *dst;
}

class InternVl : public VisionFamily {
 public:
  std::string_view name() const override { return "InternVL"; }
  std::string_view projector_type() const override { return "internvl"; }
  bool uses_post_ln() const override { return false; }
  std::string_view placeholder() const override { return "<IMG_CONTEXT>"; }

  Status Configure(const gguf::File& f, VisionConfig* c) const override {
    ASSIGN_OR_RETURN(bool silu, f.GetBoolOr("clip.use_silu", false));
    if (silu) {
      return UnimplementedError(
          "internvl mmproj: a SiLU vision MLP (clip.use_silu) is not supported; InternViT "
          "uses GELU");
    }
    if (f.FindTensor("v.blk.0.ln1.bias") == nullptr ||
        f.FindTensor("v.blk.0.attn_q_norm.weight") != nullptr) {
      return UnimplementedError(
          "internvl mmproj: this is the InternViT-6B tower (RMSNorm, QK-norm; InternVL3-38B/78B), "
          "which vlserve does not support; supported: InternViT-300M (InternVL3-1B/2B/8B/14B)");
    }
    if (!c->class_token) {
      return InvalidArgumentError("internvl mmproj: tensor 'v.class_embd' is missing");
    }
    c->mlp = VisionMlp::kGeluErf;  // HF hidden_act "gelu"; the converter sets clip.use_gelu
    c->layer_scale = true;
    ASSIGN_OR_RETURN(c->min_tiles, f.GetIntOr("clip.vision.preproc_min_tiles", kDefaultMinTiles));
    ASSIGN_OR_RETURN(c->max_tiles, f.GetIntOr("clip.vision.preproc_max_tiles", kDefaultMaxTiles));
    if (c->min_tiles < 1 || c->max_tiles < c->min_tiles ||
        c->patches_per_side % c->scale_factor != 0) {
      return InvalidArgumentError(
          fmt::format("internvl mmproj: preproc tiles [{}, {}] must be positive and ordered, and "
                      "projector.scale_factor {} must divide the {} patches per side",
                      c->min_tiles, c->max_tiles, c->scale_factor, c->patches_per_side));
    }
    return OkStatus();
  }

  StatusOr<std::unique_ptr<Projector>> LoadProjector(const gguf::File& f,
                                                     const VisionConfig& c) const override {
    const int64_t width = c.hidden * c.scale_factor * c.scale_factor;
    ASSIGN_OR_RETURN(std::vector<float> norm_w, VisionVector(f, "mm.model.mlp.0.weight", width));
    ASSIGN_OR_RETURN(std::vector<float> norm_b, VisionVector(f, "mm.model.mlp.0.bias", width));
    ASSIGN_OR_RETURN(GeluMlp mlp,
                     GeluMlp::Load(f, width, "internvl", "mm.model.mlp.1", "mm.model.mlp.3"));
    return std::unique_ptr<Projector>(new InternVlProjector(
        c.hidden, c.scale_factor, std::move(norm_w), std::move(norm_b), std::move(mlp)));
  }

  StatusOr<ImageLayout> Plan(const VisionConfig& c, int width, int height,
                             const ImageTokenLimits& limits) const override {
    const int64_t side = c.patches_per_side / c.scale_factor, per_tile = side * side;
    // Token limits narrow the tile range: n tiles cost per_tile * (n + thumbnail).
    int64_t lo = c.min_tiles, hi = c.max_tiles;
    if (limits.max_tokens > 0) {
      const int64_t q = limits.max_tokens / per_tile;
      hi = std::min(hi, q >= 3 ? q - 1 : std::min<int64_t>(q, 1));
    }
    if (limits.min_tokens > per_tile) {
      lo = std::max(lo, std::max<int64_t>(2, (limits.min_tokens + per_tile - 1) / per_tile - 1));
    }
    if (hi < lo) {
      return OutOfRangeError(fmt::format(
          "InternVL image token bounds [{}, {}] leave no tile count in [{}, {}] ({} tokens a "
          "tile, plus a thumbnail tile above one tile); widen image_min_tokens / "
          "image_max_tokens",
          limits.min_tokens, limits.max_tokens, c.min_tiles, c.max_tiles, per_tile));
    }
    const Grid g = ClosestGrid(width, height, c.image_size, lo, hi);
    ImageLayout l;
    l.tile_height = l.tile_width = static_cast<int>(c.image_size);
    const int blocks = g.cols * g.rows;
    if (blocks > 1) {
      l.grid_rows = g.rows;
      l.grid_cols = g.cols;
    }
    l.num_tiles = blocks > 1 ? blocks + 1 : 1;
    l.tokens = l.num_tiles * per_tile;
    return l;
  }

  // The grid comes from the exact aspect ratio and the thumbnail from the whole image:
  // decode at full size.
  int DecodeHint(const VisionConfig&) const override { return 0; }

  media::PixelTiles Preprocess(const VisionConfig& c, const ImageLayout& l,
                               const media::Image& image, media::BufferPool* pool,
                               media::PreprocessScratch* scratch,
                               media::PreprocessTimings* timings) const override {
    Stopwatch watch;
    const int t = l.tile_width, cols = std::max(l.grid_cols, 1), rows = std::max(l.grid_rows, 1);
    const media::Image& grid =
        Resized(image, t * cols, t * rows, &scratch->a, &scratch->resize_tmp);
    const media::Image* thumbnail =
        l.num_tiles > 1 ? &Resized(image, t, t, &scratch->b, &scratch->resize_tmp) : nullptr;
    const double resize_ms = watch.ElapsedMs();
    watch.Reset();
    media::PixelTiles out;
    out.tile_width = out.tile_height = t;
    out.grid_rows = l.grid_rows;
    out.grid_cols = l.grid_cols;
    out.num_tiles = l.num_tiles;
    out.pixels = pool->Acquire(static_cast<size_t>(l.num_tiles) * 3 * t * t);
    const media::NormalizeParams norm{c.image_mean, c.image_std};
    int index = 0;
    for (int r = 0; r < rows; ++r) {
      for (int k = 0; k < cols; ++k, ++index) {
        media::NormalizeRegion(grid, k * t, r * t, t, t, norm, out.MutableTile(index));
      }
    }
    if (thumbnail != nullptr) {
      media::NormalizeRegion(*thumbnail, 0, 0, t, t, norm, out.MutableTile(index));
    }
    if (timings != nullptr) {
      timings->resize_ms = resize_ms;
      timings->normalize_ms = watch.ElapsedMs();
    }
    return out;
  }

  void AppendPrompt(const ImageLayout& l, int image, PromptPieces* out) const override {
    out->Text("<img>");
    out->Run(l.tokens, image, 0);
    out->Text("</img>");
  }
  std::vector<std::string> RequiredTokens(const ImageLayout&) const override {
    return {"<img>", "</img>", "<IMG_CONTEXT>"};
  }
};

}  // namespace

const VisionFamily& InternVlFamily() {
  static const InternVl family;
  return family;
}

}  // namespace vlserve::models
