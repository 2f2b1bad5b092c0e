// The engine's vision path: image spans that carry an EncodeJob are encoded in the step
// loop. Reference: the same request with embeddings computed here directly by
// VisionModel::Encode must give the same greedy tokens, and the encoder cache must hold
// exactly those embeddings afterwards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <unistd.h>

#include "engine/engine.h"
#include "engine_test_util.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "models/vision_model.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::engine {
namespace {

using testing::Collected;

class EngineVisionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TestModelFiles files;
    const Status s = testing::WriteAndLoadTestModel("engine_vision", &files);
    ASSERT_TRUE(s.ok()) << s.ToString();
    dir_ = files.dir;
    model_ = files.model;
    tok_ = files.tok;
    models::VisionTestOptions vision;  // 32 px tiles, 4 rows per tile, projects to 64
    ASSERT_TRUE(models::WriteTestMmproj(vision, dir_).ok());
    auto v = models::VisionModel::Load(dir_ + "/mmproj.gguf");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vision_ = std::shared_ptr<const models::VisionModel>(std::move(*v));
  }
  static void TearDownTestSuite() {
    model_.reset();
    vision_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Deterministic pixels in [-1, 1] for `tiles` tiles.
  static std::vector<float> Pixels(int64_t tiles, uint64_t seed) {
    const int64_t s = vision_->config().image_size;
    std::vector<float> px = models::TestRandomValues(seed, "pixels", tiles * 3 * s * s, 0, 0.5);
    for (float& v : px) v = std::clamp(v, -1.0f, 1.0f);
    return px;
  }

  static std::shared_ptr<EncodeJob> Job(int64_t tiles, uint64_t seed, std::string key) {
    auto job = std::make_shared<EncodeJob>();
    job->cache_key = std::move(key);
    const int side = static_cast<int>(vision_->config().image_size);
    job->layout.num_tiles = static_cast<int>(tiles);
    job->layout.tile_height = job->layout.tile_width = side;
    job->layout.tokens = tiles * vision_->tokens_per_tile();
    job->tiles = Pixels(tiles, seed);
    return job;
  }

  // Prompt: 3 text tokens, then one span per tile (rows of that tile), 2 tokens between.
  static Request ImageRequest(int64_t tiles, std::shared_ptr<EncodeJob> job,
                              std::shared_ptr<const std::vector<float>> rows) {
    const int64_t per_tile = vision_->tokens_per_tile();
    Request r;
    r.id = "img";
    r.sampling.temperature = 0;
    r.sampling.max_tokens = 6;
    r.sampling.logit_bias[tok_->eos_id()] = -100;
    r.prompt_tokens = tok_->Encode("Look at");
    for (int64_t t = 0; t < tiles; ++t) {
      ImageSpan span;
      span.position = static_cast<int64_t>(r.prompt_tokens.size());
      span.num_tokens = per_tile;
      span.first_row = t * per_tile;
      span.content_hash = "img/" + std::to_string(t);
      span.encode = job;
      span.embeddings = rows;
      r.images.push_back(span);
      r.prompt_tokens.insert(r.prompt_tokens.end(), per_tile, 0);
      const std::vector<int32_t> sep = tok_->Encode(" and");
      r.prompt_tokens.insert(r.prompt_tokens.end(), sep.begin(), sep.end());
    }
    return r;
  }

  static Collected Run(Engine& engine, Request r) {
    return testing::RunToEnd(engine, std::move(r));
  }

  std::unique_ptr<Engine> MakeEngine(std::shared_ptr<EncoderCache> cache, bool prefix,
                                     EngineConfig config = {}) {
    config.enable_prefix_cache = prefix;
    config.max_batch_tokens = 5;  // chunks start and end inside the image spans
    EngineVision v;
    v.model = vision_;
    v.cache = std::move(cache);
    v.max_tiles_per_forward = 2;
    auto engine = Engine::Create(config, model_, tok_, std::move(v));
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  static inline int64_t r2_image_end_ = 0;
  static inline std::string dir_;
  static inline std::shared_ptr<const models::TextModel> model_;
  static inline std::shared_ptr<const tokenizer::Tokenizer> tok_;
  static inline std::shared_ptr<const models::VisionModel> vision_;
};

TEST_F(EngineVisionTest, EncodeJobGivesTheSameTokensAsPrecomputedEmbeddings) {
  constexpr int64_t kTiles = 3;
  auto reference = std::make_shared<std::vector<float>>(
      vision_->Encode(Pixels(kTiles, 7).data(), kTiles));
  auto cache = std::make_shared<EncoderCache>(1 << 20);
  auto engine = MakeEngine(cache, /*prefix=*/false);
  ASSERT_NE(engine, nullptr);

  const Collected expected = Run(*engine, ImageRequest(kTiles, nullptr, reference));
  const Collected got = Run(*engine, ImageRequest(kTiles, Job(kTiles, 7, "key-7"), nullptr));
  ASSERT_EQ(expected.tokens.size(), 6u);
  EXPECT_EQ(got.tokens, expected.tokens);
  EXPECT_GE(got.terminal()->timings.encode_ms, 0.0);
  EXPECT_LT(expected.terminal()->timings.encode_ms, 0.0);  // nothing encoded

  // The cache holds the reference embeddings (to float rounding: the engine encodes in
  // forwards of 2 tiles, the reference in one of 3, and the GEMM's blocking depends on
  // the row count).
  std::optional<EncoderOutput> hit = cache->Lookup("key-7");
  ASSERT_TRUE(hit.has_value());
  ASSERT_EQ(hit->embeddings->size(), reference->size());
  for (size_t i = 0; i < reference->size(); ++i) {
    ASSERT_NEAR((*hit->embeddings)[i], (*reference)[i],
                1e-5f * std::max(1.0f, std::fabs((*reference)[i])))
        << i;
  }
  EXPECT_EQ(engine->Stats().images_encoded, 1);
  EXPECT_EQ(engine->Stats().tiles_encoded, kTiles);

  // A different image under another key gives different tokens' inputs (sanity: the
  // encode really depends on the pixels).
  auto other = vision_->Encode(Pixels(kTiles, 8).data(), kTiles);
  EXPECT_NE(other, *reference);
}

// Scheduled encoding: with a budget of one tower layer of a 2-tile group (2 tiles x 16
// patches = 32 token-layers), a 5-tile image is encoded over 6 steps (groups of 2, 2, 1
// tiles x 2 layers; the last group's two layers fit one budget), never more than the
// budget a step, while a text request that is already decoding gets a token in every one
// of those steps. The answer equals the one from an unlimited budget.
TEST_F(EngineVisionTest, EncodingIsSpreadOverStepsWithinTheBudget) {
  constexpr int64_t kTiles = 5;
  const int64_t per_layer = 2 * vision_->config().num_patches;  // a 2-tile group, one layer
  ASSERT_EQ(per_layer, 32);
  ASSERT_EQ(vision_->config().num_layers, 2);
  Request text;
  text.id = "text";
  text.sampling.temperature = 0;
  text.sampling.max_tokens = 1500;  // still decoding while the image is encoded
  text.sampling.logit_bias[tok_->eos_id()] = -100;
  text.prompt_tokens = tok_->Encode("Tell me a story");

  const Collected unlimited = [&] {
    EngineConfig config;
    config.encoder_budget = 0;
    auto engine = MakeEngine(nullptr, false, config);
    return Run(*engine, ImageRequest(kTiles, Job(kTiles, 21, ""), nullptr));
  }();

  std::mutex mu;
  std::vector<StepTrace> steps;
  EngineConfig config;
  config.encoder_budget = per_layer;
  config.on_step = [&](const StepTrace& t) {
    std::lock_guard<std::mutex> lock(mu);
    steps.push_back(t);
  };
  auto engine = MakeEngine(nullptr, false, config);
  ASSERT_NE(engine, nullptr);
  auto text_stream = engine->Submit(text);
  ASSERT_TRUE(text_stream.ok());
  Event first;  // the text request is decoding before the image arrives
  ASSERT_TRUE((*text_stream)->WaitNext(&first, std::chrono::seconds(20)));
  const Collected got = Run(*engine, ImageRequest(kTiles, Job(kTiles, 21, ""), nullptr));
  EXPECT_EQ(got.tokens, unlimited.tokens);
  std::lock_guard<std::mutex> lock(mu);
  int64_t total = 0, encode_steps = 0;
  for (const StepTrace& t : steps) {
    EXPECT_LE(t.encode_token_layers, per_layer);
    total += t.encode_token_layers;
    if (t.encode_token_layers == 0) continue;
    ++encode_steps;
    if (total < kTiles * 16 * 2) EXPECT_GE(t.decode_tokens, 1) << "a decode stalled";
  }
  EXPECT_EQ(total, kTiles * 16 * 2);  // every tile through both layers, once
  EXPECT_EQ(encode_steps, 5);
}

TEST_F(EngineVisionTest, SameKeyInOneStepIsEncodedOnce) {
  auto engine = MakeEngine(nullptr, /*prefix=*/false);
  ASSERT_NE(engine, nullptr);
  // Two requests submitted together with the same key: whatever steps they share, the
  // image is encoded once per step at most; both must answer identically.
  auto a = engine->Submit(ImageRequest(1, Job(1, 9, "same"), nullptr));
  auto b = engine->Submit(ImageRequest(1, Job(1, 9, "same"), nullptr));
  ASSERT_TRUE(a.ok() && b.ok());
  auto drain = [](RequestStream& s) {
    std::vector<int32_t> tokens;
    for (int i = 0; i < 500; ++i) {
      Event e;
      if (!s.WaitNext(&e, std::chrono::milliseconds(100))) continue;
      tokens.insert(tokens.end(), e.tokens.begin(), e.tokens.end());
      if (e.kind != Event::Kind::kDelta) break;
    }
    return tokens;
  };
  const std::vector<int32_t> ta = drain(**a), tb = drain(**b);
  EXPECT_EQ(ta.size(), 6u);
  EXPECT_EQ(ta, tb);
  EXPECT_LE(engine->Stats().images_encoded, 2);
}

TEST_F(EngineVisionTest, ImageEncodedInAnEarlierStepIsTakenFromTheCache) {
  auto cache = std::make_shared<EncoderCache>(1 << 20);
  auto engine = MakeEngine(cache, /*prefix=*/false);
  ASSERT_NE(engine, nullptr);
  const Collected first = Run(*engine, ImageRequest(2, Job(2, 13, "k13"), nullptr));
  EXPECT_EQ(engine->Stats().images_encoded, 1);
  // A second request whose server-side lookup missed (it arrived while the first was
  // still queued) carries its own encode job for the same key: the engine finds the
  // first one's output in the cache instead of encoding again.
  const Collected second = Run(*engine, ImageRequest(2, Job(2, 13, "k13"), nullptr));
  EXPECT_EQ(engine->Stats().images_encoded, 1);
  EXPECT_EQ(engine->Stats().tiles_encoded, 2);
  ASSERT_EQ(first.tokens.size(), 6u);
  EXPECT_EQ(second.tokens, first.tokens);
  const EncoderCacheStats stats = cache->Stats();
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.misses, 0);  // no server lookup ran here; the engine counts no misses
  // A job whose key is not cached is encoded.
  Run(*engine, ImageRequest(1, Job(1, 14, "k14"), nullptr));
  EXPECT_EQ(engine->Stats().images_encoded, 2);
}

TEST_F(EngineVisionTest, PrefixHitSkipsTheEncoder) {
  auto engine = MakeEngine(nullptr, /*prefix=*/true);
  ASSERT_NE(engine, nullptr);
  constexpr int64_t kTiles = 8;  // 32 image rows + text: several full KV blocks
  // 20 text tokens after the image: every image span ends at least one whole 16-token
  // block before the end of the shared prefix.
  const std::vector<int32_t> tail(20, tok_->Encode(" the").front());
  Request r1 = ImageRequest(kTiles, Job(kTiles, 11, "k11"), nullptr);
  r1.prompt_tokens.insert(r1.prompt_tokens.end(), tail.begin(), tail.end());
  const Collected first = Run(*engine, std::move(r1));
  EXPECT_EQ(engine->Stats().images_encoded, 1);
  Request r2 = ImageRequest(kTiles, Job(kTiles, 11, "k11"), nullptr);
  r2.prompt_tokens.insert(r2.prompt_tokens.end(), tail.begin(), tail.end());
  r2.prompt_tokens.push_back(tok_->Encode(" cat").front());  // a new question suffix
  r2_image_end_ = r2.images.back().position + r2.images.back().num_tokens;
  const Collected second = Run(*engine, std::move(r2));
  EXPECT_GT(second.terminal()->usage.cached_tokens, r2_image_end_);
  EXPECT_EQ(engine->Stats().images_encoded, 1);  // the reused KV needs no encode
  EXPECT_LT(second.terminal()->timings.encode_ms, 0.0);
  EXPECT_EQ(first.tokens.size(), 6u);
}

TEST_F(EngineVisionTest, RejectsBadJobs) {
  auto engine = MakeEngine(nullptr, false);
  ASSERT_NE(engine, nullptr);
  auto job = Job(1, 3, "");
  job->tiles.resize(10);  // wrong pixel count
  EXPECT_EQ(engine->Submit(ImageRequest(1, job, nullptr)).status().code(),
            StatusCode::kInvalidArgument);
  Request rows_out_of_range = ImageRequest(1, Job(1, 3, ""), nullptr);
  rows_out_of_range.images[0].first_row = 2;  // 2 + 4 rows > 4 rows of one tile
  EXPECT_EQ(engine->Submit(rows_out_of_range).status().code(), StatusCode::kInvalidArgument);
  Request both = ImageRequest(1, Job(1, 3, ""), std::make_shared<std::vector<float>>(256));
  EXPECT_EQ(engine->Submit(both).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vlserve::engine
