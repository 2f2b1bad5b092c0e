// Decoder-only text models (llama, qwen2, qwen2vl, glm4, qwen3vl) loaded from GGUF, and
// their batched forward pass.
//
// A TextModel is immutable after loading: matrices stay memory-mapped in their GGUF type;
// only the small 1-D tensors (norms, biases) are copied to float32. Everything that
// changes per request — the paged KV cache (KvBuffer), activations (ForwardScratch), the
// block tables and positions — belongs to the caller, so one model serves many sequences.
//
// One Forward call runs a batch of sequences of different lengths: the new tokens of all
// items are concatenated into one [N, hidden] activation so every weight matmul runs once
// over all N tokens; attention then runs per item over that item's paged KV.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/aligned.h"
#include "base/status.h"
#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

namespace vlserve::models {

// Tokens per KV block (docs/architecture.md "KV cache").
inline constexpr int kKvBlockSize = 16;

// What differs between the supported decoder architectures. Everything else (RMSNorm,
// GQA attention, SwiGLU MLP, tied output) is shared in decoder.cc.
struct ArchTraits {
  const char* name;                  // GGUF general.architecture and metadata key prefix
  kernels::RopeStyle rope_style;     // llama: kNormal (GGUF-permuted Q/K); qwen2: kNeox
  bool qkv_bias;                     // qwen2 has blk.N.attn_{q,k,v}.bias
  double default_rope_base;          // when <arch>.rope.freq_base is absent
  // Multi-axis RoPE (qwen2vl, glm4): <arch>.rope.dimension_sections gives each position
  // axis its rotation pairs. Text alone runs the same with or without it (all axes equal).
  bool mrope = false;
  // glm4: llama.cpp's converter reorders the rotated Q/K rows to neox order only when it
  // writes rope.dimension_sections; a file without them keeps Hugging Face's interleaved
  // pairs, which `rope_style` (kNormal) rotates.
  bool neox_with_sections = false;
  // Q/K/V biases that a file may or may not have (glm4: llama.cpp loads each one if
  // present). `qkv_bias` makes them required.
  bool optional_qkv_bias = false;
  // "Sandwich" norms (glm4): blk.N.post_attention_norm and blk.N.post_ffw_norm normalize
  // the attention and MLP outputs before each residual add.
  bool post_norms = false;
  // blk.N.ffn_up holds gate and up stacked, [2 * ffn, hidden] (gate rows first), and
  // there is no ffn_gate (glm4; Hugging Face's gate_up_proj).
  bool fused_gate_up = false;
  // Qwen3-style QK-norm: blk.N.attn_q_norm / attn_k_norm ([head_dim]) RMSNorm every Q and
  // K head after the projection, before RoPE (qwen3vl).
  bool qk_norm = false;
  // M-RoPE pairs interleave the axes (Qwen3-VL's "imrope", kernels::RopeSections).
  bool interleaved_mrope = false;
  // <arch>.n_deepstack_layers = n: image embedding rows are (1 + n) x hidden wide, and
  // slice k + 1 of an image token's row is added to its residual after layer k < n
  // (qwen3vl; llama.cpp's n_embd_inp).
  bool deepstack = false;
};

// Hyperparameters read from GGUF metadata.
struct TextConfig {
  std::string arch;
  std::string name;            // general.name (may be empty)
  int64_t context_length = 0;
  int64_t hidden = 0;          // embedding_length
  int64_t num_layers = 0;
  int64_t ffn = 0;             // feed_forward_length
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;        // attention.key_length, default hidden / num_heads
  int64_t rope_dims = 0;       // rope.dimension_count, default head_dim
  int64_t vocab = 0;           // rows of token_embd
  double rope_base = 10000.0;
  float rms_eps = 1e-5f;
  bool tied_output = false;    // output.weight absent: logits use token_embd
  // M-RoPE sections from <arch>.rope.dimension_sections (all zero when absent: then only
  // 1-D positions can be served, and image grids are refused).
  kernels::RopeSections rope_sections;
  // The pair layout RoPE rotates in this file: ArchTraits::rope_style, or kNeox for a
  // neox_with_sections architecture whose file has sections.
  kernels::RopeStyle rope_style = kernels::RopeStyle::kNormal;
  // Deepstack slices per image embedding row (<arch>.n_deepstack_layers; 0 for most).
  int64_t deepstack_layers = 0;
  // Floats per image embedding row (BatchItem::embeddings, the vision tower's output):
  // the main embedding then `deepstack_layers` slices, each `hidden` wide.
  int64_t embedding_width() const { return hidden * (1 + deepstack_layers); }
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [hidden]
  std::vector<float> post_attn_norm, post_ffn_norm;  // [hidden]; empty unless post_norms
  std::vector<float> q_bias, k_bias, v_bias;  // [n_heads*hd], [n_kv*hd] x2; empty if none
  std::vector<float> q_norm, k_norm;       // [hd] each; empty unless qk_norm
  kernels::WeightView wq, wk, wv, wo;      // [n_heads*hd, hidden], [n_kv*hd, hidden] x2,
                                           // [hidden, n_heads*hd]
  kernels::WeightView w_gate, w_up, w_down;  // [ffn, hidden] x2, [hidden, ffn]; with
                                             // fused_gate_up, gate and up are the two
                                             // row halves of one ffn_up tensor
};

// What KV caches store by default: IEEE half. Half the bytes of float, so a pool holds
// twice the tokens and decode at long context streams half as much; llama.cpp's default
// too. Its 11-bit significand keeps greedy output equal to a float cache on the golden
// fixtures, where bfloat16's 8 bits do not always (docs/architecture.md "KV cache").
inline constexpr DType kDefaultKvType = DType::kF16;

// "f16" | "bf16" | "f32" (the --kv-type flag); InvalidArgument names the choices.
StatusOr<DType> ParseKvType(std::string_view name);

// The physical KV memory of all sequences: per layer `num_blocks` blocks, each K block
// [kKvBlockSize, num_kv_heads, head_dim] values of type() (kF16, kBF16 or kF32) and V the
// same. Attention widens 16-bit values to float on load; all arithmetic is float. Which
// block belongs to which sequence is the caller's business (block tables; src/cache
// allocates the ids).
class KvBuffer {
 public:
  // `type` defaults to the exact float cache (what the model's reference tests compare);
  // the server, bench and generate pass kDefaultKvType unless told otherwise.
  KvBuffer(const TextConfig& config, int64_t num_blocks, DType type = DType::kF32);

  // Bytes one token takes in a cache of `type`: K and V rows of every layer.
  static int64_t BytesPerToken(const TextConfig& config, DType type);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_layers() const { return num_layers_; }
  DType type() const { return type_; }
  int64_t block_floats() const { return block_floats_; }  // values: kKvBlockSize * n_kv * hd
  size_t bytes() const;
  // The part of bytes() in memory: the pages written so far (mincore).
  size_t resident_bytes() const;

  // [kKvBlockSize, n_kv, hd] values of type().
  void* KBlock(int64_t layer, int64_t block) {
    return pool_.get() + (2 * layer * num_blocks_ + block) * block_bytes_;
  }
  void* VBlock(int64_t layer, int64_t block) {
    return pool_.get() + ((2 * layer + 1) * num_blocks_ + block) * block_bytes_;
  }
  // Stores one token's K and V rows [n_kv * hd] at `slot` (< kKvBlockSize) of `block`,
  // rounded to type() (to nearest even).
  void Write(int64_t layer, int64_t block, int64_t slot, const float* k, const float* v);

 private:
  int64_t num_blocks_;
  int64_t block_floats_;
  int64_t block_bytes_;
  DType type_;
  int64_t num_layers_;
  struct Unmap {
    // No default member initializer: with one, the nested struct is not default-
    // constructible inside KvBuffer, which unique_ptr's default constructor requires.
    size_t bytes;
    void operator()(uint8_t* p) const;
  };
  // [num_layers][K, V][num_blocks, block_bytes] in one anonymous mapping: its pages read as
  // zero and become resident when first written, so RSS grows with the blocks in use
  // instead of holding the whole pool from the start (360 MiB for smolvlm-256m's default
  // 16384 tokens; docs/serve.md "Memory").
  std::unique_ptr<uint8_t, Unmap> pool_;
};

// The new tokens of one sequence in a Forward call.
//
// A token has two position numbers (docs/architecture.md "Positions"): its KV slot — the
// index in the sequence, which says where its K/V go and what it may attend to (causal
// mask) — and its RoPE position, which sets the rotation angles. They are equal for
// text-only families; M-RoPE families give image tokens (t, row, col) grid positions.
struct BatchItem {
  // Block table of the sequence: block j holds KV slots [16j, 16j+16). It must cover
  // start_pos + tokens.size() slots.
  const int32_t* block_table = nullptr;
  int64_t num_blocks = 0;
  int64_t start_pos = 0;  // KV slot of tokens[0]; the KV holds slots [0, start_pos)
  // Token ids. A negative id means "row i of `embeddings`" instead of an embedding lookup
  // (the hook for image embeddings from a vision tower).
  std::span<const int32_t> tokens;
  // [tokens.size(), TextConfig::embedding_width()] or null: hidden wide, or with deepstack
  // the main embedding then one slice per deepstack layer (only rows at negative ids are
  // read).
  const float* embeddings = nullptr;
  bool logits_for_all = false;        // logits for every token, else only the last one
  // RoPE positions [tokens.size(), 4] (t, h, w, e) for M-RoPE models; null = the KV slot
  // on every axis.
  const int32_t* rope_positions = nullptr;
};

// Number of logit rows Forward writes for `items` (tokens.size() or 1 per item).
int64_t NumLogitRows(const std::vector<BatchItem>& items);

// Activation buffers reused across Forward calls (grown on demand).
struct ForwardScratch {
  AlignedBuffer<float> x, xn;        // [N, hidden]
  AlignedBuffer<float> q, attn;      // [N, n_heads*hd]
  AlignedBuffer<float> k, v;         // [N, n_kv*hd]
  AlignedBuffer<float> gate, up;     // [N, ffn]
  AlignedBuffer<float> proj;         // [N, hidden]
  AlignedBuffer<float> final_rows;   // [n_logit_rows, hidden]
  std::vector<int32_t> positions;    // [N] KV slots (mask index and KV placement)
  std::vector<int32_t> rope_pos;     // [N, 4] RoPE positions per axis
  std::vector<int32_t> row_item;     // [N] index of the batch item each row belongs to
  std::vector<const float*> embed_rows;  // [N] deepstack models: the embedding row fed at
                                         // that token, null for token ids
  std::vector<const void*> k_ptrs, v_ptrs;  // block pointers of one item
};

class TextModel {
 public:
  // Reads hyperparameters for `traits`, checks every tensor's presence, type and shape.
  static StatusOr<std::unique_ptr<TextModel>> Load(std::unique_ptr<gguf::File> file,
                                                   const ArchTraits& traits);

  const TextConfig& config() const { return config_; }
  const ArchTraits& traits() const { return *traits_; }
  const gguf::File& file() const { return *file_; }
  // Bytes of all weights as stored (what one decode step streams from memory).
  int64_t weight_bytes() const { return weight_bytes_; }
  // Bytes of the copies made at load (prepacked layouts, huge-page copies); the file
  // pages still read at run time are file().PagesInUse().
  int64_t copy_bytes() const;
  // Multiply-adds per token in the weight matmuls (x2 for FLOPs; attention excluded).
  int64_t matmul_macs_per_token() const;

  // Runs the new tokens of every item, appends their K/V to `kv` (at the items' block
  // tables), and writes logits [NumLogitRows(items), vocab] to `logits`, items in order.
  // Errors (InvalidArgument / OutOfRange) name the item and what was wrong; no KV is
  // written when an error is returned.
  Status Forward(const std::vector<BatchItem>& items, KvBuffer& kv, ForwardScratch& scratch,
                 float* logits, ThreadPool* pool = nullptr) const;

 private:
  TextModel() = default;
  Status ReadConfig();
  Status LoadWeights();
  Status ValidateBatch(const std::vector<BatchItem>& items, const KvBuffer& kv) const;
  void Embed(const std::vector<BatchItem>& items, float* x) const;
  void AttentionBlock(int64_t layer, const std::vector<BatchItem>& items, KvBuffer& kv,
                      ForwardScratch& s, int64_t n, ThreadPool* pool) const;
  void MlpBlock(int64_t layer, ForwardScratch& s, int64_t n, ThreadPool* pool) const;

  std::unique_ptr<gguf::File> file_;
  const ArchTraits* traits_ = nullptr;
  TextConfig config_;
  kernels::WeightView token_embd_{}, output_{};
  std::vector<float> output_norm_;
  std::vector<LayerWeights> layers_;
  int64_t weight_bytes_ = 0;
  // Matrices repacked for the AVX-512 VNNI kernels (kernels::PrepackWeights) and copies
  // of the file's matrices on huge pages (loader.cc), owned here; the views in
  // layers_/output_ point at them.
  std::vector<AlignedBuffer<uint8_t>> prepacked_;
};

}  // namespace vlserve::models
