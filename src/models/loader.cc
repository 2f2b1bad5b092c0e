// TextModel::Load: hyperparameters from metadata, then every tensor checked for presence,
// type and shape against them before the model is handed out.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <utility>

#include "models/text_model.h"

namespace vlserve::models {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// Finds `name` and checks its GGUF shape (ne0 first) and that we have kernels for its type.
StatusOr<const gguf::TensorInfo*> CheckedTensor(const gguf::File& file, const std::string& name,
                                                const std::vector<int64_t>& shape) {
  const gguf::TensorInfo* t = file.FindTensor(name);
  if (t == nullptr) {
    return NotFoundError(fmt::format("tensor '{}' is missing", name));
  }
  if (t->shape != shape) {
    return InvalidArgumentError(fmt::format(
        "tensor '{}' has shape {}, expected {} from the model's hyperparameters", name,
        ShapeString(t->shape), ShapeString(shape)));
  }
  const DTypeInfo& info = Info(t->type);
  if (!info.supported) {
    return UnimplementedError(fmt::format(
        "tensor '{}' has weight type {}, which vlserve does not support; requantize it "
        "(supported: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)",
        name, info.name));
  }
  if (shape[0] % info.block_size != 0) {
    return InvalidArgumentError(fmt::format(
        "tensor '{}' of type {} has rows of {} values, not a multiple of its block size {}",
        name, info.name, shape[0], info.block_size));
  }
  return t;
}

StatusOr<kernels::WeightView> Matrix(const gguf::File& file, const std::string& name,
                                     int64_t rows, int64_t cols) {
  ASSIGN_OR_RETURN(const gguf::TensorInfo* t, CheckedTensor(file, name, {cols, rows}));
  return kernels::WeightView{t->type, t->data, rows, cols};
}

// 1-D tensors (norm weights, biases) are small: copy them to float32 once.
StatusOr<std::vector<float>> Vector(const gguf::File& file, const std::string& name,
                                    int64_t n) {
  ASSIGN_OR_RETURN(const gguf::TensorInfo* t, CheckedTensor(file, name, {n}));
  std::vector<float> out(n);
  kernels::Dequantize(t->type, t->data, out.data(), n);
  return out;
}

Status Positive(const std::string& key, int64_t v) {
  if (v > 0) return OkStatus();
  return InvalidArgumentError(fmt::format("metadata '{}' = {} must be positive", key, v));
}

}  // namespace

StatusOr<std::unique_ptr<TextModel>> TextModel::Load(std::unique_ptr<gguf::File> file,
                                                     const ArchTraits& traits) {
  std::unique_ptr<TextModel> model(new TextModel());
  model->file_ = std::move(file);
  model->traits_ = &traits;
  RETURN_IF_ERROR(model->ReadConfig());
  RETURN_IF_ERROR(model->LoadWeights());
  return model;
}

Status TextModel::ReadConfig() {
  const gguf::File& f = *file_;
  const std::string a = traits_->name;
  TextConfig& c = config_;
  c.arch = a;
  ASSIGN_OR_RETURN(c.name, f.GetStringOr("general.name", ""));
  ASSIGN_OR_RETURN(c.context_length, f.GetInt(a + ".context_length"));
  ASSIGN_OR_RETURN(c.hidden, f.GetInt(a + ".embedding_length"));
  ASSIGN_OR_RETURN(c.num_layers, f.GetInt(a + ".block_count"));
  ASSIGN_OR_RETURN(c.ffn, f.GetInt(a + ".feed_forward_length"));
  ASSIGN_OR_RETURN(c.num_heads, f.GetInt(a + ".attention.head_count"));
  ASSIGN_OR_RETURN(c.num_kv_heads, f.GetIntOr(a + ".attention.head_count_kv", c.num_heads));
  ASSIGN_OR_RETURN(double eps, f.GetFloat(a + ".attention.layer_norm_rms_epsilon"));
  ASSIGN_OR_RETURN(c.rope_base, f.GetFloatOr(a + ".rope.freq_base", traits_->default_rope_base));
  c.rms_eps = static_cast<float>(eps);
  for (auto [key, v] : {std::pair{".context_length", c.context_length},
                        {".embedding_length", c.hidden},
                        {".block_count", c.num_layers},
                        {".feed_forward_length", c.ffn},
                        {".attention.head_count", c.num_heads},
                        {".attention.head_count_kv", c.num_kv_heads}}) {
    RETURN_IF_ERROR(Positive(a + key, v));
  }
  // attention.key_length (llama.cpp's n_embd_head_k; Qwen3's head_dim) may differ from
  // hidden / heads: Qwen3-VL-4B has hidden 2560, 32 heads of 128.
  const bool has_key_length = f.Find(a + ".attention.key_length") != nullptr;
  if ((!has_key_length && c.hidden % c.num_heads != 0) || c.num_heads % c.num_kv_heads != 0) {
    return InvalidArgumentError(fmt::format(
        "embedding_length {} must be divisible by head_count {} (or attention.key_length "
        "given), and head_count by head_count_kv {}",
        c.hidden, c.num_heads, c.num_kv_heads));
  }
  ASSIGN_OR_RETURN(c.head_dim, f.GetIntOr(a + ".attention.key_length", c.hidden / c.num_heads));
  ASSIGN_OR_RETURN(int64_t value_length, f.GetIntOr(a + ".attention.value_length", c.head_dim));
  if (c.head_dim <= 0 || value_length != c.head_dim) {
    return InvalidArgumentError(
        fmt::format("metadata '{0}.attention.key_length' = {1} must be positive, and "
                    "'{0}.attention.value_length' ({2}) equal to it",
                    a, c.head_dim, value_length));
  }
  ASSIGN_OR_RETURN(c.rope_dims, f.GetIntOr(a + ".rope.dimension_count", c.head_dim));
  if (c.rope_dims <= 0 || c.rope_dims > c.head_dim || c.rope_dims % 2 != 0) {
    return InvalidArgumentError(
        fmt::format("metadata '{}.rope.dimension_count' = {} must be even and in (0, {}]", a,
                    c.rope_dims, c.head_dim));
  }
  if (traits_->mrope && f.Find(a + ".rope.dimension_sections") != nullptr) {
    ASSIGN_OR_RETURN(std::vector<int64_t> sections, f.GetIntArray(a + ".rope.dimension_sections"));
    int64_t sum = 0;
    for (size_t i = 0; i < sections.size() && i < 4; ++i) {
      if (sections[i] < 0) sum = -1 << 20;
      c.rope_sections.pairs[i] = static_cast<int32_t>(std::max<int64_t>(sections[i], 0));
      sum += sections[i];
    }
    if (sections.size() > 4 || sum <= 0 || 2 * sum > c.rope_dims) {
      return InvalidArgumentError(fmt::format(
          "metadata '{}.rope.dimension_sections' must hold at most 4 non-negative section "
          "sizes adding up to at most rope dimensions / 2 = {}",
          a, c.rope_dims / 2));
    }
  }
  c.rope_sections.interleaved = traits_->interleaved_mrope;
  if (traits_->deepstack) {
    ASSIGN_OR_RETURN(c.deepstack_layers, f.GetIntOr(a + ".n_deepstack_layers", 0));
    if (c.deepstack_layers < 0 || c.deepstack_layers > c.num_layers) {
      return InvalidArgumentError(
          fmt::format("metadata '{}.n_deepstack_layers' = {} must be in [0, block_count {}]", a,
                      c.deepstack_layers, c.num_layers));
    }
  }
  c.rope_style = traits_->neox_with_sections && c.rope_sections.active()
                     ? kernels::RopeStyle::kNeox
                     : traits_->rope_style;
  // GLM-OCR-style files append multi-token-prediction layers to block_count; llama.cpp
  // skips them, and running them as decoder layers would give wrong logits.
  ASSIGN_OR_RETURN(int64_t nextn, f.GetIntOr(a + ".nextn_predict_layers", 0));
  if (nextn > 0) {
    return UnimplementedError(fmt::format(
        "metadata '{}.nextn_predict_layers' = {}: models with next-token-prediction layers "
        "(e.g. GLM-OCR) are not supported",
        a, nextn));
  }
  if (!(c.rope_base > 0) || !(eps > 0)) {
    return InvalidArgumentError(fmt::format(
        "rope.freq_base ({}) and layer_norm_rms_epsilon ({}) must be positive", c.rope_base, eps));
  }
  const gguf::TensorInfo* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr) return NotFoundError("tensor 'token_embd.weight' is missing");
  if (embd->shape.size() != 2) {
    return InvalidArgumentError(fmt::format("tensor 'token_embd.weight' has shape {}, expected "
                                            "[{}, vocab]",
                                            ShapeString(embd->shape), c.hidden));
  }
  c.vocab = embd->shape[1];
  c.tied_output = f.FindTensor("output.weight") == nullptr;
  return OkStatus();
}

Status TextModel::LoadWeights() {
  const gguf::File& f = *file_;
  const TextConfig& c = config_;
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  ASSIGN_OR_RETURN(token_embd_, Matrix(f, "token_embd.weight", c.vocab, c.hidden));
  ASSIGN_OR_RETURN(output_norm_, Vector(f, "output_norm.weight", c.hidden));
  if (c.tied_output) {
    output_ = token_embd_;
  } else {
    ASSIGN_OR_RETURN(output_, Matrix(f, "output.weight", c.vocab, c.hidden));
  }
  layers_.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = layers_[i];
    const std::string p = fmt::format("blk.{}.", i);
    ASSIGN_OR_RETURN(l.attn_norm, Vector(f, p + "attn_norm.weight", c.hidden));
    ASSIGN_OR_RETURN(l.ffn_norm, Vector(f, p + "ffn_norm.weight", c.hidden));
    if (f.FindTensor(p + "attn_q.weight") == nullptr &&
        f.FindTensor(p + "attn_qkv.weight") != nullptr) {
      return UnimplementedError(fmt::format(
          "tensor '{}attn_qkv.weight' (Q, K and V fused) is not supported; convert the model "
          "with llama.cpp's convert_hf_to_gguf.py, which writes attn_q, attn_k and attn_v",
          p));
    }
    ASSIGN_OR_RETURN(l.wq, Matrix(f, p + "attn_q.weight", q_dim, c.hidden));
    ASSIGN_OR_RETURN(l.wk, Matrix(f, p + "attn_k.weight", kv_dim, c.hidden));
    ASSIGN_OR_RETURN(l.wv, Matrix(f, p + "attn_v.weight", kv_dim, c.hidden));
    ASSIGN_OR_RETURN(l.wo, Matrix(f, p + "attn_output.weight", c.hidden, q_dim));
    if (traits_->fused_gate_up) {
      ASSIGN_OR_RETURN(kernels::WeightView gate_up,
                       Matrix(f, p + "ffn_up.weight", 2 * c.ffn, c.hidden));
      l.w_gate = gate_up;
      l.w_gate.rows = c.ffn;
      l.w_up = l.w_gate;
      l.w_up.data = static_cast<const uint8_t*>(gate_up.data) +
                    c.ffn * RowBytes(gate_up.type, c.hidden);
    } else {
      ASSIGN_OR_RETURN(l.w_gate, Matrix(f, p + "ffn_gate.weight", c.ffn, c.hidden));
      ASSIGN_OR_RETURN(l.w_up, Matrix(f, p + "ffn_up.weight", c.ffn, c.hidden));
    }
    ASSIGN_OR_RETURN(l.w_down, Matrix(f, p + "ffn_down.weight", c.hidden, c.ffn));
    if (traits_->qk_norm) {
      ASSIGN_OR_RETURN(l.q_norm, Vector(f, p + "attn_q_norm.weight", c.head_dim));
      ASSIGN_OR_RETURN(l.k_norm, Vector(f, p + "attn_k_norm.weight", c.head_dim));
    }
    if (traits_->post_norms) {
      ASSIGN_OR_RETURN(l.post_attn_norm, Vector(f, p + "post_attention_norm.weight", c.hidden));
      ASSIGN_OR_RETURN(l.post_ffn_norm, Vector(f, p + "post_ffw_norm.weight", c.hidden));
    }
    if (traits_->qkv_bias || traits_->optional_qkv_bias) {
      for (auto [bias, name, n] : {std::tuple{&l.q_bias, "attn_q.bias", q_dim},
                                   {&l.k_bias, "attn_k.bias", kv_dim},
                                   {&l.v_bias, "attn_v.bias", kv_dim}}) {
        if (traits_->qkv_bias || f.FindTensor(p + name) != nullptr) {
          ASSIGN_OR_RETURN(*bias, Vector(f, p + name, n));
        }
      }
    }
  }
  weight_bytes_ = 0;
  for (const gguf::TensorInfo& t : f.tensors()) weight_bytes_ += t.num_bytes;
  // Every projection the forward pass multiplies by (not token_embd_, whose rows are
  // looked up): Q8_0, Q4_0, Q5_0 and Q4_K ones get a packed copy on AVX-512 (Q8_0 +6% of
  // their bytes, the others the same bytes; Q4_0 / Q5_0 / Q4_K file pages are then only
  // read here, Q8_0's also by decode).
  std::vector<kernels::WeightView*> matrices = {&output_};
  for (LayerWeights& l : layers_) {
    for (kernels::WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      matrices.push_back(w);
    }
  }
  // Decode streams every matrix once per token. What it reads from the file is copied to
  // memory on transparent huge pages (a file mapping is on 4 KiB pages: a TLB miss every
  // 64 cache lines; ~1.25x faster streaming measured, docs/kernels.md), and the file's
  // pages behind copied or prepacked-only matrices are released (not read again; RSS
  // stays about one copy of the weights). token_embd_'s rows are looked up in the file,
  // so an output matrix tied to it keeps its pages unless it gets a huge-page copy, which
  // the lookups then read too. Each matrix is released as soon as its copy exists, so
  // loading never holds the file's pages and all the copies at once (smolvlm-500m Q4_0:
  // peak RSS 412 -> see docs/serve.md). The releases are the residency record that the
  // start-up prefault follows (gguf::File::PagesInUse): a released page is not read again.
  const bool tied = output_.data == token_embd_.data;
  for (kernels::WeightView* w : matrices) {
    const size_t bytes = static_cast<size_t>(RowBytes(w->type, w->cols) * w->rows);
    const bool shared = tied && w == &output_;
    AlignedBuffer<uint8_t> packed = kernels::PrepackWeights(*w);
    if (packed.size() > 0) {
      w->prepacked = packed.data();
      prepacked_.push_back(std::move(packed));
    }
    if (kernels::ReadsOnlyPrepacked(*w)) {
      if (!shared) file_->ReleasePages(w->data, bytes);
      continue;
    }
    if (!HugePagesEnabled()) continue;
    AlignedBuffer<uint8_t> copy;
    copy.Resize(bytes, Pages::kHuge);
    std::memcpy(copy.data(), w->data, bytes);
    file_->ReleasePages(w->data, bytes);
    if (shared) token_embd_.data = copy.data();
    w->data = copy.data();
    prepacked_.push_back(std::move(copy));
  }
  return OkStatus();
}

int64_t TextModel::copy_bytes() const {
  int64_t bytes = 0;
  for (const AlignedBuffer<uint8_t>& b : prepacked_) bytes += static_cast<int64_t>(b.size());
  return bytes;
}

int64_t TextModel::matmul_macs_per_token() const {
  const TextConfig& c = config_;
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const int64_t per_layer = c.hidden * (2 * q_dim + 2 * kv_dim) + 3 * c.hidden * c.ffn;
  return per_layer * c.num_layers + c.hidden * c.vocab;
}

}  // namespace vlserve::models
