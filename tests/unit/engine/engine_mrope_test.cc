// M-RoPE requests in the engine (Qwen2-VL layout: image tokens with (t, row, col)
// positions, text resuming at start + max(rows, cols)). Reference: a plain greedy loop over
// TextModel::Forward with the request's positions. The engine must give the same tokens
// alone, batched with 1-D text requests, with chunked prefill cutting through the image,
// from the prefix cache (a second turn reusing the first), and after preemption. The same
// runs on a qwen3vl model (EngineDeepstackTest): image rows (1 + n) x hidden wide, the
// deepstack slices carried through chunking, prefix reuse and preemption.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/engine.h"
#include "engine_test_util.h"
#include "models/image_prompt.h"
#include "models/registry.h"
#include "models/test_model.h"

namespace vlserve::engine {
namespace {

using testing::Collected;

class EngineMropeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Load("qwen2vl"); }

  static void Load(const std::string& arch) {
    models::TestModelOptions o;
    o.arch = arch;
    if (arch == "qwen3vl") o.layers = 3;  // 2 deepstack layers
    o.rope_sections = arch == "qwen3vl" ? models::TestRopeSections(o)
                                        : models::DefaultRopeSections(o.hidden / o.heads);
    auto writer = models::BuildTestModel(o);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    const std::string bytes = writer->WriteToString();
    auto file = gguf::File::FromBytes(bytes, "qwen2vl");
    ASSERT_TRUE(file.ok());
    auto config = tokenizer::TokenizerConfigFromGguf(**file);
    ASSERT_TRUE(config.ok());
    auto tok = tokenizer::Tokenizer::Create(std::move(*config));
    ASSERT_TRUE(tok.ok());
    tok_ = std::shared_ptr<const tokenizer::Tokenizer>(std::move(*tok));
    auto model = models::LoadTextModel(std::move(*file));
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = std::shared_ptr<const models::TextModel>(std::move(*model));
  }

  // Text, a 3x4 image (12 rows of embeddings), text, a 2x2 image, text.
  static Request ImageRequest(const std::string& id, const std::string& tail) {
    const int64_t hidden = model_->config().embedding_width();  // floats per image row
    Request r;
    r.id = id;
    r.sampling.temperature = 0;
    r.sampling.max_tokens = 8;
    r.sampling.logit_bias[tok_->eos_id()] = -100;
    std::vector<std::pair<int, int>> grids;
    auto text = [&](const std::string& s) {
      const std::vector<int32_t> ids = tok_->Encode(s);
      r.prompt_tokens.insert(r.prompt_tokens.end(), ids.begin(), ids.end());
    };
    auto image = [&](int rows, int cols, uint64_t seed) {
      ImageSpan span;
      span.position = static_cast<int64_t>(r.prompt_tokens.size());
      span.num_tokens = rows * cols;
      span.content_hash = "image-" + std::to_string(seed);
      span.embeddings = std::make_shared<const std::vector<float>>(
          models::TestRandomValues(seed, "rows", rows * cols * hidden, 0.0, 1.0));
      r.images.push_back(span);
      r.prompt_tokens.insert(r.prompt_tokens.end(), rows * cols, 0);
      grids.emplace_back(rows, cols);
    };
    text("Look at this picture carefully");
    image(3, 4, 11);
    text(" and then at this one");
    image(2, 2, 12);
    text(tail);
    std::vector<models::PromptImageSpan> spans;
    for (const ImageSpan& s : r.images) spans.push_back({s.position, s.num_tokens, 0, 0});
    r.rope_positions = models::AssignRopePositions(
        static_cast<int64_t>(r.prompt_tokens.size()), spans, grids, &r.next_rope_position);
    return r;
  }

  // Greedy over TextModel::Forward with the request's embeddings and positions.
  static std::vector<int32_t> Reference(const Request& r, bool use_positions = true) {
    const models::TextConfig& c = model_->config();
    const auto n = static_cast<int64_t>(r.prompt_tokens.size());
    const int steps = r.sampling.max_tokens;
    const int64_t width = c.embedding_width();
    std::vector<int32_t> feed = r.prompt_tokens;
    std::vector<float> embd(n * width, 0.0f);
    for (const ImageSpan& s : r.images) {
      for (int64_t i = 0; i < s.num_tokens; ++i) {
        feed[s.position + i] = -1;
        std::copy_n(s.embeddings->data() + i * width, width,
                    embd.data() + (s.position + i) * width);
      }
    }
    const int64_t nb = (n + steps + models::kKvBlockSize - 1) / models::kKvBlockSize;
    models::KvBuffer kv(c, nb);
    std::vector<int32_t> blocks(nb);
    for (int64_t i = 0; i < nb; ++i) blocks[i] = static_cast<int32_t>(i);
    models::ForwardScratch scratch;
    std::vector<float> logits(c.vocab);
    models::BatchItem item{blocks.data(), nb, 0, feed, embd.data(), false,
                           use_positions ? r.rope_positions.data() : nullptr};
    EXPECT_TRUE(model_->Forward({item}, kv, scratch, logits.data()).ok());
    std::vector<int32_t> out;
    for (int step = 0; step < steps; ++step) {
      logits[tok_->eos_id()] -= 100;
      const auto next =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(next);
      if (step + 1 == steps) break;
      const int32_t one[1] = {next};
      const auto p = static_cast<int32_t>(r.next_rope_position + step);
      const int32_t rope[4] = {p, p, p, 0};
      models::BatchItem it{blocks.data(), nb, n + step, one, nullptr, false,
                           use_positions ? rope : nullptr};
      EXPECT_TRUE(model_->Forward({it}, kv, scratch, logits.data()).ok());
    }
    return out;
  }

  static std::unique_ptr<Engine> MakeEngine(EngineConfig config) {
    auto engine = Engine::Create(config, model_, tok_);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // The engine runs of the tests below, on the loaded model.
  static void CheckAloneBatchedChunkedAndPreempted();
  static void CheckPrefixReuse();

  static inline std::shared_ptr<const models::TextModel> model_;
  static inline std::shared_ptr<const tokenizer::Tokenizer> tok_;
};

TEST_F(EngineMropeTest, PositionsMatter) {
  // The check below can fail: the same request with 1-D positions decodes differently.
  const Request r = ImageRequest("a", ". What do you see?");
  EXPECT_NE(Reference(r), Reference(r, /*use_positions=*/false));
  // And the positions are the M-RoPE ones: the 3x4 image moved text on by 4, not 12.
  EXPECT_EQ(r.next_rope_position, static_cast<int64_t>(r.prompt_tokens.size()) - 12 + 4 - 4 + 2);
}

TEST_F(EngineMropeTest, AloneBatchedChunkedAndPreemptedEqualReference) {
  CheckAloneBatchedChunkedAndPreempted();
}

TEST_F(EngineMropeTest, PrefixReuseOfASecondTurnKeepsPositions) { CheckPrefixReuse(); }

class EngineDeepstackTest : public EngineMropeTest {
 protected:
  static void SetUpTestSuite() { Load("qwen3vl"); }
};

TEST_F(EngineDeepstackTest, DeepstackSlicesMatter) {
  ASSERT_EQ(model_->config().deepstack_layers, 2);
  // The checks below can fail: zeroing the deepstack slices changes the answer.
  const Request r = ImageRequest("a", ". What do you see?");
  Request plain = r;
  const int64_t hidden = model_->config().hidden, width = model_->config().embedding_width();
  for (ImageSpan& s : plain.images) {
    std::vector<float> rows = *s.embeddings;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (static_cast<int64_t>(i) % width >= hidden) rows[i] = 0.0f;
    }
    s.embeddings = std::make_shared<const std::vector<float>>(std::move(rows));
  }
  EXPECT_NE(Reference(r), Reference(plain));
}

TEST_F(EngineDeepstackTest, AloneBatchedChunkedAndPreemptedEqualReference) {
  CheckAloneBatchedChunkedAndPreempted();
}

TEST_F(EngineDeepstackTest, PrefixReuseOfASecondTurnKeepsPositions) { CheckPrefixReuse(); }

TEST_F(EngineDeepstackTest, RowsOfTheWrongWidthAreRefused) {
  Request r = ImageRequest("narrow", "?");
  const int64_t hidden = model_->config().hidden;
  r.images[0].embeddings = std::make_shared<const std::vector<float>>(
      r.images[0].num_tokens * hidden, 0.0f);  // hidden wide, not (1 + 2) x hidden
  auto engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  auto s = engine->Submit(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

void EngineMropeTest::CheckAloneBatchedChunkedAndPreempted() {
  const Request img = ImageRequest("img", ". What do you see?");
  const std::vector<int32_t> want = Reference(img);
  std::vector<Request> texts;
  for (int i = 0; i < 5; ++i) {
    Request t;
    t.id = "text" + std::to_string(i);
    t.sampling.temperature = 0;
    t.sampling.max_tokens = 40;  // long enough to run side by side and outgrow the KV
    t.sampling.logit_bias[tok_->eos_id()] = -100;
    t.prompt_tokens = tok_->Encode(std::string("The harbour lights came on one by one ").substr(i));
    texts.push_back(t);
  }
  EngineConfig chunked;
  chunked.max_batch_tokens = 7;  // prefill chunks start and end inside the image spans
  chunked.enable_prefix_cache = false;
  EngineConfig tight = chunked;
  tight.max_batch_tokens = 24;
  tight.kv_tokens = 96;  // 6 blocks for 6 requests of 2-5 blocks: preemption
  for (const auto& [name, config] : {std::pair{"chunked", chunked}, {"preempting", tight}}) {
    SCOPED_TRACE(name);
    auto engine = MakeEngine(config);
    ASSERT_NE(engine, nullptr);
    EXPECT_EQ(testing::RunToEnd(*engine, img).tokens, want) << "alone";
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const Request& t : texts) streams.push_back(*engine->Submit(t));
    auto s = engine->Submit(img);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Collected got;
    const auto give_up = SteadyClock::now() + std::chrono::seconds(50);
    while (!got.ended && SteadyClock::now() < give_up) {
      Event e;
      if (!(*s)->WaitNext(&e, std::chrono::milliseconds(100))) continue;
      got.tokens.insert(got.tokens.end(), e.tokens.begin(), e.tokens.end());
      got.ended = e.kind != Event::Kind::kDelta;
    }
    EXPECT_EQ(got.tokens, want) << "batched with text requests";
    for (auto& st : streams) {
      Event e;
      while (st->WaitNext(&e, std::chrono::milliseconds(5000)) && e.kind == Event::Kind::kDelta) {
      }
    }
    if (config.kv_tokens != 0) {
      EXPECT_GT(engine->Stats().preemptions, 0);
    }
  }
}

void EngineMropeTest::CheckPrefixReuse() {
  EngineConfig config;
  config.max_batch_tokens = 16;
  auto engine = MakeEngine(config);
  ASSERT_NE(engine, nullptr);
  const Request first = ImageRequest("turn1", ". What do you see?");
  const Collected one = testing::RunToEnd(*engine, first);
  EXPECT_EQ(one.tokens, Reference(first));
  // The second turn: the same images and text, the answer, and a new question. Its
  // prompt's first blocks are the first turn's (images included): served from the cache.
  Request second = ImageRequest("turn2", ". What do you see? It is a cat. And the colours?");
  const std::vector<int32_t> want = Reference(second);
  const Collected two = testing::RunToEnd(*engine, second);
  ASSERT_TRUE(two.ended);
  EXPECT_EQ(two.tokens, want);
  EXPECT_GE(two.terminal()->usage.cached_tokens, 32);
}

}  // namespace
}  // namespace vlserve::engine
