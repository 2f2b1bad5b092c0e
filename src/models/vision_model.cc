// VisionModel::Load: clip.* hyperparameters, then every tensor checked for presence, type
// and shape before the model is handed out; the family (family.cc) adds its spec and its
// projector.
#include "models/vision_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "base/check.h"
#include "models/text_model.h"

namespace vlserve::models {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

StatusOr<const gguf::TensorInfo*> CheckedTensor(const gguf::File& file, const std::string& name,
                                                const std::vector<int64_t>& shape) {
  const gguf::TensorInfo* t = file.FindTensor(name);
  if (t == nullptr) {
    return NotFoundError(fmt::format("mmproj tensor '{}' is missing", name));
  }
  // Trailing size-1 dimensions hold no data: InternVL's converter keeps HF's [1, 1, d] class
  // embedding and [1, N + 1, d] position table as ne = [d, 1, 1] and [d, N + 1, 1].
  std::vector<int64_t> got = t->shape;
  while (got.size() > shape.size() && got.back() == 1) got.pop_back();
  if (got != shape) {
    return InvalidArgumentError(fmt::format(
        "mmproj tensor '{}' has shape {}, expected {} from the clip.vision.* hyperparameters", name,
        ShapeString(t->shape), ShapeString(shape)));
  }
  const DTypeInfo& info = Info(t->type);
  if (!info.supported || shape[0] % info.block_size != 0) {
    return UnimplementedError(fmt::format(
        "mmproj tensor '{}' has weight type {} with rows of {} values, which vlserve cannot "
        "run; convert the mmproj to f16 or f32",
        name, info.name, shape[0]));
  }
  return t;
}

// A layer's matrices (the SwiGLU gate only where the tower has one).
std::vector<kernels::WeightView*> LayerMatrices(VisionLayerWeights& l) {
  std::vector<kernels::WeightView*> out = {&l.q, &l.k, &l.v, &l.o, &l.up, &l.down};
  if (l.gate.data != nullptr) out.push_back(&l.gate);
  return out;
}

Status Positive(const char* key, int64_t v) {
  if (v > 0) return OkStatus();
  return InvalidArgumentError(fmt::format("mmproj metadata '{}' = {} must be positive", key, v));
}

}  // namespace

StatusOr<kernels::WeightView> VisionMatrix(const gguf::File& file, const std::string& name,
                                           int64_t rows, int64_t cols) {
  ASSIGN_OR_RETURN(const gguf::TensorInfo* t, CheckedTensor(file, name, {cols, rows}));
  return kernels::WeightView{t->type, t->data, rows, cols};
}

StatusOr<kernels::WeightView> VisionMatrix(const gguf::File& file, const std::string& name,
                                           int64_t rows, int64_t cols,
                                           const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  CHECK(n == rows * cols) << name << ": shape does not hold a " << rows << " x " << cols
                          << " matrix";
  ASSIGN_OR_RETURN(const gguf::TensorInfo* t, CheckedTensor(file, name, shape));
  return kernels::WeightView{t->type, t->data, rows, cols};
}

StatusOr<std::vector<float>> VisionVector(const gguf::File& file, const std::string& name,
                                          int64_t n) {
  ASSIGN_OR_RETURN(const gguf::TensorInfo* t, CheckedTensor(file, name, {n}));
  std::vector<float> out(n);
  kernels::Dequantize(t->type, t->data, out.data(), n);
  return out;
}

StatusOr<VisionComputeType> ParseVisionComputeType(std::string_view name) {
  if (name == "f32") return VisionComputeType::kF32;
  if (name == "bf16") return VisionComputeType::kBf16;
  return InvalidArgumentError(
      fmt::format("vision compute type '{}' is not supported; use f32 or bf16", name));
}

std::string_view VisionComputeTypeName(VisionComputeType type) {
  return type == VisionComputeType::kBf16 ? "bf16" : "f32";
}

StatusOr<std::unique_ptr<VisionModel>> VisionModel::Load(const std::string& path,
                                                         const VisionLoadOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<gguf::File> file, gguf::File::Open(path));
  return Load(std::move(file), options);
}

StatusOr<std::unique_ptr<VisionModel>> VisionModel::Load(std::unique_ptr<gguf::File> file,
                                                         const VisionLoadOptions& options) {
  std::unique_ptr<VisionModel> model(new VisionModel());
  model->file_ = std::move(file);
  if (Status s = model->ReadConfig(); !s.ok()) return s.WithContext(model->file_->path());
  if (Status s = model->LoadWeights(); !s.ok()) return s.WithContext(model->file_->path());
  model->compute_ = options.compute;
  model->limits_ = options.limits;
  if (options.compute == VisionComputeType::kBf16) model->ConvertMatricesToBf16();
  model->PrepackMatrices();
  model->tiles_per_forward_ = model->HasQuantizedMatrices() ? 1 : 8;
  return model;
}

bool VisionModel::HasQuantizedMatrices() const {
  for (const VisionLayerWeights& l : layers_) {
    for (const kernels::WeightView* v : LayerMatrices(const_cast<VisionLayerWeights&>(l))) {
      if (Info(v->type).block_size > 1) return true;
    }
  }
  return false;
}

// Converts every F32/F16 tower matrix to an owned BF16 copy (round to nearest even) and
// points its WeightView there; the file's pages behind it are released (never read again).
void VisionModel::ConvertMatricesToBf16() {
  std::vector<kernels::WeightView*> views{&patch_w_};
  for (VisionLayerWeights& l : layers_) {
    for (kernels::WeightView* v : LayerMatrices(l)) views.push_back(v);
  }
  std::vector<float> row;
  for (kernels::WeightView* v : views) {
    if (v->type != DType::kF32 && v->type != DType::kF16) continue;
    AlignedBuffer<uint16_t> buf(v->rows * v->cols);
    row.resize(v->cols);
    const int64_t row_bytes = RowBytes(v->type, v->cols);
    for (int64_t r = 0; r < v->rows; ++r) {
      kernels::Dequantize(v->type, static_cast<const uint8_t*>(v->data) + r * row_bytes,
                          row.data(), v->cols);
      kernels::Quantize(DType::kBF16, row.data(), buf.data() + r * v->cols, v->cols);
    }
    file_->ReleasePages(v->data, static_cast<size_t>(v->rows * row_bytes));
    *v = kernels::WeightView{DType::kBF16, buf.data(), v->rows, v->cols};
    bf16_matrices_.push_back(std::move(buf));
  }
}

// Q8_0 tower matrices (llama.cpp's quantized mmproj files) get a copy in the int8 VNNI
// kernel's panel layout once, instead of a repack in every forward (kernels::PrepackWeights).
// The file's pages behind them are released: the panel kernel reads only the copy from
// kPackedMinTokens (8) rows on, and a tower forward has at least a tile's patches (only a
// tiny image on a dynamic-resolution tower could read the file's layout, which faults
// those pages back in). Without this the mmproj stayed resident twice.
void VisionModel::PrepackMatrices() {
  for (VisionLayerWeights& l : layers_) {
    for (kernels::WeightView* v : LayerMatrices(l)) {
      AlignedBuffer<uint8_t> packed = kernels::PrepackWeights(*v);
      if (packed.size() == 0) continue;
      v->prepacked = packed.data();
      prepacked_.push_back(std::move(packed));
      file_->ReleasePages(v->data, static_cast<size_t>(v->rows * RowBytes(v->type, v->cols)));
    }
  }
}

int64_t VisionModel::copy_bytes() const {
  int64_t bytes = 0;
  for (const auto& b : bf16_matrices_) bytes += static_cast<int64_t>(b.size() * sizeof(uint16_t));
  for (const auto& b : prepacked_) bytes += static_cast<int64_t>(b.size());
  return bytes;
}

Status VisionModel::ReadConfig() {
  const gguf::File& f = *file_;
  ASSIGN_OR_RETURN(std::string arch, f.GetStringOr("general.architecture", ""));
  if (arch != "clip") {
    return InvalidArgumentError(fmt::format(
        "--mmproj expects a vision projector GGUF (general.architecture 'clip'), got '{}'; "
        "pass the text model with -m and its mmproj file with --mmproj",
        arch));
  }
  ASSIGN_OR_RETURN(bool has_vision, f.GetBoolOr("clip.has_vision_encoder", true));
  if (!has_vision) {
    return InvalidArgumentError("mmproj has no vision encoder (clip.has_vision_encoder = false)");
  }
  // clip.vision.feature_layer (llama.cpp's converters): the tower layers whose outputs the
  // projector reads, counted from 1 (HF hidden_states[i], 0 = the embeddings). One layer F
  // (llama.cpp's LLaVA converter writes [23] for LLaVA-1.5's select layer -2) means: run F
  // layers, no post-LN. Several (LLaVA-NeXT / Granite vision concatenate them) are not
  // supported: running such a tower as if it used one layer would give wrong features.
  std::vector<int64_t> feature_layers;
  if (f.Find("clip.vision.feature_layer") != nullptr) {
    ASSIGN_OR_RETURN(feature_layers, f.GetIntArray("clip.vision.feature_layer"));
    if (feature_layers.size() != 1) {
      return UnimplementedError(fmt::format(
          "this mmproj sets clip.vision.feature_layer to {} layers (features concatenated "
          "from several layers, e.g. LLaVA-NeXT / Granite vision), which vlserve does not "
          "support yet; supported: {}",
          feature_layers.size(), SupportedProjectorList()));
    }
  }
  VisionConfig& c = config_;
  ASSIGN_OR_RETURN(c.projector_type, f.GetStringOr("clip.projector_type", "mlp"));
  ASSIGN_OR_RETURN(family_, FindVisionFamily(c.projector_type));
  const std::string v = "clip.vision.";
  ASSIGN_OR_RETURN(c.image_size, f.GetInt(v + "image_size"));
  ASSIGN_OR_RETURN(c.patch_size, f.GetInt(v + "patch_size"));
  ASSIGN_OR_RETURN(c.hidden, f.GetInt(v + "embedding_length"));
  ASSIGN_OR_RETURN(c.ffn, f.GetInt(v + "feed_forward_length"));
  ASSIGN_OR_RETURN(c.num_layers, f.GetInt(v + "block_count"));
  ASSIGN_OR_RETURN(c.num_heads, f.GetInt(v + "attention.head_count"));
  ASSIGN_OR_RETURN(double eps, f.GetFloat(v + "attention.layer_norm_epsilon"));
  ASSIGN_OR_RETURN(c.projection_dim, f.GetIntOr(v + "projection_dim", 0));
  ASSIGN_OR_RETURN(c.scale_factor, f.GetIntOr(v + "projector.scale_factor", 1));
  ASSIGN_OR_RETURN(c.preproc_image_size, f.GetIntOr(v + "preproc_image_size", 0));
  ASSIGN_OR_RETURN(c.use_gelu, f.GetBoolOr("clip.use_gelu", false));
  for (auto [key, val] : {std::pair{"image_size", c.image_size},
                          {"patch_size", c.patch_size},
                          {"embedding_length", c.hidden},
                          {"feed_forward_length", c.ffn},
                          {"block_count", c.num_layers},
                          {"attention.head_count", c.num_heads},
                          {"projector.scale_factor", c.scale_factor}}) {
    RETURN_IF_ERROR(Positive(key, val));
  }
  if (c.image_size % c.patch_size != 0 || c.hidden % c.num_heads != 0 || !(eps > 0)) {
    return InvalidArgumentError(fmt::format(
        "mmproj hyperparameters inconsistent: image_size {} must be a multiple of patch_size "
        "{}, embedding_length {} of head_count {}, and layer_norm_epsilon ({}) positive",
        c.image_size, c.patch_size, c.hidden, c.num_heads, eps));
  }
  c.eps = static_cast<float>(eps);
  c.head_dim = c.hidden / c.num_heads;
  c.patches_per_side = c.image_size / c.patch_size;
  c.num_patches = c.patches_per_side * c.patches_per_side;
  for (auto [key, dst] : {std::pair{"image_mean", &c.image_mean}, {"image_std", &c.image_std}}) {
    if (f.Find(v + key) == nullptr) continue;
    ASSIGN_OR_RETURN(std::vector<float> vals, f.GetFloatArray(v + key));
    if (vals.size() != 3) {
      return InvalidArgumentError(
          fmt::format("mmproj 'clip.vision.{}' has {} values, expected 3", key, vals.size()));
    }
    for (int i = 0; i < 3; ++i) (*dst)[i] = vals[i];
  }
  c.class_token = f.FindTensor("v.class_embd") != nullptr;
  c.pre_ln = f.FindTensor("v.pre_ln.weight") != nullptr;
  c.post_ln = family_->uses_post_ln() && f.FindTensor("v.post_ln.weight") != nullptr;
  if (!feature_layers.empty()) {
    if (feature_layers[0] < 1 || feature_layers[0] > c.num_layers) {
      return InvalidArgumentError(fmt::format(
          "mmproj 'clip.vision.feature_layer' = {} is outside the {} stored layers",
          feature_layers[0], c.num_layers));
    }
    c.num_layers = feature_layers[0];  // the layers past it are never run (nor loaded)
    c.post_ln = false;
  }
  c.mlp = c.use_gelu ? VisionMlp::kGeluTanh : VisionMlp::kQuickGelu;
  // Real Qwen2-VL files carry the LLM width in feed_forward_length (a converter quirk):
  // the FFN tensors' own shape is the truth when they disagree.
  if (const gguf::TensorInfo* up = f.FindTensor("v.blk.0.ffn_up.weight");
      up != nullptr && up->shape.size() == 2 && up->shape[0] == c.hidden && up->shape[1] > 0) {
    c.ffn = up->shape[1];
  }
  return family_->Configure(f, &c);
}

Status VisionModel::LoadWeights() {
  const gguf::File& f = *file_;
  const VisionConfig& c = config_;
  const int64_t d = c.hidden, p = c.patch_size;
  ASSIGN_OR_RETURN(const gguf::TensorInfo* pw,
                   CheckedTensor(f, "v.patch_embd.weight", {p, p, 3, d}));
  patch_w_ = kernels::WeightView{pw->type, pw->data, d, 3 * p * p};
  if (c.patch_pair) {
    // Conv3d over two equal frames: one conv with the kernels' sum (an owned F32 copy).
    ASSIGN_OR_RETURN(const gguf::TensorInfo* pw1,
                     CheckedTensor(f, "v.patch_embd.weight.1", {p, p, 3, d}));
    AlignedBuffer<float> sum(d * 3 * p * p), tmp(d * 3 * p * p);
    kernels::Dequantize(pw->type, pw->data, sum.data(), d * 3 * p * p);
    kernels::Dequantize(pw1->type, pw1->data, tmp.data(), d * 3 * p * p);
    kernels::Add(sum.data(), tmp.data(), sum.data(), d * 3 * p * p);
    patch_w_ = kernels::WeightView{DType::kF32, sum.data(), d, 3 * p * p};
    patch_sum_ = std::move(sum);
  }
  if (f.FindTensor("v.patch_embd.bias") != nullptr) {  // SigLIP has one, CLIP does not
    ASSIGN_OR_RETURN(patch_b_, VisionVector(f, "v.patch_embd.bias", d));
  } else {
    patch_b_.assign(d, 0.0f);
  }
  if (c.embd_norm) {
    ASSIGN_OR_RETURN(norm_embd_w_, VisionVector(f, "v.norm_embd.weight", d));
    if (c.norm == VisionNorm::kLayerNorm) {
      ASSIGN_OR_RETURN(norm_embd_b_, VisionVector(f, "v.norm_embd.bias", d));
    }
  }
  if (c.pos_resize_side > 0) {
    const int64_t positions = c.pos_resize_side * c.pos_resize_side;
    ASSIGN_OR_RETURN(const gguf::TensorInfo* pos,
                     CheckedTensor(f, "v.position_embd.weight", {d, positions}));
    pos_embd_.resize(positions * d);
    kernels::Dequantize(pos->type, pos->data, pos_embd_.data(), positions * d);
  }
  if (c.positions == VisionPositions::kLearned) {
    const int64_t positions = c.tokens_per_tile_in_tower();
    ASSIGN_OR_RETURN(const gguf::TensorInfo* pos,
                     CheckedTensor(f, "v.position_embd.weight", {d, positions}));
    pos_embd_.resize(positions * d);
    kernels::Dequantize(pos->type, pos->data, pos_embd_.data(), positions * d);
  }
  if (c.class_token) {
    ASSIGN_OR_RETURN(class_embd_, VisionVector(f, "v.class_embd", d));
  }
  if (c.pre_ln) {
    ASSIGN_OR_RETURN(pre_ln_w_, VisionVector(f, "v.pre_ln.weight", d));
    ASSIGN_OR_RETURN(pre_ln_b_, VisionVector(f, "v.pre_ln.bias", d));
  }
  if (c.post_ln) {
    ASSIGN_OR_RETURN(post_ln_w_, VisionVector(f, "v.post_ln.weight", d));
    if (c.norm == VisionNorm::kLayerNorm) {
      ASSIGN_OR_RETURN(post_ln_b_, VisionVector(f, "v.post_ln.bias", d));
    }
  }
  // A bias vector; zeros where the tower's linears may lack them and this one is absent.
  auto bias = [&](const std::string& name, int64_t n) -> StatusOr<std::vector<float>> {
    if (c.optional_biases && f.FindTensor(name) == nullptr) return std::vector<float>(n, 0.0f);
    return VisionVector(f, name, n);
  };
  layers_.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    VisionLayerWeights& l = layers_[i];
    const std::string b = fmt::format("v.blk.{}.", i);
    ASSIGN_OR_RETURN(l.ln1_w, VisionVector(f, b + "ln1.weight", d));
    ASSIGN_OR_RETURN(l.ln2_w, VisionVector(f, b + "ln2.weight", d));
    if (c.norm == VisionNorm::kLayerNorm) {
      ASSIGN_OR_RETURN(l.ln1_b, VisionVector(f, b + "ln1.bias", d));
      ASSIGN_OR_RETURN(l.ln2_b, VisionVector(f, b + "ln2.bias", d));
    }
    const std::pair<const char*, std::pair<kernels::WeightView*, std::vector<float>*>> attn[] = {
        {"attn_q", {&l.q, &l.q_b}},
        {"attn_k", {&l.k, &l.k_b}},
        {"attn_v", {&l.v, &l.v_b}},
        {"attn_out", {&l.o, &l.o_b}}};
    for (const auto& [name, dst] : attn) {
      if (c.fused_qkv && dst.first != &l.o) continue;
      ASSIGN_OR_RETURN(*dst.first, VisionMatrix(f, b + name + ".weight", d, d));
      ASSIGN_OR_RETURN(*dst.second, bias(b + name + ".bias", d));
    }
    if (c.fused_qkv) {
      // Rows [0, d) are q, [d, 2d) k, [2d, 3d) v (HF's qkv(x).reshape(n, 3, heads, hd)):
      // three views into the one mapped matrix.
      ASSIGN_OR_RETURN(const kernels::WeightView qkv,
                       VisionMatrix(f, b + "attn_qkv.weight", 3 * d, d));
      ASSIGN_OR_RETURN(const std::vector<float> qkv_b, bias(b + "attn_qkv.bias", 3 * d));
      const int64_t block = RowBytes(qkv.type, d) * d;
      kernels::WeightView* views[] = {&l.q, &l.k, &l.v};
      std::vector<float>* biases[] = {&l.q_b, &l.k_b, &l.v_b};
      for (int j = 0; j < 3; ++j) {
        *views[j] =
            kernels::WeightView{qkv.type, static_cast<const uint8_t*>(qkv.data) + j * block, d, d};
        biases[j]->assign(qkv_b.begin() + j * d, qkv_b.begin() + (j + 1) * d);
      }
    }
    ASSIGN_OR_RETURN(l.up, VisionMatrix(f, b + "ffn_up.weight", c.ffn, d));
    ASSIGN_OR_RETURN(l.up_b, bias(b + "ffn_up.bias", c.ffn));
    ASSIGN_OR_RETURN(l.down, VisionMatrix(f, b + "ffn_down.weight", d, c.ffn));
    ASSIGN_OR_RETURN(l.down_b, bias(b + "ffn_down.bias", d));
    if (c.mlp == VisionMlp::kSwiGlu) {
      ASSIGN_OR_RETURN(l.gate, VisionMatrix(f, b + "ffn_gate.weight", c.ffn, d));
      ASSIGN_OR_RETURN(l.gate_b, bias(b + "ffn_gate.bias", c.ffn));
    }
    l.windowed = c.window_pattern > 0 && (i + 1) % c.window_pattern != 0;
    if (c.layer_scale) {
      ASSIGN_OR_RETURN(l.ls1, VisionVector(f, b + "ls1.weight", d));
      ASSIGN_OR_RETURN(l.ls2, VisionVector(f, b + "ls2.weight", d));
    }
  }
  ASSIGN_OR_RETURN(projector_, family_->LoadProjector(f, c));
  return OkStatus();
}

double VisionModel::FlopsPerTile() const {
  const VisionConfig& c = config_;
  const double t = static_cast<double>(c.tokens_per_tile_in_tower());
  const double d = static_cast<double>(c.hidden), ffn = static_cast<double>(c.ffn);
  const double patch = 2.0 * c.num_patches * d * 3 * c.patch_size * c.patch_size;
  const double layer = 2.0 * t * (4 * d * d + 2 * d * ffn) + 4.0 * t * t * d;
  return patch + layer * c.num_layers +
         2.0 * projector_->MacsPerTile(c.patches_per_side, c.patches_per_side);
}

Status VisionModel::CheckCompatible(const TextConfig& text) const {
  // Deepstack text models (qwen3vl) take rows of (1 + n_deepstack) x hidden: the main
  // embedding, then one slice per deepstack layer. The counts must agree too: 3 taps of
  // 2048 and 1 of 4096 are equally wide.
  const auto taps = static_cast<int64_t>(config_.deepstack_layers.size());
  if (taps != text.deepstack_layers) {
    return InvalidArgumentError(fmt::format(
        "the mmproj feeds {} deepstack layers but the text model ({}) takes {} "
        "(n_deepstack_layers); use the mmproj file made for this text model",
        taps, text.arch, text.deepstack_layers));
  }
  if (output_width() != text.embedding_width()) {
    return InvalidArgumentError(fmt::format(
        "the mmproj's projector outputs {}-wide embeddings but the text model takes {} "
        "(hidden size {} x (1 + {} deepstack layers)); use the mmproj file made for this "
        "text model",
        output_width(), text.embedding_width(), text.hidden, text.deepstack_layers));
  }
  return OkStatus();
}

StatusOr<ImageLayout> VisionModel::Plan(int width, int height,
                                        const ImageTokenLimits& limits) const {
  ImageTokenLimits l = limits;
  if (l.min_tokens <= 0) l.min_tokens = limits_.min_tokens;
  if (l.max_tokens <= 0) l.max_tokens = limits_.max_tokens;
  if (width < 1 || height < 1) {
    return InvalidArgumentError(fmt::format("image of {}x{} pixels is empty", width, height));
  }
  ASSIGN_OR_RETURN(ImageLayout layout, family_->Plan(config_, width, height, l));
  if (l.max_tokens > 0 && layout.tokens > l.max_tokens) {
    return OutOfRangeError(fmt::format(
        "the image needs {} tokens with {}'s preprocessing, above the limit of {} "
        "(image_max_tokens)",
        layout.tokens, family_->name(), l.max_tokens));
  }
  return layout;
}

media::PixelTiles VisionModel::Preprocess(const ImageLayout& layout, const media::Image& image,
                                          media::BufferPool* pool,
                                          media::PreprocessScratch* scratch,
                                          media::PreprocessTimings* timings) const {
  return family_->Preprocess(config_, layout, image, pool, scratch, timings);
}

void VisionModel::EncodeTiles(const float* tiles, int64_t num_tiles, int64_t height,
                              int64_t width, float* out, VisionScratch& s,
                              ThreadPool* pool) const {
  if (num_tiles <= 0) return;
  const int64_t p = config_.patch_size;
  CHECK(height % p == 0 && width % p == 0 &&
        (config_.dynamic_size || (height == config_.image_size && width == config_.image_size)))
      << "tile of " << width << "x" << height << " for a tower of " << config_.image_size;
  RunTower(tiles, num_tiles, height, width, s, pool, out);
  projector_->Project(s.features.data(), num_tiles, height / p, width / p, out, s, pool);
}

void VisionModel::Encode(const float* tiles, int64_t num_tiles, float* out, VisionScratch& s,
                         ThreadPool* pool) const {
  EncodeTiles(tiles, num_tiles, config_.image_size, config_.image_size, out, s, pool);
}

void VisionModel::EncodeImage(const float* pixels, const ImageLayout& layout, float* out,
                              VisionScratch& scratch, ThreadPool* pool,
                              int64_t max_per_forward) const {
  EncodeProgress progress;
  EncodeSome(pixels, layout, out, progress, /*budget=*/0, scratch, pool, max_per_forward);
}

std::vector<float> VisionModel::Encode(const float* tiles, int64_t num_tiles,
                                       ThreadPool* pool) const {
  VisionScratch scratch;
  std::vector<float> out(num_tiles * tokens_per_tile() * output_width());
  Encode(tiles, num_tiles, out.data(), scratch, pool);
  return out;
}

}  // namespace vlserve::models
