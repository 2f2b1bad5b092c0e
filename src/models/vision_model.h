// Vision towers (`mmproj` GGUFs, architecture `clip`) and their projectors.
//
// A VisionModel is a ViT (SigLIP for SmolVLM, CLIP ViT-L/14 for LLaVA-1.5, the Qwen2-VL
// dynamic-resolution ViT) plus a projector that maps its patch features into the text
// model's embedding space. One ViT implementation (vit.cc) is driven by the spec fields of
// VisionConfig; what is family-specific comes from its VisionFamily (family.h). Like TextModel it is
// immutable after Load: matrices stay memory-mapped in their GGUF type, 1-D tensors are
// copied to float32, and activations live in a caller-owned VisionScratch.
//
// Encode runs several tiles (of one or more images) in one forward: every weight matmul
// runs once over the concatenated rows of all tiles; attention runs per tile.
//
// Conventions (llama.cpp's mmproj format; docs/vision.md has the sources):
//   patch conv v.patch_embd.weight, GGUF ne=[p, p, 3, hidden]: row o holds (c, ky, kx)
//   row-major, so the conv is a matmul over im2col rows [num_patches, 3*p*p].
//   v.class_embd present => a CLS token is prepended (CLIP), position 0 is CLS.
//   v.pre_ln present => LayerNorm after the embeddings (CLIP).
//   v.post_ln applied only when the projector uses the last layer (SigLIP/idefics3);
//   LLaVA's `mlp` uses the second-to-last layer of the HF tower: llama.cpp's converter
//   already dropped the last layer from the file, so we run every stored layer and skip
//   post_ln, and drop the CLS row before the projector.
//   clip.use_gelu: true => tanh-GELU (SigLIP "gelu_pytorch_tanh"), false => quick-GELU (CLIP).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/aligned.h"
#include "base/status.h"
#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "models/family.h"

namespace vlserve::models {

struct TextConfig;

// The spec of the tower, read by the one ViT (vit.cc).
enum class VisionNorm { kLayerNorm, kRmsNorm };
enum class VisionMlp {
  kGeluTanh, kQuickGelu, kGeluErf,
  kSwiGlu,  // down(silu(gate(x)) * up(x)) with biases (Qwen2.5-VL: ffn_gate + ffn_up)
};
enum class VisionPositions {
  kLearned,  // v.position_embd at the native image_size grid (SigLIP, CLIP)
  kRope2d,   // 2-D RoPE on (row, col) of each patch, any grid (Qwen2-VL); no table
};

struct VisionConfig {
  std::string projector_type;  // clip.projector_type (the family table's key)
  int64_t image_size = 0;      // tile edge in pixels
  int64_t patch_size = 0;
  int64_t patches_per_side = 0;  // image_size / patch_size
  int64_t num_patches = 0;       // patches_per_side²
  int64_t hidden = 0;            // embedding_length
  int64_t ffn = 0;               // feed_forward_length
  int64_t num_layers = 0;        // block_count: layers stored and run
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  float eps = 1e-6f;               // attention.layer_norm_epsilon
  bool use_gelu = false;           // tanh-GELU, else quick-GELU
  bool class_token = false;        // v.class_embd present
  bool pre_ln = false;             // v.pre_ln.* present
  bool post_ln = false;            // v.post_ln.* present and applied
  int64_t scale_factor = 1;        // clip.vision.projector.scale_factor (idefics3)
  int64_t projection_dim = 0;      // clip.vision.projection_dim (informational)
  int64_t preproc_image_size = 0;  // clip.vision.preproc_image_size (0 = absent)
  std::array<float, 3> image_mean{0.5f, 0.5f, 0.5f};
  std::array<float, 3> image_std{0.5f, 0.5f, 0.5f};
  // --- spec (set by the family's Configure) ---
  VisionNorm norm = VisionNorm::kLayerNorm;
  VisionMlp mlp = VisionMlp::kQuickGelu;     // from clip.use_gelu unless the family says
  VisionPositions positions = VisionPositions::kLearned;
  float rope_theta = 10000.0f;                // kRope2d
  bool patch_pair = false;      // v.patch_embd.weight.1: Conv3d over 2 equal frames, summed
  int64_t merge = 1;            // patches merged per side after the tower (Qwen: 2)
  // Tile sides any multiple of patch_size * merge (kRope2d); else exactly image_size.
  bool dynamic_size = false;
  // Image pixel bounds of the family's resize rule (clip.vision.image_{min,max}_pixels or
  // the HF processor's defaults); 0 = none.
  int64_t min_pixels = 0, max_pixels = 0;
  // v.blk.N.ls1 / ls2: per-channel scales on each layer's attention and MLP outputs before
  // the residual add (InternViT's layer scale).
  bool layer_scale = false;
  // Window attention (Qwen2.5-VL): layer il attends only within square windows of
  // window_patches patches (aligned at the tile's top-left; edge windows smaller) unless
  // (il + 1) % window_pattern == 0 (clip.vision.n_wa_pattern); 0 = every layer full.
  int64_t window_pattern = 0;
  int64_t window_patches = 0;
  // Tile-count range of the family's tiling rule (clip.vision.preproc_{min,max}_tiles or
  // the HF processor's defaults; InternVL 1..12); 0 = none.
  int64_t min_tiles = 0, max_tiles = 0;
  // GLM-4.1V's embedding stage: v.norm_embd (the tower's norm) on the patch embeddings, then
  // v.position_embd as a pos_resize_side² table resampled to each tile's patch grid
  // (ResizePositionTable) and added; 0 = no resampled table.
  bool embd_norm = false;
  int64_t pos_resize_side = 0;
  // How that table is resampled: GLM-4.1V's bicubic grid_sample (ResizePositionTable) or
  // Qwen3-VL's bilinear align-corners interpolation (ResizePositionTableBilinear).
  bool pos_resize_bilinear = false;
  // Deepstack taps (Qwen3-VL's deepstack_visual_indexes): after these tower layers
  // (0-based, ascending) the residual stream goes to Projector::ProjectTap, tap k in order.
  std::vector<int64_t> deepstack_layers;
  // q, k, v as row blocks of one v.blk.N.attn_qkv.weight [3 * hidden, hidden] (GLM-4.1V).
  bool fused_qkv = false;
  // Attention and MLP linears may lack biases (GLM-4.1V has none): absent ones are zero.
  bool optional_biases = false;

  int64_t tokens_per_tile_in_tower() const { return num_patches + (class_token ? 1 : 0); }
};

// Arithmetic of the tower's matrix multiplications, chosen at load time.
//   kF32:  matrices as stored (F32/F16/BF16/quantized kernels, float activations).
//   kBf16: F32 and F16 tower matrices (patch embedding, attention, FFN) are converted once
//          to BF16; with AVX512_BF16 the matmuls then round activations to bf16 and run
//          vdpbf16ps (2× the F32 FMA rate). Quantized matrices and the projector are kept.
//          Accuracy cost: docs/vision.md "Performance".
enum class VisionComputeType { kF32, kBf16 };
struct VisionLoadOptions {
  VisionComputeType compute = VisionComputeType::kF32;
  ImageTokenLimits limits;  // server/CLI --image-min-tokens / --image-max-tokens
};
// "f32" | "bf16"; InvalidArgument otherwise.
StatusOr<VisionComputeType> ParseVisionComputeType(std::string_view name);
std::string_view VisionComputeTypeName(VisionComputeType type);

struct VisionLayerWeights {
  std::vector<float> ln1_w, ln1_b, ln2_w, ln2_b;  // [hidden]; biases empty for RMSNorm
  kernels::WeightView q, k, v, o;                 // [hidden, hidden]
  std::vector<float> q_b, k_b, v_b, o_b;          // [hidden]
  kernels::WeightView up, down;                   // [ffn, hidden], [hidden, ffn]
  std::vector<float> up_b, down_b;                // [ffn], [hidden]
  kernels::WeightView gate{};                     // kSwiGlu: [ffn, hidden]
  std::vector<float> gate_b;                      // kSwiGlu: [ffn]
  bool windowed = false;                          // window attention in this layer
  std::vector<float> ls1, ls2;                    // [hidden] layer scale; empty without
};

// Where a resumable encode of one image stands (VisionModel::EncodeSome). It keeps only
// what must survive between engine steps — the residual stream of the tile group in
// flight and its RoPE tables; every other activation lives in the shared VisionScratch.
struct EncodeProgress {
  int64_t next_tile = 0;   // first tile of the group in flight (or of the next group)
  int64_t group = 0;       // tiles in flight; 0 = the next group is not embedded yet
  int64_t next_layer = 0;  // layers already run on the group
  AlignedBuffer<float> x;  // [group * tower tokens, hidden]
  std::vector<float> rope_cos, rope_sin;
  bool done(const ImageLayout& layout) const { return next_tile >= layout.num_tiles; }
};

// Activations reused across Encode calls (grown on demand). T = tiles * tower tokens.
struct VisionScratch {
  AlignedBuffer<float> patches;   // [tiles * num_patches, 3*p*p] im2col rows
  AlignedBuffer<float> x, xn;     // [T, hidden]
  AlignedBuffer<float> q, k, v;   // [T, hidden]
  AlignedBuffer<float> attn;      // [T, hidden]
  AlignedBuffer<float> ffn;       // [T, ffn]
  AlignedBuffer<float> gate;      // [T, ffn] (kSwiGlu)
  AlignedBuffer<float> wq, wk, wv, wo;  // [T, hidden] window-ordered rows (window attention)
  std::vector<int32_t> window_order;    // patch index of each window-ordered row
  std::vector<int64_t> window_sizes;    // rows of each window, in order
  AlignedBuffer<float> features;  // [tiles * num_patches, hidden] projector input
  AlignedBuffer<float> pos;       // [num_patches, hidden] resampled position table
  AlignedBuffer<float> proj_tmp;  // projector intermediates
  AlignedBuffer<float> proj_tmp2;
  AlignedBuffer<float> proj_slice;  // one deepstack slice before it goes into the wide rows
  std::vector<float> rope_cos, rope_sin;  // kRope2d: [patches, head_dim / 2]
};

// Maps tower features to text-embedding rows. One implementation per family
// (families/<name>.cc), loaded by its VisionFamily.
class Projector {
 public:
  virtual ~Projector() = default;
  virtual int64_t output_width() const = 0;  // must equal the text model's hidden
  // Embedding rows of one tile of rows x cols patches.
  virtual int64_t TokensPerTile(int64_t rows, int64_t cols) const = 0;
  // Multiply-adds of the projector for one such tile.
  virtual int64_t MacsPerTile(int64_t rows, int64_t cols) const = 0;
  // features: [num_tiles, rows * cols, vision hidden] row-major patches (CLS removed);
  // out: [num_tiles * TokensPerTile(rows, cols), output_width()].
  virtual void Project(const float* features, int64_t num_tiles, int64_t rows, int64_t cols,
                       float* out, VisionScratch& scratch, ThreadPool* pool) const = 0;
  // Deepstack tap k (VisionConfig::deepstack_layers[k]): x is the residual stream after that
  // layer ([num_tiles, rows * cols, vision hidden]); writes the tap's slice of the same
  // `out` rows Project fills. Only projectors of towers with taps implement it.
  virtual void ProjectTap(int64_t /*tap*/, const float* /*x*/, int64_t /*num_tiles*/,
                          int64_t /*rows*/, int64_t /*cols*/, float* /*out*/,
                          VisionScratch& /*scratch*/, ThreadPool* /*pool*/) const {}
};

class VisionModel {
 public:
  static StatusOr<std::unique_ptr<VisionModel>> Load(const std::string& path,
                                                     const VisionLoadOptions& options = {});
  static StatusOr<std::unique_ptr<VisionModel>> Load(std::unique_ptr<gguf::File> file,
                                                     const VisionLoadOptions& options = {});

  const VisionConfig& config() const { return config_; }
  const VisionFamily& family() const { return *family_; }
  VisionComputeType compute_type() const { return compute_; }
  const gguf::File& file() const { return *file_; }
  // Bytes of the matrix copies made at load (BF16 conversions, prepacked panels); the
  // file pages still read at run time are file().PagesInUse().
  int64_t copy_bytes() const;
  // Embedding rows of one tile at the native image_size (what the benches encode).
  int64_t tokens_per_tile() const {
    return projector_->TokensPerTile(config_.patches_per_side, config_.patches_per_side);
  }
  int64_t output_width() const { return projector_->output_width(); }

  // The family's layout for a width x height image; limits of 0 take the defaults this
  // model was loaded with (VisionLoadOptions::limits).
  StatusOr<ImageLayout> Plan(int width, int height, const ImageTokenLimits& limits = {}) const;
  const ImageTokenLimits& default_limits() const { return limits_; }
  // The family's preprocessing for `layout` (from Plan on this image).
  media::PixelTiles Preprocess(const ImageLayout& layout, const media::Image& image,
                               media::BufferPool* pool, media::PreprocessScratch* scratch,
                               media::PreprocessTimings* timings = nullptr) const;
  int DecodeHint() const { return family_->DecodeHint(config_); }
  // FLOPs of one tile: patch embed, per layer 2*T*(4*d*d + 2*d*ffn) + attention 4*T*T*d,
  // projector.
  double FlopsPerTile() const;

  // How many tiles one Encode forward should take when a caller has many
  // (EncodeInForwards): 1 when the tower's matrices are quantized, 8 for float ones. Measured at
  // the smolvlm-256m preset (2 threads, bf16 attention): with a Q8_0 tower, 1 tile per
  // forward is 6-17% faster per tile than 8 (434-449 vs 464-539 ms; the int8 GEMMs gain
  // nothing from more tokens, while the element-wise passes over n x ffn activations leave
  // the caches); with an F32 tower 4 tiles per forward are 1-4% faster than 1 (the float
  // GEMM packs the weights once per call).
  int64_t tiles_per_forward() const { return tiles_per_forward_; }

  // InvalidArgument when the projector's output width is not the text model's hidden.
  Status CheckCompatible(const TextConfig& text) const;

  // tiles: [num_tiles, 3, image_size, image_size] normalized CHW floats (native tiles);
  // out: [num_tiles * tokens_per_tile(), output_width()].
  void Encode(const float* tiles, int64_t num_tiles, float* out, VisionScratch& scratch,
              ThreadPool* pool = nullptr) const;
  std::vector<float> Encode(const float* tiles, int64_t num_tiles,
                            ThreadPool* pool = nullptr) const;
  // Tiles of any size the tower takes: [num_tiles, 3, height, width];
  // out: [num_tiles * TokensPerTile, output_width()].
  void EncodeTiles(const float* tiles, int64_t num_tiles, int64_t height, int64_t width,
                   float* out, VisionScratch& scratch, ThreadPool* pool = nullptr) const;
  // One image's pixels (Preprocess output) in forwards of at most max_per_forward tiles
  // (0 = tiles_per_forward()): what the engine and the generate CLI use.
  // out: [layout.tokens, output_width()].
  void EncodeImage(const float* pixels, const ImageLayout& layout, float* out,
                   VisionScratch& scratch, ThreadPool* pool = nullptr,
                   int64_t max_per_forward = 0) const;

  // Resumable encode of one image (the engine's scheduled encoding, docs/architecture.md
  // "Scheduled encoding"): runs tower layers of `progress`'s tile group — at least one,
  // then more while the work stays within `budget` tower token-layers (tokens of the group
  // x layers run; 0 = no limit) — and the projector when a group's last layer is done,
  // writing that group's rows of out ([layout.tokens, output_width()]). Returns the
  // token-layers spent. Groups hold max_per_forward tiles (0 = tiles_per_forward()); a
  // dynamic-resolution image is one tile, so its one forward is split by layers.
  int64_t EncodeSome(const float* pixels, const ImageLayout& layout, float* out,
                     EncodeProgress& progress, int64_t budget, VisionScratch& scratch,
                     ThreadPool* pool = nullptr, int64_t max_per_forward = 0) const;
  // Tower token-layers of a whole image (what EncodeSome's budget counts).
  int64_t TokenLayers(const ImageLayout& layout) const;

  // The tower alone: writes the projector input ([num_tiles, patches, hidden]) to
  // scratch.features. Exposed for tests and benchmarks. Deepstack taps write their slices
  // of `out` (the projector's rows) when it is given, and are skipped when it is null.
  void RunTower(const float* tiles, int64_t num_tiles, int64_t height, int64_t width,
                VisionScratch& scratch, ThreadPool* pool, float* out = nullptr) const;

 private:
  VisionModel() = default;
  Status ReadConfig();
  Status LoadWeights();
  void ConvertMatricesToBf16();
  void PrepackMatrices();
  bool HasQuantizedMatrices() const;
  // rows x cols patches per tile.
  void Embed(const float* tiles, int64_t num_tiles, int64_t rows, int64_t cols, VisionScratch& s,
             ThreadPool* pool) const;
  void Layer(const VisionLayerWeights& l, int64_t num_tiles, int64_t rows, int64_t cols,
             VisionScratch& s, ThreadPool* pool) const;
  // Layer il, then its deepstack tap (if any) into `out` (skipped when null).
  void RunLayer(int64_t il, int64_t num_tiles, int64_t rows, int64_t cols, float* out,
                VisionScratch& s, ThreadPool* pool) const;
  void Norm(const float* x, const std::vector<float>& w, const std::vector<float>& b, int64_t n,
            float* y, ThreadPool* pool) const;
  // Attention of s.q/k/v into s.attn within windows (VisionConfig::window_patches).
  void WindowAttention(int64_t num_tiles, int64_t rows, int64_t cols, float scale,
                       VisionScratch& s, ThreadPool* pool) const;
  // kRope2d: cos/sin per patch of a rows x cols tile into s.rope_cos/sin ([np, hd/2]).
  void RopeTables(int64_t rows, int64_t cols, VisionScratch& s) const;
  // s.x after the last layer -> s.features (CLS dropped, post-LN).
  void Features(int64_t num_tiles, int64_t rows, int64_t cols, VisionScratch& s,
                ThreadPool* pool) const;

  std::unique_ptr<gguf::File> file_;
  const VisionFamily* family_ = nullptr;
  ImageTokenLimits limits_;
  VisionConfig config_;
  kernels::WeightView patch_w_{};  // [hidden, 3*p*p] (patch_pair: the two frames' sum)
  std::vector<float> patch_b_;     // [hidden]
  AlignedBuffer<float> patch_sum_;  // patch_pair: the summed kernel patch_w_ points at
  std::vector<float> pos_embd_;    // [tower tokens, hidden]
  std::vector<float> class_embd_;  // [hidden] or empty
  std::vector<float> pre_ln_w_, pre_ln_b_, post_ln_w_, post_ln_b_;
  std::vector<float> norm_embd_w_, norm_embd_b_;  // embd_norm; bias only for LayerNorm
  std::vector<VisionLayerWeights> layers_;
  int64_t tiles_per_forward_ = 8;
  std::unique_ptr<Projector> projector_;
  VisionComputeType compute_ = VisionComputeType::kF32;
  std::vector<AlignedBuffer<uint16_t>> bf16_matrices_;  // kBf16: converted tower matrices
  std::vector<AlignedBuffer<uint8_t>> prepacked_;       // Q8_0 matrices, panel layout
};

// The patch merge several projectors start with (pixel shuffle, 2x2 merger): each s x s
// block of patches becomes one row; merged token (X, Y), row-major over the (rows/s x
// cols/s) grid, is the concatenation over dy (outer) then dx of the patches at row
// sY + dy, column sX + dx — transformers' Idefics3 pixel_shuffle, Qwen2-VL's merger over
// its window-ordered patches, InternVL's pixel_shuffle v2 (vit.cc).
// features: [num_tiles, rows * cols, d]; out: [num_tiles * (rows/s) * (cols/s), s * s * d].
void MergePatches(const float* features, int64_t num_tiles, int64_t rows, int64_t cols,
                  int64_t d, int64_t s, float* out);

// A side x side position table ([side * side, d], row-major grid) resampled to a rows x cols
// patch grid: transformers' Glm4vVisionEmbeddings, i.e. torch grid_sample(mode="bicubic",
// align_corners=False, padding_mode="border") at patch (r, c)'s normalized centre — source
// coordinate (c + 0.5) * side / cols - 0.5 (likewise rows), cubic convolution with
// A = -0.75, taps outside the table clamped to its edge. out: [rows * cols, d].
void ResizePositionTable(const float* table, int64_t side, int64_t d, int64_t rows, int64_t cols,
                         float* out, ThreadPool* pool = nullptr);

// The same table resampled as transformers' Qwen3VLVisionModel.fast_pos_embed_interpolate:
// row r's source coordinate is torch.linspace(0, side - 1, rows)[r] in float32 (columns
// likewise), the table is read at its floor and floor + 1 (clamped to side - 1) with
// bilinear weights computed in float32, and the four terms summed in HF's order. The
// result is in row-major patch order (HF then permutes it to its 2x2-block order, which our
// row-major tower does not use). out: [rows * cols, d].
void ResizePositionTableBilinear(const float* table, int64_t side, int64_t d, int64_t rows,
                                 int64_t cols, float* out, ThreadPool* pool = nullptr);

// Loader helpers shared by the vision files (vision_model.cc).
StatusOr<kernels::WeightView> VisionMatrix(const gguf::File& file, const std::string& name,
                                           int64_t rows, int64_t cols);
// A tensor of GGUF shape `shape` (e.g. a conv kernel [kx, ky, in, out]) used as a rows x
// cols matrix; the shape's element count must be rows * cols.
StatusOr<kernels::WeightView> VisionMatrix(const gguf::File& file, const std::string& name,
                                           int64_t rows, int64_t cols,
                                           const std::vector<int64_t>& shape);
StatusOr<std::vector<float>> VisionVector(const gguf::File& file, const std::string& name,
                                          int64_t n);

}  // namespace vlserve::models
