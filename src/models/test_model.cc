// make-test-model's generator (see test_model.h).
#include "models/test_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>

#include "kernels/kernels.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::models {
namespace {

// splitmix64: tiny, fast, and defined entirely by integer arithmetic.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1].
  double Uniform() { return static_cast<double>((Next() >> 11) + 1) * 0x1.0p-53; }
  // Standard normal (Box-Muller, cosine branch only).
  double Normal() {
    const double u1 = Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

// FNV-1a of the tensor name mixed with the seed: each tensor has its own stream, so
// changing one tensor's shape leaves the others' values alone.
uint64_t TensorSeed(uint64_t seed, std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

std::vector<float> RandomValues(uint64_t seed, std::string_view name, int64_t n, double mean,
                                double stddev) {
  SplitMix64 rng(TensorSeed(seed, name));
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(mean + stddev * rng.Normal());
  return v;
}

struct TensorAdder {
  const TestModelOptions& o;
  gguf::Writer& w;

  // Matrix [rows, cols] in the model's weight type (or its per-tensor fallback, see
  // TestModelMatrixType); N(0, scale²/cols).
  Status Matrix(const std::string& name, int64_t rows, int64_t cols, double scale) const {
    const std::vector<float> v = RandomValues(o.seed, name, rows * cols, 0.0,
                                              scale / std::sqrt(static_cast<double>(cols)));
    const DType type = TestModelMatrixType(o.type, cols);
    const DTypeInfo& info = Info(type);
    if (cols % info.block_size != 0) {
      return InvalidArgumentError(fmt::format(
          "--type {} needs every matrix width to be a multiple of {}, but '{}' has {} "
          "columns; choose dims that are (e.g. --dims hidden=256,ffn=512)",
          info.name, info.block_size, name, cols));
    }
    std::vector<uint8_t> bytes(RowBytes(type, cols) * rows);
    kernels::Quantize(type, v.data(), bytes.data(), rows * cols);
    return w.AddTensor(name, type, {cols, rows}, bytes.data(), bytes.size());
  }
  Status Vector(const std::string& name, int64_t n, double mean, double stddev) const {
    const std::vector<float> v = RandomValues(o.seed, name, n, mean, stddev);
    return w.AddTensor(name, DType::kF32, {n}, v.data(), v.size() * sizeof(float));
  }
};

// glm4 (arch/glm4.cc has the layout): after Q/K/V, the output projection, the sandwich
// norms around the MLP, and gate and up stacked in one ffn_up [2 * ffn, hidden] (gate rows
// first). Random Q/K rows have no order to keep, so the same values stand for a file with
// sections (rows already in llama.cpp's neox order) and one without (HF's order).
Status AddGlm4LayerTail(const TensorAdder& add, const std::string& p, int64_t q_dim) {
  const TestModelOptions& o = add.o;
  RETURN_IF_ERROR(add.Matrix(p + "attn_output.weight", o.hidden, q_dim, 1.0));
  RETURN_IF_ERROR(add.Vector(p + "post_attention_norm.weight", o.hidden, 1.0, 0.1));
  RETURN_IF_ERROR(add.Vector(p + "ffn_norm.weight", o.hidden, 1.0, 0.1));
  RETURN_IF_ERROR(add.Matrix(p + "ffn_up.weight", 2 * o.ffn, o.hidden, 1.0));
  RETURN_IF_ERROR(add.Matrix(p + "ffn_down.weight", o.hidden, o.ffn, 1.0));
  return add.Vector(p + "post_ffw_norm.weight", o.hidden, 1.0, 0.1);
}

Status AddTensors(const TestModelOptions& o, int64_t vocab, bool tied, gguf::Writer& w) {
  const TensorAdder add{o, w};
  const int64_t hd = TestHeadDim(o);
  const int64_t q_dim = o.heads * hd, kv_dim = o.kv_heads * hd;
  // Output scale 3: logits with a standard deviation of about 3, so greedy choices have
  // clear margins even after quantization.
  RETURN_IF_ERROR(add.Matrix("token_embd.weight", vocab, o.hidden, 3.0));
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    RETURN_IF_ERROR(add.Vector(p + "attn_norm.weight", o.hidden, 1.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(p + "attn_q.weight", q_dim, o.hidden, 1.0));
    RETURN_IF_ERROR(add.Matrix(p + "attn_k.weight", kv_dim, o.hidden, 1.0));
    RETURN_IF_ERROR(add.Matrix(p + "attn_v.weight", kv_dim, o.hidden, 1.0));
    if (o.arch == "qwen2" || o.arch == "qwen2vl" || o.arch == "glm4") {
      RETURN_IF_ERROR(add.Vector(p + "attn_q.bias", q_dim, 0.0, 0.1));
      RETURN_IF_ERROR(add.Vector(p + "attn_k.bias", kv_dim, 0.0, 0.1));
      RETURN_IF_ERROR(add.Vector(p + "attn_v.bias", kv_dim, 0.0, 0.1));
    }
    if (o.arch == "glm4") {
      RETURN_IF_ERROR(AddGlm4LayerTail(add, p, q_dim));
      continue;
    }
    if (o.arch == "qwen3vl") {  // QK-norm weights (arch/qwen3vl.cc has the layout)
      RETURN_IF_ERROR(add.Vector(p + "attn_q_norm.weight", hd, 1.0, 0.1));
      RETURN_IF_ERROR(add.Vector(p + "attn_k_norm.weight", hd, 1.0, 0.1));
    }
    RETURN_IF_ERROR(add.Matrix(p + "attn_output.weight", o.hidden, q_dim, 1.0));
    RETURN_IF_ERROR(add.Vector(p + "ffn_norm.weight", o.hidden, 1.0, 0.1));
    RETURN_IF_ERROR(add.Matrix(p + "ffn_gate.weight", o.ffn, o.hidden, 1.0));
    RETURN_IF_ERROR(add.Matrix(p + "ffn_up.weight", o.ffn, o.hidden, 1.0));
    RETURN_IF_ERROR(add.Matrix(p + "ffn_down.weight", o.hidden, o.ffn, 1.0));
  }
  RETURN_IF_ERROR(add.Vector("output_norm.weight", o.hidden, 1.0, 0.1));
  if (!tied) RETURN_IF_ERROR(add.Matrix("output.weight", vocab, o.hidden, 3.0));
  return OkStatus();
}

void AddMetadata(const TestModelOptions& o, const TestVocab& v, gguf::Writer& w) {
  using gguf::Value;
  const std::string& a = o.arch;
  const bool qwen = a == "qwen2" || a == "qwen2vl" || a == "qwen3vl";
  w.Set("general.architecture", Value::String(a));
  w.Set("general.name", Value::String(o.name.empty() ? "vlserve-test-" + a : o.name));
  auto u32 = [](int64_t x) { return Value::U32(static_cast<uint32_t>(x)); };
  w.Set(a + ".context_length", u32(o.context));
  w.Set(a + ".embedding_length", u32(o.hidden));
  w.Set(a + ".block_count", u32(o.layers));
  w.Set(a + ".feed_forward_length", u32(o.ffn));
  w.Set(a + ".attention.head_count", u32(o.heads));
  w.Set(a + ".attention.head_count_kv", u32(o.kv_heads));
  if (a == "qwen3vl") {
    // llama.cpp's converter writes HF's head_dim as key and value length, and the
    // deepstack count (len(vision_config.deepstack_visual_indexes)).
    w.Set(a + ".attention.key_length", u32(TestHeadDim(o)));
    w.Set(a + ".attention.value_length", u32(TestHeadDim(o)));
    w.Set(a + ".n_deepstack_layers", u32(TestDeepstackLayers(o)));
  }
  w.Set(a + ".attention.layer_norm_rms_epsilon",
        Value::F32(static_cast<float>(o.rms_eps.value_or(qwen ? 1e-6 : 1e-5))));
  w.Set(a + ".rope.freq_base",
        Value::F32(static_cast<float>(o.rope_base.value_or(
            a == "qwen3vl" ? 5000000.0 : qwen ? 1000000.0 : 10000.0))));
  w.Set(a + ".rope.dimension_count", u32(TestRopeDims(o)));
  if ((a == "qwen2vl" || a == "glm4" || a == "qwen3vl") && o.rope_sections) {
    // llama.cpp writes HF's mrope_section padded to 4 entries.
    const std::array<int32_t, 4>& sec = *o.rope_sections;
    w.Set(a + ".rope.dimension_sections", Value::I32Array({sec.begin(), sec.end()}));
  }
  w.Set(a + ".vocab_size", u32(static_cast<int64_t>(v.tokens.size())));
  w.Set("tokenizer.ggml.model", Value::String("gpt2"));
  w.Set("tokenizer.ggml.pre", Value::String(v.pre));
  w.Set("tokenizer.ggml.tokens", Value::StringArray(v.tokens));
  w.Set("tokenizer.ggml.token_type", Value::I32Array(v.token_types));
  w.Set("tokenizer.ggml.merges", Value::StringArray(v.merges));
  w.Set("tokenizer.ggml.bos_token_id", u32(v.bos));
  w.Set("tokenizer.ggml.eos_token_id", u32(v.eos));
  w.Set("tokenizer.ggml.padding_token_id", u32(v.pad));
  if (a == "glm4") {
    // llama.cpp's Glm4Model.set_vocab: <|endoftext|> is bos, eos and unk; <|user|> is eot
    // (the model ends its turn by starting the user's).
    w.Set("tokenizer.ggml.eot_token_id", u32(v.eot));
    w.Set("tokenizer.ggml.unknown_token_id", u32(v.eos));
  }
  w.Set("tokenizer.ggml.add_bos_token", Value::Bool(false));
  w.Set("tokenizer.chat_template", Value::String(v.chat_template));
}

}  // namespace

// llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) does the same when a tensor's
// row length is not a multiple of the K-quant super-block (256): Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 if the row is not a multiple of 32 either. So a
// "q4_k" model at 576/960-wide presets is mostly Q5_0 with Q4_K where rows allow
// (ffn_down: 1536 / 2560 columns), as a llama.cpp Q4_K quantization of it would be.
DType TestModelMatrixType(DType type, int64_t cols) {
  if (cols % Info(type).block_size == 0) return type;
  DType fallback;
  switch (type) {
    case DType::kQ4_K: fallback = DType::kQ5_0; break;
    case DType::kQ5_K: fallback = DType::kQ5_1; break;
    case DType::kQ6_K: fallback = DType::kQ8_0; break;
    default: return type;  // the caller reports the width error
  }
  return cols % Info(fallback).block_size == 0 ? fallback : DType::kF16;
}

std::array<int32_t, 4> DefaultRopeSections(int64_t head_dim) {
  const auto pairs = static_cast<int32_t>(head_dim / 2);
  const int32_t hw = pairs * 3 / 8;
  return {pairs - 2 * hw, hw, hw, 0};
}

int64_t TestHeadDim(const TestModelOptions& o) {
  if (o.head_dim > 0) return o.head_dim;
  return o.heads > 0 ? o.hidden / o.heads : 0;
}

int64_t TestRopeDims(const TestModelOptions& o) {
  const int64_t head_dim = TestHeadDim(o);
  return o.arch == "glm4" ? head_dim / 2 : head_dim;
}

int64_t TestDeepstackLayers(const TestModelOptions& o) {
  if (o.arch != "qwen3vl") return 0;
  // Below the layer count by default: llama.cpp's graph cannot add a deepstack slice after
  // the last layer (it has already dropped the rows without logits there).
  return o.deepstack_layers.value_or(std::clamp<int64_t>(o.layers - 1, 0, 3));
}

std::array<int32_t, 4> TestRopeSections(const TestModelOptions& o) {
  if (o.arch == "qwen3vl") {  // Qwen3-VL's [24, 20, 20] of 64 pairs, scaled
    const auto pairs = static_cast<int32_t>(TestRopeDims(o) / 2);
    const int32_t hw = pairs * 5 / 16;
    return {pairs - 2 * hw, hw, hw, 0};
  }
  return DefaultRopeSections(TestRopeDims(o));
}

StatusOr<TestModelOptions> TestModelPreset(std::string_view preset) {
  TestModelOptions o;
  o.arch = "llama";
  o.vocab = 49280;
  o.context = 8192;
  o.rope_base = 100000.0;
  o.tied = true;
  if (preset == "smolvlm-256m") {
    o.hidden = 576, o.layers = 30, o.heads = 9, o.kv_heads = 3, o.ffn = 1536;
  } else if (preset == "smolvlm-500m") {
    o.hidden = 960, o.layers = 32, o.heads = 15, o.kv_heads = 5, o.ffn = 2560;
  } else if (preset == "qwen25vl-3b") {  // Qwen2.5-VL-3B-Instruct's language model
    o.arch = "qwen2vl", o.vocab = 151936, o.context = 32768, o.rope_base = 1000000.0;
    o.hidden = 2048, o.layers = 36, o.heads = 16, o.kv_heads = 2, o.ffn = 11008;
    o.rope_sections = std::array<int32_t, 4>{16, 24, 24, 0};
  } else if (preset == "qwen2vl-2b") {  // Qwen2-VL-2B-Instruct's language model
    o.arch = "qwen2vl", o.vocab = 151936, o.context = 32768, o.rope_base = 1000000.0;
    o.hidden = 1536, o.layers = 28, o.heads = 12, o.kv_heads = 2, o.ffn = 8960;
    o.rope_sections = std::array<int32_t, 4>{16, 24, 24, 0};
  } else if (preset == "internvl3-1b") {  // InternVL3-1B's language model (Qwen2.5-0.5B)
    o.arch = "qwen2", o.vocab = 151674, o.context = 32768, o.rope_base = 1000000.0;
    o.hidden = 896, o.layers = 24, o.heads = 14, o.kv_heads = 2, o.ffn = 4864;
    o.tied = false;  // tie_word_embeddings: false
  } else if (preset == "glm41v-9b") {  // GLM-4.1V-9B-Thinking's (and Glyph's) language model
    // HF config text_config: max_position_embeddings 65536, rope_theta 10000,
    // partial_rotary_factor 0.5 (64 of 128 dims), mrope_section [8, 12, 12], rms_norm_eps
    // 1e-5 (the glm4 default), tie_word_embeddings false.
    o.arch = "glm4", o.vocab = 151552, o.context = 65536, o.rope_base = 10000.0;
    o.hidden = 4096, o.layers = 40, o.heads = 32, o.kv_heads = 2, o.ffn = 13696;
    o.rope_sections = std::array<int32_t, 4>{8, 12, 12, 0};
    o.tied = false;
  } else if (preset == "qwen3vl-2b") {  // Qwen3-VL-2B-Instruct's language model
    // HF config text_config: head_dim 128, rms_norm_eps 1e-6, rope_theta 5e6,
    // mrope_section [24, 20, 20] (interleaved), max_position_embeddings 262144,
    // tie_word_embeddings true; vision deepstack_visual_indexes [5, 11, 17].
    o.arch = "qwen3vl", o.vocab = 151936, o.context = 262144, o.rope_base = 5000000.0;
    o.hidden = 2048, o.layers = 28, o.heads = 16, o.kv_heads = 8, o.ffn = 6144;
    o.head_dim = 128, o.deepstack_layers = 3;
    o.rope_sections = std::array<int32_t, 4>{24, 20, 20, 0};
    o.tied = true;
  } else {
    return InvalidArgumentError(fmt::format(
        "unknown preset '{}'; presets: smolvlm-256m, smolvlm-500m, qwen2vl-2b, qwen25vl-3b, "
        "internvl3-1b, glm41v-9b, qwen3vl-2b",
        preset));
  }
  o.name = "vlserve-test-" + std::string(preset);
  return o;
}

Status ParseTestModelDims(std::string_view dims, TestModelOptions* o) {
  const std::vector<std::pair<std::string_view, int64_t*>> fields = {
      {"hidden", &o->hidden}, {"layers", &o->layers}, {"heads", &o->heads},
      {"kv_heads", &o->kv_heads}, {"ffn", &o->ffn}, {"vocab", &o->vocab},
      {"context", &o->context}, {"head_dim", &o->head_dim}};
  while (!dims.empty()) {
    const size_t comma = dims.find(',');
    std::string_view item = dims.substr(0, comma);
    dims = comma == std::string_view::npos ? std::string_view() : dims.substr(comma + 1);
    const size_t eq = item.find('=');
    int64_t* target = nullptr;
    for (const auto& [key, field] : fields) {
      if (eq != std::string_view::npos && item.substr(0, eq) == key) target = field;
    }
    int64_t value = 0;
    const std::string_view num = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
    if (target == nullptr || ec != std::errc() || ptr != num.data() + num.size() || value < 0) {
      return InvalidArgumentError(fmt::format(
          "bad --dims entry '{}'; expected key=N with key in hidden, layers, heads, kv_heads, "
          "ffn, vocab, context, head_dim (qwen3vl)",
          item));
    }
    *target = value;
  }
  return OkStatus();
}

StatusOr<gguf::Writer> BuildTestModel(const TestModelOptions& o) {
  if (o.hidden <= 0 || o.layers <= 0 || o.heads <= 0 || o.kv_heads <= 0 || o.ffn <= 0 ||
      o.context <= 0 || (o.head_dim == 0 && o.hidden % o.heads != 0) ||
      o.heads % o.kv_heads != 0 || TestHeadDim(o) % 2 != 0 ||
      (o.head_dim != 0 && o.arch != "qwen3vl")) {
    return InvalidArgumentError(fmt::format(
        "bad test-model dims hidden={} heads={} kv_heads={} head_dim={}: hidden must divide "
        "into heads of even size (or qwen3vl's head_dim be even), and heads into kv_heads "
        "groups",
        o.hidden, o.heads, o.kv_heads, o.head_dim));
  }
  if (TestDeepstackLayers(o) < 0 || TestDeepstackLayers(o) > o.layers) {
    return InvalidArgumentError(fmt::format("qwen3vl deepstack layers {} must be in [0, {}]",
                                            TestDeepstackLayers(o), o.layers));
  }
  if (!Info(o.type).supported) {
    return InvalidArgumentError(fmt::format("weight type {} is not supported", Info(o.type).name));
  }
  if ((o.arch == "qwen2vl" || o.arch == "glm4" || o.arch == "qwen3vl") && o.rope_sections) {
    const std::array<int32_t, 4>& sec = *o.rope_sections;
    if (2 * (sec[0] + sec[1] + sec[2] + sec[3]) > TestRopeDims(o)) {
      return InvalidArgumentError(fmt::format(
          "{} rope sections add up to more than the rotated pairs, {}", o.arch,
          TestRopeDims(o) / 2));
    }
  }
  // Qwen2-VL's language model has Qwen2's vocabulary (its ChatML and vision tokens).
  const std::string vocab_arch = o.arch == "qwen2vl" ? "qwen2" : o.arch;
  TestVocab vocab;
  if (o.vocab_from.empty()) {
    ASSIGN_OR_RETURN(vocab, BuildTestVocab(vocab_arch, o.vocab));
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<gguf::File> file, gguf::File::Open(o.vocab_from));
    ASSIGN_OR_RETURN(tokenizer::TokenizerConfig base, tokenizer::TokenizerConfigFromGguf(*file));
    ASSIGN_OR_RETURN(vocab, BuildTestVocab(vocab_arch, o.vocab, base));
  }
  // qwen2, qwen2vl, glm4: output.weight; qwen3vl tied as Qwen3-VL-2B/4B.
  const bool tied = o.tied.value_or(o.arch == "llama" || o.arch == "qwen3vl");
  gguf::Writer writer;
  AddMetadata(o, vocab, writer);
  RETURN_IF_ERROR(AddTensors(o, static_cast<int64_t>(vocab.tokens.size()), tied, writer));
  return writer;
}

std::vector<float> TestRandomValues(uint64_t seed, std::string_view name, int64_t n,
                                    double mean, double stddev) {
  return RandomValues(seed, name, n, mean, stddev);
}

Status WriteTestModel(const TestModelOptions& o, const std::string& dir) {
  ASSIGN_OR_RETURN(gguf::Writer writer, BuildTestModel(o));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return InvalidArgumentError(fmt::format("cannot create directory {}: {}", dir, ec.message()));
  }
  return writer.WriteFile(dir + "/text.gguf");
}

}  // namespace vlserve::models
