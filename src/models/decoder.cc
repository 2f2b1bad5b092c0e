// The shared decoder forward pass (llama / qwen2 / qwen2vl / glm4 / qwen3vl; per-arch
// differences in ArchTraits):
//   x = embed(tokens)
//   per layer:  x += p(Wo · Attn(rope(Wq·n(x) + bq), rope(Wk·n(x) + bk), Wv·n(x) + bv))
// rope() rotates by the token's RoPE position (multi-axis for M-RoPE items); the causal
// mask and the KV placement use its KV slot (BatchItem).
//               x += p(Wdown · (silu(Wgate·n(x)) * Wup·n(x)))
//   logits = Wout · n(x)            (n = RMSNorm with that block's weight)
// p is the identity, or for glm4 ("sandwich" norms) RMSNorm with post_attention_norm /
// post_ffw_norm. qwen3vl RMSNorms each Q and K head (attn_q_norm / attn_k_norm) before
// rope(), and after layer k < n_deepstack adds slice k + 1 of each image token's embedding
// row to x (deepstack; text tokens get nothing).
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "kernels/matmul_fused.h"
#include "models/text_model.h"

namespace vlserve::models {

StatusOr<DType> ParseKvType(std::string_view name) {
  if (name == "f16") return DType::kF16;
  if (name == "bf16") return DType::kBF16;
  if (name == "f32") return DType::kF32;
  return InvalidArgumentError(
      fmt::format("kv type '{}' is not supported; use f16 (default), bf16 or f32", name));
}

int64_t KvBuffer::BytesPerToken(const TextConfig& config, DType type) {
  CHECK(kernels::IsKvType(type)) << "kv type " << Info(type).name;
  return 2 * config.num_layers * RowBytes(type, config.num_kv_heads * config.head_dim);
}

KvBuffer::KvBuffer(const TextConfig& config, int64_t num_blocks, DType type)
    : num_blocks_(num_blocks),
      block_floats_(kKvBlockSize * config.num_kv_heads * config.head_dim),
      block_bytes_(RowBytes(type, block_floats_)),
      type_(type),
      num_layers_(config.num_layers) {
  CHECK(kernels::IsKvType(type)) << "kv type " << Info(type).name;
  // Untouched cache memory is never read (attention stops at the sequence length), but
  // the mapping's zero pages keep any bug deterministic, at no resident cost.
  const size_t size = bytes();
  if (size == 0) return;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED) << "cannot reserve " << size / 1048576 << " MiB of KV cache; lower "
                         << "--ctx-size or use a smaller --kv-type";
  pool_ = std::unique_ptr<uint8_t, Unmap>(static_cast<uint8_t*>(p), Unmap{size});
}

void KvBuffer::Unmap::operator()(uint8_t* p) const { munmap(p, bytes); }

size_t KvBuffer::resident_bytes() const {
  if (pool_ == nullptr) return 0;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in_core((bytes() + page - 1) / page);
  if (mincore(pool_.get(), bytes(), in_core.data()) != 0) return bytes();  // unknown: all
  size_t pages = 0;
  for (unsigned char c : in_core) pages += c & 1;
  return std::min(bytes(), pages * page);
}

size_t KvBuffer::bytes() const {
  return static_cast<size_t>(2 * num_layers_ * num_blocks_ * block_bytes_);
}

void KvBuffer::Write(int64_t layer, int64_t block, int64_t slot, const float* k,
                     const float* v) {
  const int64_t n = block_floats_ / kKvBlockSize;  // n_kv * hd
  const int64_t off = slot * RowBytes(type_, n);
  uint8_t* kd = static_cast<uint8_t*>(KBlock(layer, block)) + off;
  uint8_t* vd = static_cast<uint8_t*>(VBlock(layer, block)) + off;
  if (type_ == DType::kF32) {
    std::memcpy(kd, k, n * sizeof(float));
    std::memcpy(vd, v, n * sizeof(float));
  } else {
    kernels::Quantize(type_, k, kd, n);
    kernels::Quantize(type_, v, vd, n);
  }
}

int64_t NumLogitRows(const std::vector<BatchItem>& items) {
  int64_t rows = 0;
  for (const BatchItem& item : items) {
    rows += item.logits_for_all ? static_cast<int64_t>(item.tokens.size()) : 1;
  }
  return rows;
}

Status TextModel::ValidateBatch(const std::vector<BatchItem>& items, const KvBuffer& kv) const {
  const TextConfig& c = config_;
  if (kv.num_layers() != c.num_layers ||
      kv.block_floats() != kKvBlockSize * c.num_kv_heads * c.head_dim) {
    return InvalidArgumentError("KvBuffer was made for a model with other dimensions");
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& it = items[i];
    const int64_t n = static_cast<int64_t>(it.tokens.size());
    const int64_t end = it.start_pos + n;
    if (n == 0 || it.start_pos < 0) {
      return InvalidArgumentError(
          fmt::format("batch item {}: needs at least one token and start_pos >= 0", i));
    }
    if (end > c.context_length) {
      return OutOfRangeError(fmt::format(
          "batch item {}: {} tokens exceed the model's context length {}; shorten the prompt "
          "or the requested output",
          i, end, c.context_length));
    }
    if (it.num_blocks * kKvBlockSize < end || it.block_table == nullptr) {
      return InvalidArgumentError(fmt::format(
          "batch item {}: block table has {} blocks, {} tokens need {}", i, it.num_blocks, end,
          (end + kKvBlockSize - 1) / kKvBlockSize));
    }
    for (int64_t b = 0; b < (end + kKvBlockSize - 1) / kKvBlockSize; ++b) {
      if (it.block_table[b] < 0 || it.block_table[b] >= kv.num_blocks()) {
        return InvalidArgumentError(fmt::format("batch item {}: block id {} outside [0, {})", i,
                                                it.block_table[b], kv.num_blocks()));
      }
    }
    if (it.rope_positions != nullptr && !c.rope_sections.active()) {
      return InvalidArgumentError(fmt::format(
          "batch item {}: multi-axis RoPE positions given, but the model has no "
          "{}.rope.dimension_sections",
          i, c.arch));
    }
    for (int32_t t : it.tokens) {
      if (t >= c.vocab || (t < 0 && it.embeddings == nullptr)) {
        return InvalidArgumentError(
            fmt::format("batch item {}: token id {} outside the vocabulary [0, {})", i, t,
                        c.vocab));
      }
    }
  }
  return OkStatus();
}

void TextModel::Embed(const std::vector<BatchItem>& items, float* x) const {
  const int64_t hidden = config_.hidden, width = config_.embedding_width();
  const int64_t row_bytes = RowBytes(token_embd_.type, hidden);
  const auto* table = static_cast<const uint8_t*>(token_embd_.data);
  for (const BatchItem& item : items) {
    for (size_t i = 0; i < item.tokens.size(); ++i, x += hidden) {
      const int32_t t = item.tokens[i];
      if (t >= 0) {
        kernels::Dequantize(token_embd_.type, table + t * row_bytes, x, hidden);
      } else {
        std::memcpy(x, item.embeddings + i * width, hidden * sizeof(float));
      }
    }
  }
}

namespace {

// Token rows per parallel chunk of the element-wise ops: below this the whole batch runs
// on the calling thread (a decode step's rows take well under a microsecond).
constexpr int64_t kRowsPerTask = 8;

// fn(i0, i1) over token rows [0, n): split over the pool for prefill-sized batches.
template <class Fn>
void ForRows(ThreadPool* pool, int64_t n, const Fn& fn) {
  if (n < 2 * kRowsPerTask) {
    fn(int64_t{0}, n);
  } else {
    pool->ParallelFor(n, kRowsPerTask, fn);
  }
}

void NormRows(const float* x, const std::vector<float>& w, float eps, int64_t i0, int64_t i1,
              float* y) {
  const int64_t d = static_cast<int64_t>(w.size());
  for (int64_t i = i0; i < i1; ++i) kernels::RmsNorm(x + i * d, w.data(), eps, d, y + i * d);
}

// x += post_norm(proj) (plain proj when `post_norm` is empty), then xn = RmsNorm(x) with
// `norm` (rows [i0, i1)); one pass per row. proj is normalized in place.
void AddNormRows(float* x, float* proj, const std::vector<float>& post_norm,
                 const std::vector<float>& norm, float eps, int64_t i0, int64_t i1, float* xn) {
  const int64_t d = static_cast<int64_t>(norm.size());
  for (int64_t i = i0; i < i1; ++i) {
    if (!post_norm.empty()) {
      kernels::RmsNorm(proj + i * d, post_norm.data(), eps, d, proj + i * d);
    }
    kernels::Add(x + i * d, proj + i * d, x + i * d, d);
    kernels::RmsNorm(x + i * d, norm.data(), eps, d, xn + i * d);
  }
}

}  // namespace

// Expects s.xn = attn_norm(x) for this layer; leaves s.xn = ffn_norm(x) for the MLP.
void TextModel::AttentionBlock(int64_t layer, const std::vector<BatchItem>& items, KvBuffer& kv,
                               ForwardScratch& s, int64_t n, ThreadPool* pool) const {
  const TextConfig& c = config_;
  const LayerWeights& w = layers_[layer];
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  {
    const kernels::WeightView ws[3] = {w.wq, w.wk, w.wv};
    float* const ys[3] = {s.q.data(), s.k.data(), s.v.data()};  // [n, q_dim], [n, kv_dim] x2
    kernels::MatMulFused(ws, ys, 3, s.xn.data(), n, pool);
  }
  // Bias, RoPE and the K/V append, per token row (row -> item via s.row_item).
  const float base = static_cast<float>(c.rope_base);
  const bool mrope = !s.rope_pos.empty();
  ForRows(pool, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* q = s.q.data() + i * q_dim;
      float* k = s.k.data() + i * kv_dim;
      float* v = s.v.data() + i * kv_dim;
      if (!w.q_bias.empty()) kernels::Add(q, w.q_bias.data(), q, q_dim);
      if (!w.k_bias.empty()) kernels::Add(k, w.k_bias.data(), k, kv_dim);
      if (!w.v_bias.empty()) kernels::Add(v, w.v_bias.data(), v, kv_dim);
      if (!w.q_norm.empty()) {
        for (int64_t h = 0; h < c.num_heads; ++h) {
          kernels::RmsNorm(q + h * c.head_dim, w.q_norm.data(), c.rms_eps, c.head_dim,
                           q + h * c.head_dim);
        }
        for (int64_t h = 0; h < c.num_kv_heads; ++h) {
          kernels::RmsNorm(k + h * c.head_dim, w.k_norm.data(), c.rms_eps, c.head_dim,
                           k + h * c.head_dim);
        }
      }
      const int64_t pos = s.positions[i];  // KV slot
      if (mrope) {
        const int32_t* rp = s.rope_pos.data() + 4 * i;
        kernels::RopeMulti(q, c.num_heads, c.head_dim, c.rope_dims, rp, base, c.rope_style,
                           c.rope_sections);
        kernels::RopeMulti(k, c.num_kv_heads, c.head_dim, c.rope_dims, rp, base, c.rope_style,
                           c.rope_sections);
      } else {
        kernels::Rope(q, c.num_heads, c.head_dim, c.rope_dims, pos, base, c.rope_style);
        kernels::Rope(k, c.num_kv_heads, c.head_dim, c.rope_dims, pos, base, c.rope_style);
      }
      const BatchItem& item = items[s.row_item[i]];
      const int64_t block = item.block_table[pos / kKvBlockSize];
      kv.Write(layer, block, pos % kKvBlockSize, k, v);
    }
  });
  // Attend per item over its whole history.
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  int64_t row = 0;
  for (const BatchItem& item : items) {
    const int64_t ni = static_cast<int64_t>(item.tokens.size());
    const int64_t length = item.start_pos + ni;
    const int64_t nb = (length + kKvBlockSize - 1) / kKvBlockSize;
    s.k_ptrs.resize(nb);
    s.v_ptrs.resize(nb);
    for (int64_t b = 0; b < nb; ++b) {
      s.k_ptrs[b] = kv.KBlock(layer, item.block_table[b]);
      s.v_ptrs[b] = kv.VBlock(layer, item.block_table[b]);
    }
    const kernels::KvView view{s.k_ptrs.data(), s.v_ptrs.data(), kKvBlockSize, length,
                               kv.type()};
    kernels::Attention(s.q.data() + row * q_dim, ni, c.num_heads, c.num_kv_heads, c.head_dim,
                       view, s.positions.data() + row, scale, s.attn.data() + row * q_dim, pool);
    row += ni;
  }
  kernels::MatMul(w.wo, s.attn.data(), n, s.proj.data(), pool);  // [n, hidden]
  ForRows(pool, n, [&](int64_t i0, int64_t i1) {
    AddNormRows(s.x.data(), s.proj.data(), w.post_attn_norm, w.ffn_norm, c.rms_eps, i0, i1,
                s.xn.data());
  });
}

// Expects s.xn = ffn_norm(x); leaves s.xn = attn_norm of the next layer (or the final
// norm after the last layer, for every row).
void TextModel::MlpBlock(int64_t layer, ForwardScratch& s, int64_t n, ThreadPool* pool) const {
  const TextConfig& c = config_;
  const LayerWeights& w = layers_[layer];
  {
    const kernels::WeightView ws[2] = {w.w_gate, w.w_up};
    float* const ys[2] = {s.gate.data(), s.up.data()};  // [n, ffn] x2
    kernels::MatMulFused(ws, ys, 2, s.xn.data(), n, pool);
  }
  ForRows(pool, n, [&](int64_t i0, int64_t i1) {
    kernels::SwiGlu(s.gate.data() + i0 * c.ffn, s.up.data() + i0 * c.ffn,
                    s.gate.data() + i0 * c.ffn, (i1 - i0) * c.ffn);
  });
  kernels::MatMul(w.w_down, s.gate.data(), n, s.proj.data(), pool);  // [n, hidden]
  if (layer < c.deepstack_layers) {
    // x += proj + deepstack slice: folded into proj, which no post-norm rescales (no
    // deepstack architecture has post_norms).
    CHECK(w.post_ffn_norm.empty());
    for (int64_t i = 0; i < n; ++i) {
      if (s.embed_rows[i] == nullptr) continue;
      float* p = s.proj.data() + i * c.hidden;
      kernels::Add(p, s.embed_rows[i] + (layer + 1) * c.hidden, p, c.hidden);
    }
  }
  const bool last = layer + 1 == c.num_layers;
  const std::vector<float>& next_norm = last ? output_norm_ : layers_[layer + 1].attn_norm;
  ForRows(pool, n, [&](int64_t i0, int64_t i1) {
    AddNormRows(s.x.data(), s.proj.data(), w.post_ffn_norm, next_norm, c.rms_eps, i0, i1,
                s.xn.data());
  });
}

Status TextModel::Forward(const std::vector<BatchItem>& items, KvBuffer& kv,
                          ForwardScratch& s, float* logits, ThreadPool* pool) const {
  RETURN_IF_ERROR(ValidateBatch(items, kv));
  const TextConfig& c = config_;
  int64_t n = 0;
  for (const BatchItem& item : items) n += static_cast<int64_t>(item.tokens.size());
  if (n == 0) return OkStatus();
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  s.x.Resize(n * c.hidden);
  s.xn.Resize(n * c.hidden);
  s.proj.Resize(n * c.hidden);
  s.q.Resize(n * q_dim);
  s.attn.Resize(n * q_dim);
  s.k.Resize(n * kv_dim);
  s.v.Resize(n * kv_dim);
  s.gate.Resize(n * c.ffn);
  s.up.Resize(n * c.ffn);
  s.positions.clear();
  s.row_item.clear();
  s.rope_pos.clear();
  s.embed_rows.clear();
  bool any_rope_positions = false;
  for (const BatchItem& item : items) any_rope_positions |= item.rope_positions != nullptr;
  for (size_t it = 0; it < items.size(); ++it) {
    const BatchItem& item = items[it];
    for (size_t i = 0; i < item.tokens.size(); ++i) {
      const auto slot = static_cast<int32_t>(item.start_pos + i);
      s.positions.push_back(slot);
      s.row_item.push_back(static_cast<int32_t>(it));
      if (c.deepstack_layers > 0) {
        s.embed_rows.push_back(item.tokens[i] < 0 ? item.embeddings + i * c.embedding_width()
                                                  : nullptr);
      }
      if (!any_rope_positions) continue;
      if (item.rope_positions != nullptr) {
        s.rope_pos.insert(s.rope_pos.end(), item.rope_positions + 4 * i,
                          item.rope_positions + 4 * i + 4);
      } else {
        s.rope_pos.insert(s.rope_pos.end(), {slot, slot, slot, 0});
      }
    }
  }
  if (pool == nullptr) pool = &DefaultThreadPool();
  Embed(items, s.x.data());
  ForRows(pool, n, [&](int64_t i0, int64_t i1) {
    NormRows(s.x.data(), layers_[0].attn_norm, c.rms_eps, i0, i1, s.xn.data());
  });
  for (int64_t l = 0; l < c.num_layers; ++l) {
    AttentionBlock(l, items, kv, s, n, pool);
    MlpBlock(l, s, n, pool);
  }
  // s.xn now holds output_norm(x) for every row. Only the rows that need logits go
  // through the (vocab-wide) output matmul.
  const int64_t rows = NumLogitRows(items);
  s.final_rows.Resize(rows * c.hidden);
  int64_t src = 0, dst = 0;
  for (const BatchItem& item : items) {
    const int64_t ni = static_cast<int64_t>(item.tokens.size());
    const int64_t first = item.logits_for_all ? 0 : ni - 1;
    std::memcpy(s.final_rows.data() + dst * c.hidden, s.xn.data() + (src + first) * c.hidden,
                (ni - first) * c.hidden * sizeof(float));
    dst += ni - first;
    src += ni;
  }
  kernels::MatMul(output_, s.final_rows.data(), rows, logits, pool);
  return OkStatus();
}

}  // namespace vlserve::models
