// The API surface around chat completions (issue 18): public web UI files and protected
// API routes, 405 + Allow for wrong methods, /detokenize, --alias, the first stream chunk,
// plain-decimal timings, request limits (stop, timeout, response_format) and the one rule
// for empty documents. In process, with the built-in tiny random model.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "http_client.h"
#include "server/chat_request.h"
#include "server/chat_service.h"
#include "server/server.h"
#include "server_test_util.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
using testing::Client;
using testing::Response;
using testing::SseRecords;

constexpr const char* kModelId = "vlserve-test-llama";  // general.name of the built-in model

std::string UserBody(const std::string& extra) {
  return R"({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4,)"
         R"( "temperature": 0)" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

std::string ErrorMessage(const Response& r) {
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "<not an error: " + r.body;
  EXPECT_EQ(v.at("error").at("code").as_int64(), r.status);
  return std::string(v.at("error").at("message").as_string());
}

class ServerApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerConfig config;
    config.api_key = "test-key";
    config.alias = "glyph";
    config.warmup = false;
    server_ = testing::StartTestServer(config).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  int port() const { return server_->port(); }

  static Server* server_;
};
Server* ServerApiTest::server_ = nullptr;

TEST_F(ServerApiTest, WebUiFilesArePublicApiRoutesNeedTheKey) {
  Client c(port());
  for (const char* path : {"/", "/index.html", "/app.js"}) {
    const Response r = c.Get(path, /*api_key=*/"");
    EXPECT_EQ(r.status, 200) << path;
  }
  EXPECT_NE(c.Get("/", "").body.find("<html"), std::string::npos);
  EXPECT_EQ(c.Get("/no-such-file.js", "").status, 404);
  EXPECT_EQ(c.Get("/health", "").status, 200);
  for (const char* path : {"/v1/models", "/models", "/metrics"}) {
    EXPECT_EQ(c.Get(path, "").status, 401) << path;
    EXPECT_EQ(c.Get(path, "wrong").status, 401) << path;
  }
  for (const char* path : {"/v1/chat/completions", "/chat/completions", "/tokenize", "/detokenize",
                           "/v1/render", "/no-such-route"}) {
    EXPECT_EQ(c.Post(path, "{}", "").status, 401) << path;
  }
}

TEST_F(ServerApiTest, WrongMethodIs405WithAllow) {
  Client c(port());
  struct Case {
    testing::http::verb method;
    const char* path;
    const char* allow;
  };
  const Case cases[] = {
      {testing::http::verb::post, "/v1/models", "GET, HEAD"},
      {testing::http::verb::post, "/models", "GET, HEAD"},
      {testing::http::verb::post, "/health", "GET, HEAD"},
      {testing::http::verb::delete_, "/metrics", "GET, HEAD"},
      {testing::http::verb::get, "/v1/chat/completions", "POST"},
      {testing::http::verb::put, "/tokenize", "POST"},
      {testing::http::verb::get, "/detokenize", "POST"},
      {testing::http::verb::get, "/v1/render", "POST"},
  };
  for (const Case& k : cases) {
    const Response r = c.Send(k.method, k.path, "{}");
    EXPECT_EQ(r.status, 405) << k.path;
    EXPECT_EQ(r.allow, k.allow) << k.path;
    EXPECT_EQ(r.content_type, "application/json") << k.path;
    EXPECT_NE(ErrorMessage(r).find(k.path), std::string::npos) << r.body;
  }
}

TEST_F(ServerApiTest, AliasIsTheServedIdAndEitherNameOrNoneIsAccepted) {
  Client c(port());
  const Response models = c.Get("/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  const json::value m = json::parse(models.body);
  ASSERT_EQ(m.at("data").as_array().size(), 1u);
  EXPECT_EQ(m.at("data").at(0).at("id").as_string(), "glyph");
  for (const std::string& model : {std::string(R"("model": "glyph")"),
                                   std::string(R"("model": ")") + kModelId + "\"", std::string()}) {
    const Response r = c.Post("/v1/chat/completions", UserBody(model));
    ASSERT_EQ(r.status, 200) << model << " " << r.body;
    EXPECT_EQ(json::parse(r.body).at("model").as_string(), "glyph") << model;
  }
  const Response other = c.Post("/v1/chat/completions", UserBody(R"("model": "gpt-4o")"));
  EXPECT_EQ(other.status, 404);
  EXPECT_NE(ErrorMessage(other).find("'glyph'"), std::string::npos) << other.body;
}

TEST_F(ServerApiTest, DetokenizeInvertsTokenize) {
  Client c(port());
  const std::string text = "Hello world, how are you?";
  const Response t = c.Post("/tokenize", json::serialize(json::object{{"content", text}}));
  ASSERT_EQ(t.status, 200) << t.body;
  const json::value ids = json::parse(t.body).at("tokens");
  ASSERT_GT(ids.as_array().size(), 1u);
  const Response d = c.Post("/detokenize", json::serialize(json::object{{"tokens", ids}}));
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(json::parse(d.body).at("content").as_string(), text);
  // Control tokens come back as their text (<|im_start|> = 1 in the test vocabulary).
  const Response special = c.Post("/detokenize", R"({"tokens": [1]})");
  ASSERT_EQ(special.status, 200) << special.body;
  EXPECT_EQ(json::parse(special.body).at("content").as_string(), "<|im_start|>");
  EXPECT_EQ(json::parse(c.Post("/detokenize", R"({"tokens": []})").body).at("content"), "");

  const Response out_of_range = c.Post("/detokenize", R"({"tokens": [5, 1000000]})");
  EXPECT_EQ(out_of_range.status, 400);
  EXPECT_NE(ErrorMessage(out_of_range).find("tokens[1]"), std::string::npos);
  EXPECT_EQ(c.Post("/detokenize", R"({"tokens": [-1]})").status, 400);
  EXPECT_EQ(c.Post("/detokenize", R"({"tokens": ["a"]})").status, 400);
  EXPECT_EQ(c.Post("/detokenize", R"({"tokens": 5})").status, 400);
  EXPECT_EQ(c.Post("/detokenize", R"({})").status, 400);
  EXPECT_EQ(c.Post("/detokenize", R"([1])").status, 400);
}

TEST_F(ServerApiTest, TokenizeWithPiecesIsValidJsonForSplitCharacters) {
  Client c(port());
  // CJK and emoji: the tiny byte-level vocabulary splits them into byte tokens.
  const std::string text = "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 ok";
  const Response r =
      c.Post("/tokenize", json::serialize(json::object{{"content", text}, {"with_pieces", true}}));
  ASSERT_EQ(r.status, 200);
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);  // Boost.JSON rejects invalid UTF-8
  ASSERT_FALSE(ec) << ec.message();
  std::string joined;
  int byte_arrays = 0;
  for (const json::value& t : v.at("tokens").as_array()) {
    const json::value& piece = t.at("piece");
    if (piece.is_string()) {
      joined += std::string(piece.as_string());
      continue;
    }
    ++byte_arrays;
    for (const json::value& b : piece.as_array()) {
      const int64_t x = b.as_int64();
      ASSERT_TRUE(x >= 0 && x <= 255);
      joined += static_cast<char>(x);
    }
  }
  EXPECT_GT(byte_arrays, 0) << r.body;  // else the test checks nothing
  EXPECT_EQ(joined, text);
}

TEST_F(ServerApiTest, AStreamWithNoTextStillStartsWithTheRole) {
  Client c(port());
  // <|im_start|> (id 1) is a CONTROL token: it renders as nothing, so the answer is empty.
  const Response r =
      c.Post("/v1/chat/completions",
             UserBody(R"("stream": true, "max_tokens": 2, "logit_bias": {"1": 100})"));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<std::string> records = SseRecords(r.body);
  ASSERT_GE(records.size(), 3u) << r.body;
  const json::value first = json::parse(records[0]);
  const json::object& delta = first.at("choices").at(0).at("delta").as_object();
  ASSERT_TRUE(delta.contains("role")) << records[0];
  EXPECT_EQ(delta.at("role").as_string(), "assistant");
  EXPECT_EQ(delta.at("content").as_string(), "");
  EXPECT_TRUE(first.at("choices").at(0).at("finish_reason").is_null());
  int roles = 0;
  for (const std::string& rec : records) {
    if (rec.find("\"role\"") != std::string::npos) ++roles;
  }
  EXPECT_EQ(roles, 1) << r.body;
  EXPECT_EQ(records.back(), "[DONE]");
}

TEST(ServerApiTimingsTest, TimingsArePlainDecimals) {
  engine::Event e;
  e.kind = engine::Event::Kind::kFinished;
  e.timings.parse_ms = 0.009;
  e.timings.tokenize_ms = 0.0004;  // rounds to 0
  e.timings.e2e_ms = 21410.159;
  e.timings.ttft_ms = 1e-7;
  e.timings.decode_tokens_per_s = 123456789.5;
  const std::string body = CompletionJson({"chatcmpl-1", "m", 1}, "hi", e);
  EXPECT_NE(body.find(R"("parse":0.009)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("tokenize":0,)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("total":21410.159)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("ttft":0,)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("decode_tokens_per_s":123456789.5)"), std::string::npos) << body;
  const std::string timings = body.substr(body.find(R"("timings":)"));
  EXPECT_EQ(timings.find("E"), std::string::npos) << timings;
  EXPECT_EQ(timings.find("e-"), std::string::npos) << timings;
  // Still JSON, with the numbers intact.
  const json::value v = json::parse(body);
  EXPECT_DOUBLE_EQ(v.at("timings").at("total").to_number<double>(), 21410.159);
  EXPECT_EQ(v.at("choices").at(0).at("message").at("content").as_string(), "hi");
  const std::string chunks = FinalChunks({"chatcmpl-1", "m", 1}, e, false);
  EXPECT_NE(chunks.find(R"("parse":0.009)"), std::string::npos) << chunks;
  EXPECT_TRUE(json::parse(SseRecords(chunks).at(0)).at("timings").is_object());
}

TEST_F(ServerApiTest, HugeTimeoutIsClampedNotAnInstant504) {
  Client c(port());
  const Response r = c.Post("/v1/chat/completions", UserBody(R"("timeout": 1e10)"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(json::parse(r.body).at("choices").at(0).at("finish_reason").as_string(), "deadline");
  auto parsed = ParseChatRequest(UserBody(R"("timeout": 1e300)"), {});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed->timeout_s, kMaxTimeoutSeconds);
}

TEST_F(ServerApiTest, StopStringsAreBounded) {
  auto stops = [](int count, size_t length) {
    json::array a;
    for (int i = 0; i < count; ++i) a.push_back(json::string(std::string(length, 'a' + i % 26)));
    return R"("stop": )" + json::serialize(a);
  };
  Client c(port());
  EXPECT_EQ(c.Post("/v1/chat/completions", UserBody(stops(16, 512))).status, 200);
  const Response many = c.Post("/v1/chat/completions", UserBody(stops(17, 1)));
  EXPECT_EQ(many.status, 400);
  EXPECT_NE(ErrorMessage(many).find("at most 16"), std::string::npos) << many.body;
  const Response long_one = c.Post("/v1/chat/completions", UserBody(stops(1, 513)));
  EXPECT_EQ(long_one.status, 400);
  EXPECT_NE(ErrorMessage(long_one).find("at most 512"), std::string::npos) << long_one.body;
  EXPECT_EQ(c.Post("/v1/chat/completions", UserBody(R"("stop": ")" + std::string(513, 'x') + "\""))
                .status,
            400);
}

// Structured output itself: tests/unit/server/structured_output_test.cc.
TEST_F(ServerApiTest, ResponseFormatTypes) {
  Client c(port());
  for (const char* format : {R"({"type": "text"})", R"({"type": "json_object"})",
                             R"({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})"}) {
    EXPECT_EQ(
        c.Post("/v1/chat/completions", UserBody(std::string(R"("response_format": )") + format))
            .status,
        200)
        << format;
  }
  for (const char* format : {R"({"type": "yaml"})", R"({})", R"("json_object")",
                             R"({"type": "json_schema", "json_schema": {"name": "x"}})"}) {
    const Response r =
        c.Post("/v1/chat/completions", UserBody(std::string(R"("response_format": )") + format));
    EXPECT_EQ(r.status, 400) << format;
    EXPECT_NE(ErrorMessage(r).find("response_format"), std::string::npos) << r.body;
  }
}

TEST_F(ServerApiTest, EmptyDocumentIsOneRule) {
  Client c(port());
  for (const char* text : {"", "   \n "}) {
    const Response render = c.Post("/v1/render", json::serialize(json::object{{"text", text}}));
    const Response chat = c.Post(
        "/v1/chat/completions",
        json::serialize(json::object{
            {"max_tokens", 2},
            {"messages",
             json::array{json::object{
                 {"role", "user"},
                 {"content", json::array{json::object{{"type", "document"}, {"text", text}}}}}}}}));
    EXPECT_EQ(render.status, 400) << render.body;
    EXPECT_EQ(chat.status, 400) << chat.body;
    EXPECT_NE(ErrorMessage(render).find("the document text is empty"), std::string::npos)
        << render.body;
    EXPECT_NE(ErrorMessage(chat).find("the document text is empty"), std::string::npos)
        << chat.body;
  }
}

}  // namespace
}  // namespace vlserve::server
