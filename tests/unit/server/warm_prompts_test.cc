// RunWarmPrompts (--warm-prompt) on the built-in tiny test model, without HTTP: a warmed
// system prompt is found in the prefix cache by the very first request that shares it.
#include "server/warm_prompts.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "http_client.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "server/server.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::server {
namespace {

// What Server::LoadModel builds for the built-in model, with the default engine config.
std::unique_ptr<ModelContext> TestContext() {
  auto writer = models::BuildTestModel({});
  EXPECT_TRUE(writer.ok());
  auto file = gguf::File::FromBytes(writer->WriteToString(), "builtin-test-model");
  EXPECT_TRUE(file.ok());
  auto model = models::LoadTextModel(std::move(*file));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  auto tok_config = tokenizer::TokenizerConfigFromGguf((*model)->file());
  EXPECT_TRUE(tok_config.ok());
  const std::string gguf_template = tok_config->chat_template;
  auto tok = tokenizer::Tokenizer::Create(std::move(*tok_config));
  EXPECT_TRUE(tok.ok());
  auto ctx = std::make_unique<ModelContext>();
  ctx->id = (*model)->config().name;
  bool recognised = false;
  ctx->chat_template = &models::DetectChatTemplate(gguf_template, &recognised);
  ctx->model = std::shared_ptr<const models::TextModel>(std::move(*model));
  ctx->tokenizer = std::shared_ptr<const tokenizer::Tokenizer>(std::move(*tok));
  auto engine = engine::Engine::Create({}, ctx->model, ctx->tokenizer);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  ctx->engine = std::move(*engine);
  return ctx;
}

const std::string kSystem =
    "You are a careful assistant for a hardware store. Answer in two sentences at most, "
    "name the aisle of every product you mention, never invent prices, and say so when "
    "you do not know. Opening hours are eight to six on weekdays and nine to five on "
    "Saturdays; the store is closed on Sundays and public holidays.";

std::string Line(const std::string& question) {
  return R"({"messages":[{"role":"system","content":")" + kSystem +
         R"("},{"role":"user","content":")" + question + R"("}]})";
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("vlserve_warm_" + name)).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Prefix-cache tokens of one request with max_tokens 1, run on ctx's engine.
int64_t CachedTokensOf(const ModelContext& ctx, const std::string& body) {
  auto chat = ParseChatRequest(body, {});
  EXPECT_TRUE(chat.ok()) << chat.status().ToString();
  engine::Request request;
  EXPECT_TRUE(PrepareChat(*chat, ctx, {}, {.max_tokens = 1}, &request).ok());
  request.sampling.temperature = 0;
  auto stream = ctx.engine->Submit(std::move(request));
  EXPECT_TRUE(stream.ok());
  engine::Event e;
  for (int i = 0; i < 300; ++i) {
    if ((*stream)->WaitNext(&e, std::chrono::milliseconds(100)) &&
        e.kind != engine::Event::Kind::kDelta) {
      return e.usage.cached_tokens;
    }
  }
  ADD_FAILURE() << "request did not finish";
  return -1;
}

TEST(WarmPrompts, WarmedPrefixIsCachedOnTheFirstRequest) {
  const std::string path =
      WriteFile("ok.jsonl", Line("Where are the hammers?") + "\n\n" + Line("Open today?") + "\n");
  auto warmed = TestContext();
  auto stats = RunWarmPrompts(path, *warmed, {});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->prompts, 2);
  EXPECT_GT(stats->prompt_tokens, 0);
  EXPECT_GT(stats->cached_tokens, 0) << "line 2 shares line 1's system prompt";

  const std::string request = Line("Do you sell paint?");
  const int64_t cached = CachedTokensOf(*warmed, request);
  // The shared prefix holds at least the system prompt's tokens; all but the partial last
  // block of it (and one block of slack for merges across the boundary) must be reused.
  const int64_t system_tokens =
      static_cast<int64_t>(warmed->tokenizer->Encode(kSystem, {.add_special = false}).size());
  EXPECT_EQ(cached % 16, 0);
  EXPECT_GE(cached, (system_tokens / 16 - 1) * 16);
  EXPECT_GT(cached, 0);

  auto cold = TestContext();  // the control: same request, nothing warmed
  EXPECT_EQ(CachedTokensOf(*cold, request), 0);
  std::filesystem::remove(path);
}

TEST(WarmPrompts, BadLineNamesFileAndLineAndRunsNothing) {
  const std::string path = WriteFile("bad.jsonl", Line("fine") + "\n{\"messages\": [oops\n");
  auto ctx = TestContext();
  auto stats = RunWarmPrompts(path, *ctx, {});
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(stats.status().message().find(path + " line 2"), std::string::npos)
      << stats.status().ToString();
  EXPECT_EQ(ctx->engine->Stats().requests_submitted, 0);
  std::filesystem::remove(path);
}

TEST(WarmPrompts, WrongModelAndMissingFileAreClearErrors) {
  auto ctx = TestContext();
  const std::string path =
      WriteFile("model.jsonl", R"({"model":"no-such-model","messages":[{"role":"user",)"
                               R"("content":"hi"}]})"
                               "\n");
  auto wrong = RunWarmPrompts(path, *ctx, {});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find(path + " line 1"), std::string::npos)
      << wrong.status().ToString();
  std::filesystem::remove(path);

  auto missing = RunWarmPrompts("/nonexistent/warm.jsonl", *ctx, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/warm.jsonl"), std::string::npos);
}

// Through `vlserve serve --warm-prompt`: the first HTTP request already finds the system
// prompt cached. Enable once Server::Load calls RunWarmPrompts for
// config.warm_prompt_files (src/server/server.cc).
TEST(WarmPrompts, ServerFlagWarmsBeforeTheFirstRequest) {
  const std::string path = WriteFile("server.jsonl", Line("Where are the hammers?") + "\n");
  ServerConfig config;
  config.http.port = 0;
  config.warm_prompt_files = {path};
  auto server = Server::Start(std::move(config));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_TRUE((*server)->WaitReady(std::chrono::seconds(60)))
      << (*server)->load_status().ToString();
  const std::string body = Line("Do you sell paint?").insert(1, R"("max_tokens":1,)");
  const testing::Response r =
      testing::Client((*server)->port()).Post("/v1/chat/completions", body, "");
  ASSERT_EQ(r.status, 200) << r.body;
  const boost::json::value v = boost::json::parse(r.body);
  EXPECT_GT(v.at("usage").at("prompt_tokens_details").at("cached_tokens").to_number<int64_t>(), 0);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace vlserve::server
