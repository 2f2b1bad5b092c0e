// Deterministic random-weight test models in llama.cpp's GGUF conventions
// (`vlserve make-test-model`). The same options give the same bytes on every machine:
// weights come from our own PRNG (splitmix64 -> Box-Muller), seeded per tensor by name.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "gguf/gguf.h"
#include "kernels/types.h"
#include "tokenizer/tokenizer_config.h"

namespace vlserve::models {

struct TestModelOptions {
  std::string arch = "llama";  // llama | qwen2 | qwen2vl | glm4 | qwen3vl
  std::string name;            // general.name; default "vlserve-test-<arch>"
  int64_t hidden = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t ffn = 128;
  // qwen3vl: attention.key_length / value_length (HF head_dim); 0 = hidden / heads. Other
  // archs take hidden / heads and write no key_length.
  int64_t head_dim = 0;
  // qwen3vl: n_deepstack_layers (at most `layers`); nullopt = min(3, layers - 1) (llama.cpp
  // needs the last layer free of deepstack).
  std::optional<int64_t> deepstack_layers;
  int64_t vocab = 0;  // 0: the built-in BPE vocabulary as is; larger: padded with dummies
  int64_t context = 2048;
  DType type = DType::kF32;       // type of every matrix; norms and biases stay f32
  uint64_t seed = 1;
  std::optional<bool> tied;       // output.weight absent; default: llama, qwen3vl tied
  std::optional<double> rope_base;  // default: llama, glm4 10000, qwen2 1000000
  std::optional<double> rms_eps;    // default: llama, glm4 1e-5, qwen2, qwen3vl 1e-6
  // qwen2vl, glm4: <arch>.rope.dimension_sections (M-RoPE pairs per t/h/w/e axis);
  // nullopt = not written (a file converted without them). Default (make-test-model):
  // the 1/4, 3/8, 3/8 split of the rotated pairs (TestRopeSections). A glm4 file with
  // sections has Q/K in llama.cpp's reordered (neox) layout, without them in HF's.
  std::optional<std::array<int32_t, 4>> rope_sections;
  // A GGUF whose byte-level BPE vocabulary (tokens, types, merges, pre-tokenizer) replaces
  // the built-in ~512-token one, e.g. llama.cpp's models/ggml-vocab-gpt-2.gguf: prompts
  // then cost as many tokens as with a real tokenizer (benchmarks at real shapes). The
  // family's special tokens are appended where the file lacks them.
  std::string vocab_from;
};
// Qwen2-VL's split of head_dim / 2 rotation pairs over t, h, w ([16, 24, 24, 0] at 128).
std::array<int32_t, 4> DefaultRopeSections(int64_t head_dim);
// Rotated dims of a test model's heads: head_dim, or head_dim / 2 for glm4 (partial RoPE).
int64_t TestRopeDims(const TestModelOptions& options);
// A test model's head size: options.head_dim, else hidden / heads.
int64_t TestHeadDim(const TestModelOptions& options);
// qwen3vl: the n_deepstack_layers it writes (min(3, layers - 1) unless given); 0 else. A
// matching mmproj projects to (1 + this) x hidden.
int64_t TestDeepstackLayers(const TestModelOptions& options);
// The default sections for `options` (qwen2vl, glm4, qwen3vl): the split of TestRopeDims / 2
// pairs ([16, 24, 24, 0] for Qwen2-VL at head_dim 128, [8, 12, 12, 0] for GLM-4.1V at 128;
// qwen3vl [24, 20, 20, 0] at 128, 5/16 of the pairs each to h and w).
std::array<int32_t, 4> TestRopeSections(const TestModelOptions& options);

// "smolvlm-256m" / "smolvlm-500m" / "qwen2vl-2b" / "qwen25vl-3b" / "internvl3-1b" /
// "glm41v-9b" / "qwen3vl-2b": the text-tower shapes of those models (random weights).
StatusOr<TestModelOptions> TestModelPreset(std::string_view preset);
// Applies "hidden=64,layers=2,heads=4,kv_heads=2,ffn=128,vocab=0,context=2048" style pairs.
Status ParseTestModelDims(std::string_view dims, TestModelOptions* options);

// The byte-level BPE vocabulary of test models: 256 byte tokens (GPT-2 byte-to-unicode
// order), merges learned from a built-in English text, the family's special tokens
// (CONTROL) and, when `vocab_size` asks for more, dummy tokens.
struct TestVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;  // 1 normal, 3 control
  std::vector<std::string> merges;   // "left right", by rank
  int32_t bos = 0, eos = 0, pad = 0;
  int32_t eot = -1;                  // glm4: tokenizer.ggml.eot_token_id (<|user|>)
  std::string pre;                   // tokenizer.ggml.pre
  std::string chat_template;
};
StatusOr<TestVocab> BuildTestVocab(std::string_view arch, int64_t vocab_size);
// The same with `base`'s tokens, types, merges and pre-tokenizer (a byte-level BPE, model
// "gpt2") in place of the built-in ones.
StatusOr<TestVocab> BuildTestVocab(std::string_view arch, int64_t vocab_size,
                                   const tokenizer::TokenizerConfig& base);

// The type a matrix with `cols` columns gets when `type` is requested: `type` itself, or
// llama.cpp's per-tensor fallback when cols is not a multiple of the K-quant super-block
// (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; F16 if cols is not a multiple of 32).
DType TestModelMatrixType(DType type, int64_t cols);

// The complete GGUF (metadata + tensors) for `options`.
StatusOr<gguf::Writer> BuildTestModel(const TestModelOptions& options);
// Writes dir/text.gguf (creating dir).
Status WriteTestModel(const TestModelOptions& options, const std::string& dir);

// N(mean, stddev²) values from the per-tensor stream of `name` (the generator's PRNG).
std::vector<float> TestRandomValues(uint64_t seed, std::string_view name, int64_t n,
                                    double mean, double stddev);

// A vision tower + projector (`mmproj`, arch clip) for `make-test-model --vision`
// (test_mmproj.cc). Defaults are tiny; VisionTestPreset gives real shapes.
struct VisionTestOptions {
  // idefics3 (SigLIP-style) | mlp (CLIP-style) | qwen2vl_merger | internvl (InternViT) |
  // glm4v (GLM-4.1V)
  std::string projector = "idefics3";
  int64_t image_size = 32;
  int64_t patch_size = 8;
  int64_t hidden = 32;
  int64_t layers = 2;
  int64_t heads = 2;
  int64_t ffn = 64;
  int64_t scale_factor = 2;   // idefics3, internvl (pixel shuffle)
  int64_t text_hidden = 64;   // projector output width (must match the text model)
  int64_t n_wa_pattern = 2;   // qwen2.5vl_merger: full attention every n-th layer
  int64_t merger_ffn = 0;     // glm4v: the merger's SwiGLU width (0 = 2 * text_hidden)
  // qwen3vl_merger: tower layers with a deepstack merger (HF deepstack_visual_indexes); the
  // text model's n_deepstack_layers must be their count.
  std::vector<int64_t> deepstack_layers;
  DType type = DType::kF32;   // matrices (incl. the patch conv); norms/biases stay f32
  uint64_t seed = 1;
};
// "smolvlm-256m": SigLIP-B/16 at 512 px (768 wide, 12 layers, 12 heads, FFN 3072,
// scale factor 4, projection to 576); "smolvlm-500m": same tower, projection to 960;
// "internvl3-1b": InternViT-300M at 448 px (1024 wide, 24 layers, 16 heads, FFN 4096,
// patch 14, scale factor 2, projection to 896); "glm41v-9b": GLM-4.1V-9B's ViT (1536 wide,
// 24 layers, 12 heads, patch 14, 24x24 position table at 336 px, SwiGLU 4096, merger to
// 4096 with SwiGLU 13696); "qwen3vl-2b": Qwen3-VL-2B's ViT (1024 wide, 24 layers, 16 heads,
// patch 16, 48x48 position table at 768 px, GELU-tanh 4096, merger to 2048, deepstack
// taps after layers 5, 11, 17).
StatusOr<VisionTestOptions> VisionTestPreset(std::string_view preset);
// The tiny defaults for `projector` (dynamic-resolution towers take 14-px patches;
// qwen3vl_merger 16-px ones, 3 layers with deepstack taps after layers 0 and 1).
VisionTestOptions TinyVisionTestOptions(std::string_view projector);
// n deepstack taps spread over a tower of `layers` layers as Qwen3-VL spreads them
// ((k + 1) * layers / (n + 1) - 1: [5, 11, 17] for 24 layers and 3 taps).
std::vector<int64_t> SpreadDeepstackLayers(int64_t layers, int64_t n);
StatusOr<gguf::Writer> BuildTestMmproj(const VisionTestOptions& options);
// Writes dir/mmproj.gguf (creating dir).
Status WriteTestMmproj(const VisionTestOptions& options, const std::string& dir);

}  // namespace vlserve::models
