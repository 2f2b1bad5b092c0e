// The server-shaped forward pass: batches of sequences of different lengths, chunked
// prefill, paged KV with arbitrary block ids, and embeddings in place of token ids must
// all give the logits of the plain one-sequence, one-shot run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "kernels/kernels.h"
#include "model_test_util.h"

namespace vlserve::models {
namespace {

using testing::Iota;
using testing::MaxAbs;
using testing::MaxAbsDiff;
using testing::RunAll;

std::vector<int32_t> RandomTokens(std::mt19937& rng, int n, int64_t vocab) {
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

class BatchTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TestModelOptions o;
    o.arch = GetParam();
    model_ = testing::MakeModel(o);
    ASSERT_NE(model_, nullptr);
  }
  // The reference: one sequence alone, one-shot, contiguous blocks from 0.
  std::vector<float> Alone(const std::vector<int32_t>& tokens) {
    KvBuffer kv(model_->config(), 8);
    ForwardScratch scratch;
    return RunAll(*model_, kv, scratch, Iota(0, 8), tokens, 0);
  }
  std::unique_ptr<TextModel> model_;
};

TEST_P(BatchTest, BatchOfFourEqualsEachAlone) {
  std::mt19937 rng(7);
  const int64_t vocab = model_->config().vocab;
  const std::vector<int> lengths = {5, 17, 33, 1};
  std::vector<std::vector<int32_t>> seqs, tables;
  for (size_t i = 0; i < lengths.size(); ++i) {
    seqs.push_back(RandomTokens(rng, lengths[i], vocab));
    tables.push_back(Iota(static_cast<int32_t>(i * 3), 3));  // disjoint blocks per sequence
  }
  KvBuffer kv(model_->config(), 12);
  ForwardScratch scratch;
  std::vector<BatchItem> items;
  for (size_t i = 0; i < seqs.size(); ++i) {
    items.push_back({tables[i].data(), 3, 0, seqs[i], nullptr, /*logits_for_all=*/true});
  }
  std::vector<float> logits(NumLogitRows(items) * vocab);
  ASSERT_TRUE(model_->Forward(items, kv, scratch, logits.data()).ok());
  size_t offset = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::vector<float> alone = Alone(seqs[i]);
    const std::vector<float> part(logits.begin() + offset, logits.begin() + offset + alone.size());
    offset += alone.size();
    EXPECT_LE(MaxAbsDiff(part, alone), 1e-5 * std::max(1.0f, MaxAbs(alone))) << "sequence " << i;
  }

  // A mixed step: every sequence decodes one more token, the last one with a 6-token
  // chunk; only last-token logits are requested.
  std::vector<std::vector<int32_t>> next;
  items.clear();
  for (size_t i = 0; i < seqs.size(); ++i) {
    next.push_back(RandomTokens(rng, i + 1 == seqs.size() ? 6 : 1, vocab));
    items.push_back({tables[i].data(), 3, lengths[i], next[i], nullptr, false});
  }
  std::vector<float> step(NumLogitRows(items) * vocab);
  ASSERT_EQ(NumLogitRows(items), 4);
  ASSERT_TRUE(model_->Forward(items, kv, scratch, step.data()).ok());
  for (size_t i = 0; i < seqs.size(); ++i) {
    std::vector<int32_t> full = seqs[i];
    full.insert(full.end(), next[i].begin(), next[i].end());
    const std::vector<float> alone = Alone(full);
    const std::vector<float> want(alone.end() - vocab, alone.end());
    const std::vector<float> got(step.begin() + i * vocab, step.begin() + (i + 1) * vocab);
    EXPECT_LE(MaxAbsDiff(got, want), 1e-5 * std::max(1.0f, MaxAbs(want))) << "sequence " << i;
  }
}

TEST_P(BatchTest, ChunkedPrefillEqualsOneShot) {
  std::mt19937 rng(11);
  const std::vector<int32_t> prompt = RandomTokens(rng, 40, model_->config().vocab);
  const std::vector<float> one_shot = Alone(prompt);
  KvBuffer kv(model_->config(), 8);
  ForwardScratch scratch;
  std::vector<float> chunked;
  int64_t pos = 0;
  for (int len : {7, 16, 17}) {
    std::vector<int32_t> chunk(prompt.begin() + pos, prompt.begin() + pos + len);
    const std::vector<float> part = RunAll(*model_, kv, scratch, Iota(0, 8), chunk, pos);
    chunked.insert(chunked.end(), part.begin(), part.end());
    pos += len;
  }
  EXPECT_LE(MaxAbsDiff(chunked, one_shot), 1e-5 * std::max(1.0f, MaxAbs(one_shot)));
}

TEST_P(BatchTest, ShuffledBlockIdsEqualContiguous) {
  std::mt19937 rng(3);
  const std::vector<int32_t> prompt = RandomTokens(rng, 50, model_->config().vocab);
  const std::vector<float> contiguous = Alone(prompt);
  std::vector<int32_t> ids = Iota(0, 64);
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(4);  // 50 tokens need 4 blocks of 16
  KvBuffer kv(model_->config(), 64);
  ForwardScratch scratch;
  const std::vector<float> paged = RunAll(*model_, kv, scratch, ids, prompt, 0);
  EXPECT_EQ(paged, contiguous);  // same arithmetic, different memory: bit-exact
}

TEST_P(BatchTest, EmbeddingRowsEqualTokenIds) {
  // The vision hook: a negative id takes its row from BatchItem::embeddings.
  std::mt19937 rng(5);
  const TextConfig& c = model_->config();
  const std::vector<int32_t> prompt = RandomTokens(rng, 9, c.vocab);
  const gguf::TensorInfo* embd = model_->file().FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  std::vector<float> rows(prompt.size() * c.hidden);
  std::vector<int32_t> mixed = prompt;
  for (size_t i = 2; i < 6; ++i) {
    kernels::Dequantize(embd->type, embd->data + prompt[i] * RowBytes(embd->type, c.hidden),
                        rows.data() + i * c.hidden, c.hidden);
    mixed[i] = -1;
  }
  KvBuffer kv(c, 1);
  ForwardScratch scratch;
  const std::vector<int32_t> table = {0};
  BatchItem item{table.data(), 1, 0, mixed, rows.data(), true};
  std::vector<float> got(prompt.size() * c.vocab);
  ASSERT_TRUE(model_->Forward({item}, kv, scratch, got.data()).ok());
  EXPECT_EQ(got, Alone(prompt));
}

INSTANTIATE_TEST_SUITE_P(Archs, BatchTest, ::testing::Values("llama", "qwen2", "glm4"));

}  // namespace
}  // namespace vlserve::models
