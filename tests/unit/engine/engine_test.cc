// Engine tests with the tiny generated test model: the engine's batched, chunked,
// preempting schedule must give exactly the tokens of a plain one-request greedy loop
// written here directly against TextModel::Forward (the independent reference).
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <string_view>
#include <thread>
#include <unistd.h>

#include "engine_test_util.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::engine {
namespace {

using testing::Collected;

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TestModelFiles files;
    const Status s = testing::WriteAndLoadTestModel("engine_test", &files);
    ASSERT_TRUE(s.ok()) << s.ToString();
    dir_ = files.dir;
    model_ = files.model;
    tok_ = files.tok;
  }
  static void TearDownTestSuite() {
    model_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<Engine> MakeEngine(EngineConfig config) {
    auto engine = Engine::Create(config, model_, tok_);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  static Request Greedy(std::string id, std::vector<int32_t> prompt, int max_tokens) {
    Request r;
    r.id = std::move(id);
    r.prompt_tokens = std::move(prompt);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = max_tokens;
    return r;
  }

  // Reference: prompt in one Forward, then one token per Forward, stopping at an
  // end-of-generation token or max_tokens. Returns the generated ids (incl. the EOG).
  // `bias` is added to the logits before the argmax (OpenAI logit_bias).
  static std::vector<int32_t> ReferenceGreedy(const std::vector<int32_t>& prompt,
                                              int max_tokens,
                                              const std::map<int32_t, float>& bias = {}) {
    const int64_t vocab = model_->config().vocab;
    const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
    models::KvBuffer kv(model_->config(), (total + 15) / 16);
    models::ForwardScratch scratch;
    std::vector<int32_t> blocks(kv.num_blocks());
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
    std::vector<float> logits(vocab);
    std::vector<int32_t> feed = prompt, out;
    int64_t pos = 0;
    while (static_cast<int>(out.size()) < max_tokens) {
      models::BatchItem item;
      item.block_table = blocks.data();
      item.num_blocks = kv.num_blocks();
      item.start_pos = pos;
      item.tokens = feed;
      EXPECT_TRUE(model_->Forward({item}, kv, scratch, logits.data()).ok());
      pos += static_cast<int64_t>(feed.size());
      for (const auto& [id, b] : bias) logits[id] += b;
      // Greedy = argmax, ties to the lowest id.
      const int32_t t = static_cast<int32_t>(
          std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(t);
      if (tok_->IsEndOfGeneration(t)) break;
      feed = {t};
    }
    return out;
  }

  static Collected WaitAll(RequestStream& stream) {
    Collected c;
    const auto give_up = SteadyClock::now() + std::chrono::seconds(50);
    while (!c.ended && SteadyClock::now() < give_up) {
      Event e;
      if (!stream.WaitNext(&e, std::chrono::milliseconds(100))) continue;
      EXPECT_FALSE(c.ended);
      c.text += e.text;
      c.tokens.insert(c.tokens.end(), e.tokens.begin(), e.tokens.end());
      if (e.kind != Event::Kind::kDelta) c.ended = true;
      c.events.push_back(std::move(e));
    }
    EXPECT_TRUE(c.ended) << "stream " << stream.id() << " did not end";
    return c;
  }

  // Eight different prompts of different lengths (a few to ~100 tokens).
  static std::vector<std::vector<int32_t>> Prompts() {
    const std::string base =
        "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. "
        "Later, seven bright stars rose above the quiet harbour and the old lighthouse. ";
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 8; ++i) prompts.push_back(tok_->Encode(base.substr(3 * i, 5 + 22 * i)));
    return prompts;
  }

  static inline std::string dir_;
  static inline std::shared_ptr<const models::TextModel> model_;
  static inline std::shared_ptr<const tokenizer::Tokenizer> tok_;
};

TEST_F(EngineTest, ConcurrentGreedyEqualsAlone) {
  const int kMaxTokens = 12;
  auto prompts = Prompts();
  std::vector<std::vector<int32_t>> expected;
  for (const auto& p : prompts) expected.push_back(ReferenceGreedy(p, kMaxTokens));

  struct Case {
    const char* name;
    EngineConfig config;
  };
  EngineConfig chunked;
  chunked.max_batch_tokens = 48;  // forces chunked prefills mixed with decodes
  chunked.threads = 1;
  EngineConfig tight = chunked;
  tight.kv_tokens = 320;  // 20 blocks for 8 requests (up to 13 blocks each): preemption
  for (const Case& c : {Case{"chunked", chunked}, Case{"preempting", tight}}) {
    SCOPED_TRACE(c.name);
    auto engine = MakeEngine(c.config);
    ASSERT_NE(engine, nullptr);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_LE(prompts[i].size() + kMaxTokens, 13u * 16) << "prompt " << i << " too long";
      auto s = engine->Submit(Greedy("r" + std::to_string(i), prompts[i], kMaxTokens));
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      streams.push_back(*s);
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      Collected got = WaitAll(*streams[i]);
      ASSERT_TRUE(got.ended);
      EXPECT_EQ(got.tokens, expected[i]) << "request " << i;
      const Event& last = *got.terminal();
      EXPECT_EQ(last.kind, Event::Kind::kFinished);
      EXPECT_EQ(last.usage.prompt_tokens, static_cast<int64_t>(prompts[i].size()));
      EXPECT_EQ(last.usage.completion_tokens, static_cast<int64_t>(expected[i].size()));
      const bool eog = tok_->IsEndOfGeneration(expected[i].back());
      EXPECT_EQ(last.finish_reason, eog ? FinishReason::kStop : FinishReason::kLength);
      // Every delta carries exactly one token, in order; usage counts up by one.
      for (size_t k = 0; k < got.events.size(); ++k) {
        EXPECT_EQ(got.events[k].usage.completion_tokens, static_cast<int64_t>(k + 1));
      }
      EXPECT_GT(last.timings.ttft_ms, 0);
      EXPECT_EQ(last.timings.prefill_tokens, static_cast<int64_t>(prompts[i].size()));
    }
    // Stats are published after the step that pushed the last event: wait for it.
    EngineStats stats = engine->Stats();
    for (int k = 0; k < 400 && stats.requests_finished < 8; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      stats = engine->Stats();
    }
    EXPECT_EQ(stats.requests_finished, 8);
    EXPECT_EQ(stats.kv_blocks_used, 0);
    if (c.config.kv_tokens != 0) {
      EXPECT_GT(stats.preemptions, 0);
    }
  }
}

TEST_F(EngineTest, StopStringEndsGeneration) {
  // Random weights babble bytes; a -100 bias on every token that is not printable ASCII
  // (special tokens included) keeps the output readable so a stop string can be chosen.
  std::map<int32_t, float> ascii_only;
  for (int32_t id = 0; id < tok_->vocab_size(); ++id) {
    const std::string_view piece = tok_->Piece(id);
    const bool ascii = !piece.empty() && std::all_of(piece.begin(), piece.end(), [](char ch) {
      return ch >= 0x20 && ch < 0x7f;
    });
    if (!ascii) ascii_only[id] = -100.0f;
  }
  const std::vector<int32_t> prompt = tok_->Encode("Once upon a time there was a");
  const std::vector<int32_t> ref = ReferenceGreedy(prompt, 24, ascii_only);
  // The reference text as the client would see it, piece by piece.
  tokenizer::StreamingDetokenizer detok(*tok_);
  std::vector<size_t> ends;  // text length after each token
  std::string text;
  for (int32_t t : ref) {
    if (!tok_->IsEndOfGeneration(t)) text += detok.Push(t);
    ends.push_back(text.size());
  }
  // A two-byte ASCII stop string from the second half of the output.
  size_t at = std::string::npos;
  for (size_t i = text.size() / 2; i + 1 < text.size(); ++i) {
    if (static_cast<unsigned char>(text[i]) < 0x80 &&
        static_cast<unsigned char>(text[i + 1]) < 0x80) {
      at = i;
      break;
    }
  }
  ASSERT_NE(at, std::string::npos) << "no ASCII pair in the test model's output: " << text;
  const std::string stop = text.substr(at, 2);
  const size_t first = text.find(stop);
  const size_t tokens_until =
      std::lower_bound(ends.begin(), ends.end(), first + stop.size()) - ends.begin() + 1;

  auto engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  Request r = Greedy("stop", prompt, 24);
  r.sampling.stop = {stop};
  r.sampling.logit_bias = ascii_only;
  auto s = engine->Submit(std::move(r));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Collected got = WaitAll(**s);
  ASSERT_TRUE(got.ended);
  EXPECT_EQ(got.text, text.substr(0, first)) << "stop string '" << stop << "'";
  EXPECT_EQ(got.terminal()->finish_reason, FinishReason::kStop);
  EXPECT_EQ(got.terminal()->usage.completion_tokens, static_cast<int64_t>(tokens_until));
}

TEST_F(EngineTest, MaxTokensFinishesWithLength) {
  const std::vector<int32_t> prompt = tok_->Encode("Hello world, this is a test.");
  const std::vector<int32_t> ref = ReferenceGreedy(prompt, 5);
  auto engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  Request r = Greedy("len", prompt, 5);
  r.sampling.stop_token_ids = {};
  auto s = engine->Submit(std::move(r));
  ASSERT_TRUE(s.ok());
  Collected got = WaitAll(**s);
  ASSERT_TRUE(got.ended);
  EXPECT_EQ(got.tokens, ref);
  if (!tok_->IsEndOfGeneration(ref.back())) {
    EXPECT_EQ(got.terminal()->finish_reason, FinishReason::kLength);
    EXPECT_EQ(got.terminal()->usage.completion_tokens, 5);
  }
  EXPECT_EQ(got.terminal()->usage.prompt_tokens, static_cast<int64_t>(prompt.size()));
}

TEST_F(EngineTest, ImageSpanEmbeddingsMatchTokenEmbeddings) {
  // Feeding a span whose "image" embeddings are exactly the token embeddings of the
  // prompt tokens they replace must not change the output.
  const std::vector<int32_t> prompt = tok_->Encode("A picture of a small red house by the sea");
  ASSERT_GE(prompt.size(), 8u);
  // Before the engine exists: ThreadPool::Run is not reentrant, so the reference must not
  // share DefaultThreadPool() with a running engine thread.
  const std::vector<int32_t> expected = ReferenceGreedy(prompt, 8);
  const gguf::TensorInfo* embd = model_->file().FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  ASSERT_EQ(embd->type, DType::kF32);
  const int64_t hidden = model_->config().hidden;
  const int64_t pos = 2, n = 5;
  auto rows = std::make_shared<std::vector<float>>(n * hidden);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(rows->data() + i * hidden,
                reinterpret_cast<const float*>(embd->data) + prompt[pos + i] * hidden,
                hidden * sizeof(float));
  }
  Request r = Greedy("img", prompt, 8);
  for (int64_t i = pos; i < pos + n; ++i) r.prompt_tokens[i] = -7;  // placeholders
  r.images.push_back(ImageSpan{pos, n, 0, "hash", rows});
  EngineConfig config;
  config.max_batch_tokens = 4;  // chunks start and end inside the span
  auto engine = MakeEngine(config);
  ASSERT_NE(engine, nullptr);
  auto s = engine->Submit(std::move(r));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(WaitAll(**s).tokens, expected);
}

TEST_F(EngineTest, SubmitRejectsBadRequests) {
  EngineConfig config;
  config.kv_tokens = 64;
  auto engine = MakeEngine(config);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->Submit(Greedy("e", {}, 4)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Submit(Greedy("long", std::vector<int32_t>(64, 5), 4)).status().code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(engine->Submit(Greedy("vocab", {5, 1 << 30}, 4)).status().code(),
            StatusCode::kInvalidArgument);
  Request bad_temp = Greedy("t", {5, 6}, 4);
  bad_temp.sampling.temperature = -1;
  EXPECT_EQ(engine->Submit(bad_temp).status().code(), StatusCode::kInvalidArgument);
  Request no_embd = Greedy("img", {5, 6, 7}, 4);
  no_embd.images.push_back(ImageSpan{1, 1, 0, "h", nullptr});
  EXPECT_EQ(engine->Submit(no_embd).status().code(), StatusCode::kInvalidArgument);
  // An encode job needs a vision model, which this engine does not have.
  Request job = Greedy("job", {5, 6, 7}, 4);
  ImageSpan span{1, 1, 0, "h", nullptr};
  span.encode = std::make_shared<EncodeJob>();
  span.encode->layout.num_tiles = 1;
  job.images.push_back(span);
  EXPECT_EQ(engine->Submit(job).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine->Stats().requests_rejected, 6);
}

TEST_F(EngineTest, CancelAndShutdownEndStreams) {
  auto engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  const std::vector<int32_t> prompt = tok_->Encode("Tell me a long story");
  Request forever = Greedy("c", prompt, -1);
  forever.sampling.stop_token_ids = {};
  forever.sampling.logit_bias[tok_->eos_id()] = -100;  // never ends on its own
  auto s = engine->Submit(forever);
  ASSERT_TRUE(s.ok());
  Event first;
  ASSERT_TRUE((*s)->WaitNext(&first, std::chrono::seconds(20)));
  (*s)->Cancel();
  Collected got = WaitAll(**s);
  ASSERT_TRUE(got.ended);
  EXPECT_EQ(got.terminal()->finish_reason, FinishReason::kCancelled);
  for (int i = 0; i < 200 && engine->Stats().kv_blocks_used != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
  EXPECT_EQ(engine->Stats().requests_cancelled, 1);

  auto s2 = engine->Submit(forever);
  ASSERT_TRUE(s2.ok());
  ASSERT_TRUE((*s2)->WaitNext(&first, std::chrono::seconds(20)));
  engine->Shutdown();
  Collected got2 = WaitAll(**s2);
  ASSERT_TRUE(got2.ended);
  EXPECT_EQ(got2.terminal()->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(engine->Submit(forever).status().code(), StatusCode::kUnavailable);
}

TEST_F(EngineTest, NotifyIsCalledForEveryPush) {
  auto engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  auto s = engine->Submit(Greedy("n", tok_->Encode("Hi there"), 6));
  ASSERT_TRUE(s.ok());
  std::atomic<int> calls{0};
  (*s)->SetNotify([&] { ++calls; });
  Collected got = WaitAll(**s);
  ASSERT_TRUE(got.ended);
  // Each event either triggered a notify, or was pending when SetNotify ran (one call).
  EXPECT_GE(calls.load(), 1);
  EXPECT_LE(calls.load(), static_cast<int>(got.events.size()) + 1);
}

}  // namespace
}  // namespace vlserve::engine
