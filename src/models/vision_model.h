// Vision towers (`mmproj` GGUFs, architecture `clip`) and their projectors.
//
// A VisionModel is a ViT (SigLIP for SmolVLM, CLIP ViT-L/14 for LLaVA-1.5) plus a projector
// that maps its patch features into the text model's embedding space. Like TextModel it is
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

namespace vlserve::models {

struct TextConfig;

struct VisionConfig {
  std::string projector_type;  // clip.projector_type: "idefics3" | "mlp"
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
};
// "f32" | "bf16"; InvalidArgument otherwise.
StatusOr<VisionComputeType> ParseVisionComputeType(std::string_view name);
std::string_view VisionComputeTypeName(VisionComputeType type);

struct VisionLayerWeights {
  std::vector<float> ln1_w, ln1_b, ln2_w, ln2_b;  // [hidden]
  kernels::WeightView q, k, v, o;                 // [hidden, hidden]
  std::vector<float> q_b, k_b, v_b, o_b;          // [hidden]
  kernels::WeightView up, down;                   // [ffn, hidden], [hidden, ffn]
  std::vector<float> up_b, down_b;                // [ffn], [hidden]
};

// Activations reused across Encode calls (grown on demand). T = tiles * tower tokens.
struct VisionScratch {
  AlignedBuffer<float> patches;   // [tiles * num_patches, 3*p*p] im2col rows
  AlignedBuffer<float> x, xn;     // [T, hidden]
  AlignedBuffer<float> q, k, v;   // [T, hidden]
  AlignedBuffer<float> attn;      // [T, hidden]
  AlignedBuffer<float> ffn;       // [T, ffn]
  AlignedBuffer<float> features;  // [tiles * num_patches, hidden] projector input
  AlignedBuffer<float> proj_tmp;  // projector intermediates
};

// Maps tower features to text-embedding rows. One implementation per clip.projector_type
// (projector_<name>.cc), registered in projector_registry.cc.
class Projector {
 public:
  virtual ~Projector() = default;
  virtual int64_t output_width() const = 0;     // must equal the text model's hidden
  virtual int64_t tokens_per_tile() const = 0;  // embedding rows per tile
  virtual int64_t macs_per_tile() const = 0;    // multiply-adds of the projector per tile
  // features: [num_tiles, num_patches, vision hidden] (CLS already removed);
  // out: [num_tiles * tokens_per_tile(), output_width()].
  virtual void Project(const float* features, int64_t num_tiles, float* out, VisionScratch& scratch,
                       ThreadPool* pool) const = 0;
};

// What a projector type needs from the tower, and how to load it.
struct ProjectorInfo {
  const char* name;   // clip.projector_type
  bool uses_post_ln;  // run v.post_ln (last-layer features) or not
  StatusOr<std::unique_ptr<Projector>> (*load)(const gguf::File& file, const VisionConfig& config);
};

const ProjectorInfo& Idefics3ProjectorInfo();
const ProjectorInfo& MlpProjectorInfo();
// All registered projectors; "idefics3, mlp".
const std::vector<const ProjectorInfo*>& ProjectorTypes();
std::string SupportedProjectorList();
// Unimplemented "mmproj projector_type 'x' is not supported; supported: idefics3, mlp".
StatusOr<const ProjectorInfo*> FindProjector(std::string_view name);

class VisionModel {
 public:
  static StatusOr<std::unique_ptr<VisionModel>> Load(const std::string& path,
                                                     const VisionLoadOptions& options = {});
  static StatusOr<std::unique_ptr<VisionModel>> Load(std::unique_ptr<gguf::File> file,
                                                     const VisionLoadOptions& options = {});

  const VisionConfig& config() const { return config_; }
  VisionComputeType compute_type() const { return compute_; }
  const gguf::File& file() const { return *file_; }
  int64_t tokens_per_tile() const { return projector_->tokens_per_tile(); }
  int64_t output_width() const { return projector_->output_width(); }
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

  // tiles: [num_tiles, 3, image_size, image_size] normalized CHW floats;
  // out: [num_tiles * tokens_per_tile(), output_width()].
  void Encode(const float* tiles, int64_t num_tiles, float* out, VisionScratch& scratch,
              ThreadPool* pool = nullptr) const;
  std::vector<float> Encode(const float* tiles, int64_t num_tiles,
                            ThreadPool* pool = nullptr) const;
  // The same in forwards of at most max_per_forward tiles (0 = tiles_per_forward()): what
  // callers with many tiles (the engine, the generate CLI) use.
  void EncodeInForwards(const float* tiles, int64_t num_tiles, float* out,
                        VisionScratch& scratch, ThreadPool* pool = nullptr,
                        int64_t max_per_forward = 0) const;

  // The tower alone: writes the projector input ([num_tiles, num_patches, hidden]) to
  // scratch.features. Exposed for tests and benchmarks.
  void RunTower(const float* tiles, int64_t num_tiles, VisionScratch& scratch,
                ThreadPool* pool) const;

 private:
  VisionModel() = default;
  Status ReadConfig();
  Status LoadWeights();
  void ConvertMatricesToBf16();
  void PrepackMatrices();
  bool HasQuantizedMatrices() const;
  void Embed(const float* tiles, int64_t num_tiles, VisionScratch& s, ThreadPool* pool) const;
  void Layer(const VisionLayerWeights& l, int64_t num_tiles, VisionScratch& s,
             ThreadPool* pool) const;

  std::unique_ptr<gguf::File> file_;
  const ProjectorInfo* info_ = nullptr;
  VisionConfig config_;
  kernels::WeightView patch_w_{};  // [hidden, 3*p*p]
  std::vector<float> patch_b_;     // [hidden]
  std::vector<float> pos_embd_;    // [tower tokens, hidden]
  std::vector<float> class_embd_;  // [hidden] or empty
  std::vector<float> pre_ln_w_, pre_ln_b_, post_ln_w_, post_ln_b_;
  std::vector<VisionLayerWeights> layers_;
  int64_t tiles_per_forward_ = 8;
  std::unique_ptr<Projector> projector_;
  VisionComputeType compute_ = VisionComputeType::kF32;
  std::vector<AlignedBuffer<uint16_t>> bf16_matrices_;  // kBf16: converted tower matrices
  std::vector<AlignedBuffer<uint8_t>> prepacked_;       // Q8_0 matrices, panel layout
};

// Loader helpers shared by the vision files (vision_model.cc).
StatusOr<kernels::WeightView> VisionMatrix(const gguf::File& file, const std::string& name,
                                           int64_t rows, int64_t cols);
StatusOr<std::vector<float>> VisionVector(const gguf::File& file, const std::string& name,
                                          int64_t n);

}  // namespace vlserve::models
