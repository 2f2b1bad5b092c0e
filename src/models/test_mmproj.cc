// make-test-model --vision: a deterministic random-weight mmproj in llama.cpp's conventions
// (see test_model.h and vision_model.h for the tensor names and layouts).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "kernels/kernels.h"
#include "models/test_model.h"

namespace vlserve::models {
namespace {

struct MmprojAdder {
  const VisionTestOptions& o;
  gguf::Writer& w;

  // `shape` in GGUF order; rows of shape[0] values, N(0, scale² / fan_in).
  Status Matrix(const std::string& name, std::vector<int64_t> shape, int64_t fan_in,
                double scale = 1.0) const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const std::vector<float> v =
        TestRandomValues(o.seed, name, n, 0.0, scale / std::sqrt(static_cast<double>(fan_in)));
    // Like llama.cpp's quantizer: a matrix whose rows do not split into the type's blocks
    // (the 16-wide patch-embedding kernel rows) is stored as F16 instead.
    DType type = o.type;
    if (shape[0] % Info(type).block_size != 0) type = DType::kF16;
    std::vector<uint8_t> bytes(RowBytes(type, shape[0]) * (n / shape[0]));
    kernels::Quantize(type, v.data(), bytes.data(), n);
    return w.AddTensor(name, type, std::move(shape), bytes.data(), bytes.size());
  }
  Status Vector(const std::string& name, std::vector<int64_t> shape, double mean,
                double stddev) const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const std::vector<float> v = TestRandomValues(o.seed, name, n, mean, stddev);
    return w.AddTensor(name, DType::kF32, std::move(shape), v.data(), v.size() * sizeof(float));
  }
  Status Norm(const std::string& prefix, int64_t d) const {
    RETURN_IF_ERROR(Vector(prefix + ".weight", {d}, 1.0, 0.1));
    return Vector(prefix + ".bias", {d}, 0.0, 0.1);
  }
};

// The pre-LN encoder layers every generated tower shares: LayerNorm, q/k/v/out with
// biases, an FFN with biases.
Status AddEncoderLayers(const MmprojAdder& add) {
  const VisionTestOptions& o = add.o;
  const int64_t d = o.hidden;
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string b = fmt::format("v.blk.{}.", i);
    RETURN_IF_ERROR(add.Norm(b + "ln1", d));
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      RETURN_IF_ERROR(add.Matrix(b + m + ".weight", {d, d}, d));
      RETURN_IF_ERROR(add.Vector(b + m + ".bias", {d}, 0.0, 0.1));
    }
    RETURN_IF_ERROR(add.Norm(b + "ln2", d));
    RETURN_IF_ERROR(add.Matrix(b + "ffn_up.weight", {d, o.ffn}, d));
    RETURN_IF_ERROR(add.Vector(b + "ffn_up.bias", {o.ffn}, 0.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(b + "ffn_down.weight", {o.ffn, d}, o.ffn));
    RETURN_IF_ERROR(add.Vector(b + "ffn_down.bias", {d}, 0.0, 0.1));
  }
  return OkStatus();
}

// Qwen2-VL (llama.cpp's Qwen2VLVisionModel conversion): the Conv3d split into two conv2d
// kernels, no patch bias or position table, LayerNorm blocks with q/k/v split from HF's
// fused qkv, merger.ln_q as v.post_ln, merger.mlp.{0,2} as mm.{0,2}.
// Qwen2.5-VL: RMSNorm (weights only: ln1, ln2, v.post_ln = merger.ln_q) and a SwiGLU MLP
// with biases (gate_proj/up_proj/down_proj as ffn_gate/ffn_up/ffn_down).
Status AddQwen25VlLayers(const MmprojAdder& add) {
  const VisionTestOptions& o = add.o;
  const int64_t d = o.hidden;
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string b = fmt::format("v.blk.{}.", i);
    RETURN_IF_ERROR(add.Vector(b + "ln1.weight", {d}, 1.0, 0.1));
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      RETURN_IF_ERROR(add.Matrix(b + m + ".weight", {d, d}, d));
      RETURN_IF_ERROR(add.Vector(b + m + ".bias", {d}, 0.0, 0.1));
    }
    RETURN_IF_ERROR(add.Vector(b + "ln2.weight", {d}, 1.0, 0.1));
    for (const char* m : {"ffn_gate", "ffn_up"}) {
      RETURN_IF_ERROR(add.Matrix(b + m + ".weight", {d, o.ffn}, d));
      RETURN_IF_ERROR(add.Vector(b + m + ".bias", {o.ffn}, 0.0, 0.1));
    }
    RETURN_IF_ERROR(add.Matrix(b + "ffn_down.weight", {o.ffn, d}, o.ffn));
    RETURN_IF_ERROR(add.Vector(b + "ffn_down.bias", {d}, 0.0, 0.1));
  }
  return add.Vector("v.post_ln.weight", {d}, 1.0, 0.1);
}

Status AddQwen2VlTensors(const VisionTestOptions& o, gguf::Writer& w) {
  const MmprojAdder add{o, w};
  const int64_t d = o.hidden, p = o.patch_size, merged = d * 4;
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight", {p, p, 3, d}, 3 * p * p * 2));
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight.1", {p, p, 3, d}, 3 * p * p * 2));
  if (o.projector == "qwen2.5vl_merger") {
    RETURN_IF_ERROR(AddQwen25VlLayers(add));
  } else {
    RETURN_IF_ERROR(AddEncoderLayers(add));
    RETURN_IF_ERROR(add.Norm("v.post_ln", d));
  }
  RETURN_IF_ERROR(add.Matrix("mm.0.weight", {merged, merged}, merged));
  RETURN_IF_ERROR(add.Vector("mm.0.bias", {merged}, 0.0, 0.1));
  RETURN_IF_ERROR(add.Matrix("mm.2.weight", {merged, o.text_hidden}, merged));
  return add.Vector("mm.2.bias", {o.text_hidden}, 0.0, 0.1);
}

// InternVL (llama.cpp's InternVisionModel conversion): conv patch embedding with bias, the
// CLS embedding and position table with HF's leading 1-dims kept (ne = [d, 1, 1] and
// [d, N + 1, 1]), LayerNorm blocks with q/k/v split from HF's fused qkv, layer scales
// ls1/ls2, mlp1.{0,1,3} as mm.model.mlp.{0,1,3}.
Status AddInternVlTensors(const VisionTestOptions& o, gguf::Writer& w) {
  const MmprojAdder add{o, w};
  const int64_t d = o.hidden, p = o.patch_size, side = o.image_size / o.patch_size;
  const int64_t merged = d * o.scale_factor * o.scale_factor;
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight", {p, p, 3, d}, 3 * p * p));
  RETURN_IF_ERROR(add.Vector("v.patch_embd.bias", {d}, 0.0, 0.1));
  RETURN_IF_ERROR(add.Vector("v.class_embd", {d, 1, 1}, 0.0, 1.0));
  RETURN_IF_ERROR(add.Vector("v.position_embd.weight", {d, side * side + 1, 1}, 0.0, 0.5));
  RETURN_IF_ERROR(AddEncoderLayers(add));
  for (int64_t i = 0; i < o.layers; ++i) {
    // Away from 1, so a tower that ignored them would fail the golden test.
    for (const char* ls : {"ls1", "ls2"}) {
      RETURN_IF_ERROR(add.Vector(fmt::format("v.blk.{}.{}.weight", i, ls), {d}, 0.4, 0.2));
    }
  }
  RETURN_IF_ERROR(add.Norm("mm.model.mlp.0", merged));
  RETURN_IF_ERROR(add.Matrix("mm.model.mlp.1.weight", {merged, o.text_hidden}, merged));
  RETURN_IF_ERROR(add.Vector("mm.model.mlp.1.bias", {o.text_hidden}, 0.0, 0.1));
  RETURN_IF_ERROR(
      add.Matrix("mm.model.mlp.3.weight", {o.text_hidden, o.text_hidden}, o.text_hidden));
  return add.Vector("mm.model.mlp.3.bias", {o.text_hidden}, 0.0, 0.1);
}

// GLM-4.1V (llama.cpp's Glm4VVisionModel conversion; families/glm4v.cc lists the names and
// layouts): the Conv3d split into two kernels plus its bias, RMSNorm v.norm_embd, a
// side x side position table, RMSNorm blocks with a fused bias-free qkv and a bias-free
// SwiGLU MLP, v.post_ln, then the 2x2 conv downsample (mm.patch_merger, with bias),
// mm.model.fc, LayerNorm mm.post_norm and the SwiGLU mm.gate/mm.up/mm.down.
Status AddGlm4vTensors(const VisionTestOptions& o, gguf::Writer& w) {
  const MmprojAdder add{o, w};
  const int64_t d = o.hidden, p = o.patch_size, side = o.image_size / o.patch_size;
  const int64_t out = o.text_hidden, inter = o.merger_ffn > 0 ? o.merger_ffn : 2 * out;
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight", {p, p, 3, d}, 3 * p * p * 2));
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight.1", {p, p, 3, d}, 3 * p * p * 2));
  RETURN_IF_ERROR(add.Vector("v.patch_embd.bias", {d}, 0.0, 0.1));
  RETURN_IF_ERROR(add.Vector("v.norm_embd.weight", {d}, 1.0, 0.1));
  RETURN_IF_ERROR(add.Vector("v.position_embd.weight", {d, side * side}, 0.0, 0.5));
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string b = fmt::format("v.blk.{}.", i);
    RETURN_IF_ERROR(add.Vector(b + "ln1.weight", {d}, 1.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(b + "attn_qkv.weight", {d, 3 * d}, d));
    RETURN_IF_ERROR(add.Matrix(b + "attn_out.weight", {d, d}, d));
    RETURN_IF_ERROR(add.Vector(b + "ln2.weight", {d}, 1.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(b + "ffn_gate.weight", {d, o.ffn}, d));
    RETURN_IF_ERROR(add.Matrix(b + "ffn_up.weight", {d, o.ffn}, d));
    RETURN_IF_ERROR(add.Matrix(b + "ffn_down.weight", {o.ffn, d}, o.ffn));
  }
  RETURN_IF_ERROR(add.Vector("v.post_ln.weight", {d}, 1.0, 0.1));
  const int64_t m = o.scale_factor;
  RETURN_IF_ERROR(add.Matrix("mm.patch_merger.weight", {m, m, d, out}, d * m * m));
  RETURN_IF_ERROR(add.Vector("mm.patch_merger.bias", {out}, 0.0, 0.1));
  RETURN_IF_ERROR(add.Matrix("mm.model.fc.weight", {out, out}, out));
  RETURN_IF_ERROR(add.Norm("mm.post_norm", out));
  RETURN_IF_ERROR(add.Matrix("mm.gate.weight", {out, inter}, out));
  RETURN_IF_ERROR(add.Matrix("mm.up.weight", {out, inter}, out));
  return add.Matrix("mm.down.weight", {inter, out}, inter);
}

void AddGlm4vMetadata(const VisionTestOptions& o, gguf::Writer& w) {
  using gguf::Value;
  auto u32 = [](int64_t x) { return Value::U32(static_cast<uint32_t>(x)); };
  w.Set("general.architecture", Value::String("clip"));
  w.Set("general.name", Value::String("vlserve-test-mmproj-" + o.projector));
  w.Set("clip.has_vision_encoder", Value::Bool(true));
  w.Set("clip.has_text_encoder", Value::Bool(false));
  w.Set("clip.projector_type", Value::String(o.projector));
  w.Set("clip.use_silu", Value::Bool(true));  // HF hidden_act "silu"
  const std::string v = "clip.vision.";
  w.Set(v + "image_size", u32(o.image_size));
  w.Set(v + "patch_size", u32(o.patch_size));
  w.Set(v + "embedding_length", u32(o.hidden));
  // The converter writes HF's intermediate_size, the merger's width; the tower's MLP width
  // (out_hidden_size) is only in the tensors.
  w.Set(v + "feed_forward_length", u32(o.merger_ffn > 0 ? o.merger_ffn : 2 * o.text_hidden));
  w.Set(v + "block_count", u32(o.layers));
  w.Set(v + "attention.head_count", u32(o.heads));
  w.Set(v + "attention.layer_norm_epsilon", Value::F32(1e-5f));
  w.Set(v + "projection_dim", u32(o.text_hidden));
  w.Set(v + "image_mean", Value::F32Array({0.48145466f, 0.4578275f, 0.40821073f}));
  w.Set(v + "image_std", Value::F32Array({0.26862954f, 0.26130258f, 0.27577711f}));
}

// Qwen3-VL (llama.cpp's Qwen3VLVisionModel conversion; families/qwen3vl.cc lists the names
// and layouts): the Conv3d split into two kernels plus its bias, a side x side position
// table, LayerNorm blocks with a fused qkv (with bias) and a GELU MLP with biases,
// merger.norm as v.post_ln, merger.linear_fc{1,2} as mm.{0,2}, and per deepstack layer L
// v.deepstack.L.{norm,fc1,fc2} (LayerNorm and linears over the merged 4d rows).
Status AddQwen3VlTensors(const VisionTestOptions& o, gguf::Writer& w) {
  const MmprojAdder add{o, w};
  const int64_t d = o.hidden, p = o.patch_size, side = o.image_size / o.patch_size;
  const int64_t merged = d * 4, out = o.text_hidden;
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight", {p, p, 3, d}, 3 * p * p * 2));
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight.1", {p, p, 3, d}, 3 * p * p * 2));
  RETURN_IF_ERROR(add.Vector("v.patch_embd.bias", {d}, 0.0, 0.1));
  RETURN_IF_ERROR(add.Vector("v.position_embd.weight", {d, side * side}, 0.0, 0.5));
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string b = fmt::format("v.blk.{}.", i);
    RETURN_IF_ERROR(add.Norm(b + "ln1", d));
    RETURN_IF_ERROR(add.Matrix(b + "attn_qkv.weight", {d, 3 * d}, d));
    RETURN_IF_ERROR(add.Vector(b + "attn_qkv.bias", {3 * d}, 0.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(b + "attn_out.weight", {d, d}, d));
    RETURN_IF_ERROR(add.Vector(b + "attn_out.bias", {d}, 0.0, 0.1));
    RETURN_IF_ERROR(add.Norm(b + "ln2", d));
    RETURN_IF_ERROR(add.Matrix(b + "ffn_up.weight", {d, o.ffn}, d));
    RETURN_IF_ERROR(add.Vector(b + "ffn_up.bias", {o.ffn}, 0.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(b + "ffn_down.weight", {o.ffn, d}, o.ffn));
    RETURN_IF_ERROR(add.Vector(b + "ffn_down.bias", {d}, 0.0, 0.1));
  }
  RETURN_IF_ERROR(add.Norm("v.post_ln", d));
  RETURN_IF_ERROR(add.Matrix("mm.0.weight", {merged, merged}, merged));
  RETURN_IF_ERROR(add.Vector("mm.0.bias", {merged}, 0.0, 0.1));
  RETURN_IF_ERROR(add.Matrix("mm.2.weight", {merged, out}, merged));
  RETURN_IF_ERROR(add.Vector("mm.2.bias", {out}, 0.0, 0.1));
  for (int64_t layer : o.deepstack_layers) {
    const std::string b = fmt::format("v.deepstack.{}.", layer);
    RETURN_IF_ERROR(add.Norm(b + "norm", merged));
    RETURN_IF_ERROR(add.Matrix(b + "fc1.weight", {merged, merged}, merged));
    RETURN_IF_ERROR(add.Vector(b + "fc1.bias", {merged}, 0.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(b + "fc2.weight", {merged, out}, merged));
    RETURN_IF_ERROR(add.Vector(b + "fc2.bias", {out}, 0.0, 0.1));
  }
  return OkStatus();
}

// The keys llama.cpp's Qwen3VLVisionModel conversion writes.
void AddQwen3VlMetadata(const VisionTestOptions& o, gguf::Writer& w) {
  using gguf::Value;
  auto u32 = [](int64_t x) { return Value::U32(static_cast<uint32_t>(x)); };
  w.Set("general.architecture", Value::String("clip"));
  w.Set("general.name", Value::String("vlserve-test-mmproj-" + o.projector));
  w.Set("clip.has_vision_encoder", Value::Bool(true));
  w.Set("clip.has_text_encoder", Value::Bool(false));
  w.Set("clip.projector_type", Value::String(o.projector));
  w.Set("clip.use_gelu", Value::Bool(true));  // HF hidden_act "gelu_pytorch_tanh"
  const std::string v = "clip.vision.";
  w.Set(v + "image_size", u32(o.image_size));  // sqrt(num_position_embeddings) * patch
  w.Set(v + "patch_size", u32(o.patch_size));
  w.Set(v + "embedding_length", u32(o.hidden));
  w.Set(v + "feed_forward_length", u32(o.ffn));
  w.Set(v + "block_count", u32(o.layers));
  w.Set(v + "attention.head_count", u32(o.heads));
  w.Set(v + "attention.layer_norm_epsilon", Value::F32(1e-6f));
  w.Set(v + "projection_dim", u32(o.text_hidden));
  w.Set(v + "image_mean", Value::F32Array({0.5f, 0.5f, 0.5f}));
  w.Set(v + "image_std", Value::F32Array({0.5f, 0.5f, 0.5f}));
  w.Set(v + "spatial_merge_size", u32(2));
  std::vector<Value> is_deepstack;
  for (int64_t i = 0; i < o.layers; ++i) {
    const bool tap = std::find(o.deepstack_layers.begin(), o.deepstack_layers.end(), i) !=
                     o.deepstack_layers.end();
    is_deepstack.push_back(Value::Bool(tap));
  }
  w.Set(v + "is_deepstack_layers", Value::Array(gguf::ValueType::kBool, std::move(is_deepstack)));
}

Status AddMmprojTensors(const VisionTestOptions& o, bool clip_style, gguf::Writer& w) {
  const MmprojAdder add{o, w};
  const int64_t d = o.hidden, p = o.patch_size, side = o.image_size / o.patch_size;
  const int64_t positions = side * side + (clip_style ? 1 : 0);
  RETURN_IF_ERROR(add.Matrix("v.patch_embd.weight", {p, p, 3, d}, 3 * p * p));
  if (!clip_style) RETURN_IF_ERROR(add.Vector("v.patch_embd.bias", {d}, 0.0, 0.1));
  RETURN_IF_ERROR(add.Vector("v.position_embd.weight", {d, positions}, 0.0, 0.5));
  if (clip_style) {
    RETURN_IF_ERROR(add.Vector("v.class_embd", {d}, 0.0, 1.0));
    RETURN_IF_ERROR(add.Norm("v.pre_ln", d));
  }
  RETURN_IF_ERROR(AddEncoderLayers(add));
  // LLaVA's converter drops post_layernorm (the projector reads a hidden state, not the
  // tower output); SigLIP's is applied.
  if (!clip_style) RETURN_IF_ERROR(add.Norm("v.post_ln", d));
  if (clip_style) {
    RETURN_IF_ERROR(add.Matrix("mm.0.weight", {d, o.text_hidden}, d));
    RETURN_IF_ERROR(add.Vector("mm.0.bias", {o.text_hidden}, 0.0, 0.1));
    RETURN_IF_ERROR(add.Matrix("mm.2.weight", {o.text_hidden, o.text_hidden}, o.text_hidden));
    return add.Vector("mm.2.bias", {o.text_hidden}, 0.0, 0.1);
  }
  const int64_t merged = d * o.scale_factor * o.scale_factor;
  return add.Matrix("mm.model.fc.weight", {merged, o.text_hidden}, merged);
}

void AddMmprojMetadata(const VisionTestOptions& o, bool clip_style, gguf::Writer& w) {
  using gguf::Value;
  auto u32 = [](int64_t x) { return Value::U32(static_cast<uint32_t>(x)); };
  w.Set("general.architecture", Value::String("clip"));
  w.Set("general.name", Value::String("vlserve-test-mmproj-" + o.projector));
  w.Set("clip.has_vision_encoder", Value::Bool(true));
  w.Set("clip.has_text_encoder", Value::Bool(false));
  w.Set("clip.projector_type", Value::String(o.projector));
  const bool qwen = o.projector == "qwen2vl_merger" || o.projector == "qwen2.5vl_merger";
  const bool internvl = o.projector == "internvl";
  // SigLIP tanh-GELU; CLIP quick-GELU; Qwen2-VL's converter writes no key (quick-GELU);
  // InternVL's writes use_gelu for HF's "gelu" (which is erf GELU); Qwen2.5-VL's use_silu
  // and n_wa_pattern (full attention every n-th layer).
  if (!qwen) w.Set("clip.use_gelu", Value::Bool(!clip_style));
  if (o.projector == "qwen2.5vl_merger") {
    w.Set("clip.use_silu", Value::Bool(true));
    w.Set("clip.vision.n_wa_pattern", u32(o.n_wa_pattern));
  }
  const std::string v = "clip.vision.";
  w.Set(v + "image_size", u32(o.image_size));
  w.Set(v + "patch_size", u32(o.patch_size));
  w.Set(v + "embedding_length", u32(o.hidden));
  // llama.cpp's Qwen2-VL conversion puts the LLM width here (HF's vision config calls the
  // merger output hidden_size); loaders must read the FFN width from the tensors.
  w.Set(v + "feed_forward_length", u32(qwen ? o.text_hidden : o.ffn));
  w.Set(v + "block_count", u32(o.layers));
  w.Set(v + "attention.head_count", u32(o.heads));
  w.Set(v + "attention.layer_norm_epsilon", Value::F32(clip_style ? 1e-5f : 1e-6f));
  w.Set(v + "projection_dim", u32(o.text_hidden));
  if (internvl) {  // ImageNet, as InternVL's preprocessor_config; 1..12 tiles (HF defaults)
    w.Set(v + "image_mean", Value::F32Array({0.485f, 0.456f, 0.406f}));
    w.Set(v + "image_std", Value::F32Array({0.229f, 0.224f, 0.225f}));
    w.Set(v + "projector.scale_factor", u32(o.scale_factor));
    w.Set(v + "preproc_min_tiles", u32(1));
    w.Set(v + "preproc_max_tiles", u32(12));
  } else if (clip_style || qwen) {
    // LLaVA: the converter's feature layer for select layer -2 of the original tower,
    // which is every stored layer (llama.cpp runs block_count - 1 layers without it).
    if (clip_style) w.Set(v + "feature_layer", Value::I32Array({static_cast<int32_t>(o.layers)}));
    w.Set(v + "image_mean", Value::F32Array({0.48145466f, 0.4578275f, 0.40821073f}));
    w.Set(v + "image_std", Value::F32Array({0.26862954f, 0.26130258f, 0.27577711f}));
  } else {
    w.Set(v + "image_mean", Value::F32Array({0.5f, 0.5f, 0.5f}));
    w.Set(v + "image_std", Value::F32Array({0.5f, 0.5f, 0.5f}));
    w.Set(v + "projector.scale_factor", u32(o.scale_factor));
    w.Set(v + "preproc_image_size", u32(4 * o.image_size));  // SmolVLM: 2048 for 512 tiles
  }
}

}  // namespace

VisionTestOptions TinyVisionTestOptions(std::string_view projector) {
  VisionTestOptions o;
  o.projector = std::string(projector);
  if (projector == "qwen2vl_merger" || projector == "qwen2.5vl_merger" || projector == "glm4v") {
    o.image_size = 56, o.patch_size = 14;  // factor 28 = patch x 2x2 merge
  }
  if (projector == "qwen3vl_merger") {
    // A 4x4 position table (64 px) that other grids resample; taps before the last layer.
    o.image_size = 64, o.patch_size = 16, o.layers = 3;
    o.deepstack_layers = SpreadDeepstackLayers(o.layers, 2);
  }
  return o;
}

std::vector<int64_t> SpreadDeepstackLayers(int64_t layers, int64_t n) {
  std::vector<int64_t> out;
  for (int64_t k = 0; k < n; ++k) out.push_back(std::max(k, (k + 1) * layers / (n + 1) - 1));
  return out;
}

StatusOr<VisionTestOptions> VisionTestPreset(std::string_view preset) {
  VisionTestOptions o;
  if (preset == "internvl3-1b") {  // InternViT-300M-448px-V2_5 -> Qwen2.5-0.5B's 896
    o.projector = "internvl";
    o.image_size = 448, o.patch_size = 14, o.hidden = 1024, o.layers = 24, o.heads = 16;
    o.ffn = 4096, o.scale_factor = 2, o.text_hidden = 896;
    return o;
  }
  if (preset == "qwen25vl-3b") {  // Qwen2.5-VL-3B's ViT: 1280 wide, 32 layers, SwiGLU 3420
    o.projector = "qwen2.5vl_merger";
    o.image_size = 560, o.patch_size = 14, o.hidden = 1280, o.layers = 32, o.heads = 16;
    o.ffn = 3420, o.scale_factor = 2, o.text_hidden = 2048, o.n_wa_pattern = 8;
    return o;
  }
  if (preset == "glm41v-9b") {  // GLM-4.1V-9B's ViT (HF Glm4vVisionConfig) -> GLM-4-9B's 4096
    o.projector = "glm4v";
    o.image_size = 336, o.patch_size = 14, o.hidden = 1536, o.layers = 24, o.heads = 12;
    o.ffn = 4096, o.scale_factor = 2, o.text_hidden = 4096, o.merger_ffn = 13696;
    return o;
  }
  if (preset == "qwen3vl-2b") {  // Qwen3-VL-2B-Instruct's vision_config -> its 2048 LLM
    o.projector = "qwen3vl_merger";
    o.image_size = 768, o.patch_size = 16, o.hidden = 1024, o.layers = 24, o.heads = 16;
    o.ffn = 4096, o.scale_factor = 2, o.text_hidden = 2048;
    o.deepstack_layers = {5, 11, 17};
    return o;
  }
  if (preset == "qwen2vl-2b") {  // Qwen2-VL-2B's ViT: 1280 wide, 32 layers, 16 heads
    o.projector = "qwen2vl_merger";
    o.image_size = 560, o.patch_size = 14, o.hidden = 1280, o.layers = 32, o.heads = 16;
    o.ffn = 5120, o.scale_factor = 2, o.text_hidden = 1536;
    return o;
  }
  o.projector = "idefics3";
  o.image_size = 512, o.patch_size = 16, o.hidden = 768, o.layers = 12, o.heads = 12;
  o.ffn = 3072, o.scale_factor = 4;
  if (preset == "smolvlm-256m") {
    o.text_hidden = 576;
  } else if (preset == "smolvlm-500m") {
    o.text_hidden = 960;
  } else {
    return InvalidArgumentError(
        fmt::format("unknown preset '{}'; presets: smolvlm-256m, smolvlm-500m, qwen2vl-2b, "
                    "qwen25vl-3b, internvl3-1b, glm41v-9b, qwen3vl-2b",
                    preset));
  }
  return o;
}

StatusOr<gguf::Writer> BuildTestMmproj(const VisionTestOptions& o) {
  const bool qwen = o.projector == "qwen2vl_merger" || o.projector == "qwen2.5vl_merger";
  const bool internvl = o.projector == "internvl", glm = o.projector == "glm4v";
  const bool qwen3 = o.projector == "qwen3vl_merger";
  if (o.projector != "idefics3" && o.projector != "mlp" && !qwen && !internvl && !glm && !qwen3) {
    return InvalidArgumentError(fmt::format(
        "--vision '{}' is not a projector we can generate; use idefics3, mlp, "
        "qwen2vl_merger, qwen2.5vl_merger, internvl, glm4v or qwen3vl_merger",
        o.projector));
  }
  if (qwen3) {
    bool taps_ok = true;
    for (size_t k = 0; k < o.deepstack_layers.size(); ++k) {
      const int64_t l = o.deepstack_layers[k];
      taps_ok &= l >= 0 && l < o.layers && (k == 0 || l > o.deepstack_layers[k - 1]);
    }
    if (o.hidden <= 0 || o.heads <= 0 || o.hidden % o.heads != 0 ||
        (o.hidden / o.heads) % 4 != 0 || o.layers <= 0 || o.ffn <= 0 || o.text_hidden <= 0 ||
        o.patch_size <= 0 || o.image_size % o.patch_size != 0 || !taps_ok) {
      return InvalidArgumentError(fmt::format(
          "bad qwen3vl_merger dims hidden={} heads={} layers={} image_size={} patch={} "
          "deepstack taps={}: the head size must be a multiple of 4, the patch divide the "
          "image, and the taps be ascending tower layers",
          o.hidden, o.heads, o.layers, o.image_size, o.patch_size, o.deepstack_layers.size()));
    }
    gguf::Writer writer;
    AddQwen3VlMetadata(o, writer);
    RETURN_IF_ERROR(AddQwen3VlTensors(o, writer));
    return writer;
  }
  if (glm) {
    if (o.hidden <= 0 || o.heads <= 0 || o.hidden % o.heads != 0 || (o.hidden / o.heads) % 4 != 0 ||
        o.layers <= 0 || o.ffn <= 0 || o.text_hidden <= 0 || o.patch_size <= 0 ||
        o.image_size % o.patch_size != 0 || o.scale_factor != 2 || o.merger_ffn < 0) {
      return InvalidArgumentError(fmt::format(
          "bad glm4v dims hidden={} heads={} image_size={} patch={} scale_factor={}: the head "
          "size must be a multiple of 4, the patch divide the image, the merge be 2",
          o.hidden, o.heads, o.image_size, o.patch_size, o.scale_factor));
    }
    gguf::Writer writer;
    AddGlm4vMetadata(o, writer);
    RETURN_IF_ERROR(AddGlm4vTensors(o, writer));
    return writer;
  }
  if (qwen && (o.hidden <= 0 || o.heads <= 0 || o.hidden % o.heads != 0 ||
               (o.hidden / o.heads) % 4 != 0 || o.layers <= 0 || o.ffn <= 0 ||
               o.text_hidden <= 0 || o.patch_size <= 0)) {
    return InvalidArgumentError(fmt::format(
        "bad qwen2vl_merger dims hidden={} heads={}: the head size must be a multiple of 4",
        o.hidden, o.heads));
  }
  if (qwen) {
    gguf::Writer writer;
    AddMmprojMetadata(o, false, writer);
    RETURN_IF_ERROR(AddQwen2VlTensors(o, writer));
    return writer;
  }
  const bool clip_style = o.projector == "mlp";
  if (o.image_size <= 0 || o.patch_size <= 0 || o.image_size % o.patch_size != 0 || o.hidden <= 0 ||
      o.heads <= 0 || o.hidden % o.heads != 0 || o.layers <= 0 || o.ffn <= 0 ||
      o.text_hidden <= 0 || o.scale_factor <= 0 ||
      (!clip_style && (o.image_size / o.patch_size) % o.scale_factor != 0)) {
    return InvalidArgumentError(fmt::format(
        "bad mmproj dims image_size={} patch={} hidden={} heads={} scale_factor={}: the patch "
        "must divide the image, heads the hidden size, and the scale factor the patch grid",
        o.image_size, o.patch_size, o.hidden, o.heads, o.scale_factor));
  }
  gguf::Writer writer;
  AddMmprojMetadata(o, clip_style, writer);
  RETURN_IF_ERROR(internvl ? AddInternVlTensors(o, writer)
                           : AddMmprojTensors(o, clip_style, writer));
  return writer;
}

Status WriteTestMmproj(const VisionTestOptions& o, const std::string& dir) {
  ASSIGN_OR_RETURN(gguf::Writer writer, BuildTestMmproj(o));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return InvalidArgumentError(fmt::format("cannot create directory {}: {}", dir, ec.message()));
  }
  return writer.WriteFile(dir + "/mmproj.gguf");
}

}  // namespace vlserve::models
