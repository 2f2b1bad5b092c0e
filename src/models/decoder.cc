// The shared decoder forward pass (llama / qwen2; per-arch differences in ArchTraits):
//   x = embed(tokens)
//   per layer:  x += Wo · Attn(rope(Wq·n(x) + bq), rope(Wk·n(x) + bk), Wv·n(x) + bv)
//               x += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
//   logits = Wout · n(x)            (n = RMSNorm with that block's weight)
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "base/check.h"
#include "models/text_model.h"

namespace vlserve::models {

KvBuffer::KvBuffer(const TextConfig& config, int64_t num_blocks)
    : num_blocks_(num_blocks),
      block_floats_(kKvBlockSize * config.num_kv_heads * config.head_dim),
      k_(config.num_layers),
      v_(config.num_layers) {
  for (int64_t l = 0; l < config.num_layers; ++l) {
    k_[l].Resize(num_blocks * block_floats_);
    v_[l].Resize(num_blocks * block_floats_);
    // Untouched cache memory is never read (attention stops at the sequence length), but
    // zeroing keeps any bug deterministic.
    k_[l].Zero();
    v_[l].Zero();
  }
}

size_t KvBuffer::bytes() const {
  return 2 * k_.size() * num_blocks_ * block_floats_ * sizeof(float);
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
  const int64_t hidden = config_.hidden;
  const int64_t row_bytes = RowBytes(token_embd_.type, hidden);
  const auto* table = static_cast<const uint8_t*>(token_embd_.data);
  for (const BatchItem& item : items) {
    for (size_t i = 0; i < item.tokens.size(); ++i, x += hidden) {
      const int32_t t = item.tokens[i];
      if (t >= 0) {
        kernels::Dequantize(token_embd_.type, table + t * row_bytes, x, hidden);
      } else {
        std::memcpy(x, item.embeddings + i * hidden, hidden * sizeof(float));
      }
    }
  }
}

namespace {

void AddBias(const std::vector<float>& bias, float* rows, int64_t n) {
  if (bias.empty()) return;
  const int64_t d = static_cast<int64_t>(bias.size());
  for (int64_t i = 0; i < n; ++i) kernels::Add(rows + i * d, bias.data(), rows + i * d, d);
}

void NormRows(const float* x, const std::vector<float>& w, float eps, int64_t n, float* y) {
  const int64_t d = static_cast<int64_t>(w.size());
  for (int64_t i = 0; i < n; ++i) kernels::RmsNorm(x + i * d, w.data(), eps, d, y + i * d);
}

}  // namespace

void TextModel::AttentionBlock(int64_t layer, const std::vector<BatchItem>& items, KvBuffer& kv,
                               ForwardScratch& s, int64_t n, ThreadPool* pool) const {
  const TextConfig& c = config_;
  const LayerWeights& w = layers_[layer];
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  NormRows(s.x.data(), w.attn_norm, c.rms_eps, n, s.xn.data());
  kernels::MatMul(w.wq, s.xn.data(), n, s.q.data(), pool);  // [n, q_dim]
  kernels::MatMul(w.wk, s.xn.data(), n, s.k.data(), pool);  // [n, kv_dim]
  kernels::MatMul(w.wv, s.xn.data(), n, s.v.data(), pool);  // [n, kv_dim]
  AddBias(w.q_bias, s.q.data(), n);
  AddBias(w.k_bias, s.k.data(), n);
  AddBias(w.v_bias, s.v.data(), n);
  const float base = static_cast<float>(c.rope_base);
  for (int64_t i = 0; i < n; ++i) {
    kernels::Rope(s.q.data() + i * q_dim, c.num_heads, c.head_dim, c.rope_dims, s.positions[i],
                  base, traits_->rope_style);
    kernels::Rope(s.k.data() + i * kv_dim, c.num_kv_heads, c.head_dim, c.rope_dims,
                  s.positions[i], base, traits_->rope_style);
  }
  // Append K/V rows to each item's blocks, then attend per item over its whole history.
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  int64_t row = 0;
  for (const BatchItem& item : items) {
    const int64_t ni = static_cast<int64_t>(item.tokens.size());
    for (int64_t i = 0; i < ni; ++i) {
      const int64_t pos = item.start_pos + i;
      const int64_t block = item.block_table[pos / kKvBlockSize];
      const int64_t off = (pos % kKvBlockSize) * kv_dim;
      std::memcpy(kv.KBlock(layer, block) + off, s.k.data() + (row + i) * kv_dim,
                  kv_dim * sizeof(float));
      std::memcpy(kv.VBlock(layer, block) + off, s.v.data() + (row + i) * kv_dim,
                  kv_dim * sizeof(float));
    }
    const int64_t length = item.start_pos + ni;
    const int64_t nb = (length + kKvBlockSize - 1) / kKvBlockSize;
    s.k_ptrs.resize(nb);
    s.v_ptrs.resize(nb);
    for (int64_t b = 0; b < nb; ++b) {
      s.k_ptrs[b] = kv.KBlock(layer, item.block_table[b]);
      s.v_ptrs[b] = kv.VBlock(layer, item.block_table[b]);
    }
    const kernels::KvView view{s.k_ptrs.data(), s.v_ptrs.data(), kKvBlockSize, length};
    kernels::Attention(s.q.data() + row * q_dim, ni, c.num_heads, c.num_kv_heads, c.head_dim,
                       view, s.positions.data() + row, scale, s.attn.data() + row * q_dim, pool);
    row += ni;
  }
  kernels::MatMul(w.wo, s.attn.data(), n, s.proj.data(), pool);  // [n, hidden]
  kernels::Add(s.x.data(), s.proj.data(), s.x.data(), n * c.hidden);
}

void TextModel::MlpBlock(int64_t layer, ForwardScratch& s, int64_t n, ThreadPool* pool) const {
  const TextConfig& c = config_;
  const LayerWeights& w = layers_[layer];
  NormRows(s.x.data(), w.ffn_norm, c.rms_eps, n, s.xn.data());
  kernels::MatMul(w.w_gate, s.xn.data(), n, s.gate.data(), pool);  // [n, ffn]
  kernels::MatMul(w.w_up, s.xn.data(), n, s.up.data(), pool);      // [n, ffn]
  kernels::SwiGlu(s.gate.data(), s.up.data(), s.gate.data(), n * c.ffn);
  kernels::MatMul(w.w_down, s.gate.data(), n, s.proj.data(), pool);  // [n, hidden]
  kernels::Add(s.x.data(), s.proj.data(), s.x.data(), n * c.hidden);
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
  for (const BatchItem& item : items) {
    for (size_t i = 0; i < item.tokens.size(); ++i) {
      s.positions.push_back(static_cast<int32_t>(item.start_pos + i));
    }
  }
  Embed(items, s.x.data());
  for (int64_t l = 0; l < c.num_layers; ++l) {
    AttentionBlock(l, items, kv, s, n, pool);
    MlpBlock(l, s, n, pool);
  }
  // Only the rows that need logits go through the (vocab-wide) output matmul.
  const int64_t rows = NumLogitRows(items);
  s.final_rows.Resize(rows * c.hidden);
  int64_t src = 0, dst = 0;
  for (const BatchItem& item : items) {
    const int64_t ni = static_cast<int64_t>(item.tokens.size());
    const int64_t first = item.logits_for_all ? 0 : ni - 1;
    for (int64_t i = first; i < ni; ++i, ++dst) {
      kernels::RmsNorm(s.x.data() + (src + i) * c.hidden, output_norm_.data(), c.rms_eps,
                       c.hidden, s.final_rows.data() + dst * c.hidden);
    }
    src += ni;
  }
  kernels::MatMul(output_, s.final_rows.data(), rows, logits, pool);
  return OkStatus();
}

}  // namespace vlserve::models
