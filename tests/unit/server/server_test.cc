// End-to-end tests of the HTTP server, in process, on an ephemeral loopback port, with the
// built-in tiny random model (its text is noise; greedy decoding makes it deterministic).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "http_client.h"
#include "server_test_util.h"
#include "media/encode.h"
#include "server/media_input.h"
#include "server/server.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
using testing::Client;
using testing::Response;
using testing::SseRecords;

// Forbids the test vocabulary's 43 special tokens (ids 0..42: end-of-generation tokens and
// CONTROL tokens that render as nothing) so the noise model always produces visible text.
const std::string kNoEos = [] {
  std::string s = R"("logit_bias": {)";
  for (int id = 0; id < 43; ++id) s += (id ? ", \"" : "\"") + std::to_string(id) + "\": -100";
  return s + "}";
}();

std::unique_ptr<Server> StartServer(ServerConfig config) {
  config.api_key = "test-key";
  return testing::StartTestServer(std::move(config));
}

std::string ChatBody(const std::string& user, int max_tokens, bool stream,
                     const std::string& extra = "") {
  json::object o;
  o["messages"] = json::array{json::object{{"role", "user"}, {"content", user}}};
  o["max_tokens"] = max_tokens;
  o["temperature"] = 0;
  o["stream"] = stream;
  std::string s = json::serialize(o);
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + extra + "}";
  return s;
}

struct Streamed {
  std::string text;
  std::string finish_reason;
  bool done_last = false;
  int records = 0;
  json::value final_chunk;
  json::value usage;
  std::string error;
};

// Checks the SSE framing on the way: every record JSON, one [DONE], last.
Streamed ParseStream(const std::string& body) {
  Streamed s;
  std::vector<std::string> records = SseRecords(body);
  for (size_t i = 0; i < records.size(); ++i) {
    ++s.records;
    if (records[i] == "[DONE]") {
      s.done_last = i + 1 == records.size();
      continue;
    }
    boost::system::error_code ec;
    json::value v = json::parse(records[i], ec);
    if (ec || !v.is_object()) {
      s.error = "bad record: " + records[i];
      return s;
    }
    if (v.as_object().contains("error")) {
      s.error = records[i];
      continue;
    }
    const json::array& choices = v.at("choices").as_array();
    if (choices.empty()) {
      s.usage = v.at("usage");
      continue;
    }
    const json::object& c = choices[0].as_object();
    const json::object& delta = c.at("delta").as_object();
    if (const auto* content = delta.if_contains("content")) {
      s.text += std::string(content->as_string());
    }
    if (!c.at("finish_reason").is_null()) {
      s.finish_reason = std::string(c.at("finish_reason").as_string());
      s.final_chunk = v;
    }
  }
  return s;
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerConfig config;
    config.max_body_mb = 1;
    config.max_media_parts = 2;
    server_ = StartServer(config).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  int port() const { return server_->port(); }

  static Server* server_;
};
Server* ServerTest::server_ = nullptr;

TEST_F(ServerTest, HealthModelsAndKeepAlive) {
  Client c(port());
  ASSERT_TRUE(c.connected());
  Response h = c.Get("/health", "");  // no key needed
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(json::parse(h.body).at("status").as_string(), "ok");
  Response m = c.Get("/v1/models");  // same connection: keep-alive
  ASSERT_EQ(m.status, 200) << m.body;
  const json::value models = json::parse(m.body);
  ASSERT_EQ(models.at("data").as_array().size(), 1u);
  EXPECT_EQ(models.at("data").at(0).at("id").as_string(), "vlserve-test-llama");
  // The web UI's model details: the built-in model is a llama with the idefics3 tower.
  const json::value& meta = models.at("data").at(0).at("meta");
  EXPECT_EQ(meta.at("arch").as_string(), "llama");
  EXPECT_TRUE(meta.at("vision").as_bool());
  EXPECT_EQ(meta.at("projector").as_string(), "idefics3");
  EXPECT_GT(meta.at("n_ctx").as_int64(), 0);
  EXPECT_EQ(meta.at("n_ctx").as_int64(), meta.at("n_ctx_train").as_int64());  // no --max-context
  Response root = c.Get("/");
  EXPECT_EQ(root.status, 200);
  EXPECT_NE(root.body.find("<html"), std::string::npos);
}

TEST_F(ServerTest, TokenizeMatchesTheModelVocabulary) {
  Client c(port());
  Response r = c.Post("/tokenize", R"({"content": "<|im_start|>"})");
  ASSERT_EQ(r.status, 200) << r.body;
  // The test vocabulary puts its special tokens first: <|endoftext|> = 0, <|im_start|> = 1.
  const json::value parsed = json::parse(r.body);
  const json::array& tokens = parsed.at("tokens").as_array();
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].as_int64(), 1);
  Response bad = c.Post("/tokenize", R"({"content": 5})");
  EXPECT_EQ(bad.status, 400);
}

TEST_F(ServerTest, StreamingConcatenatesToTheNonStreamingAnswer) {
  Client c(port());
  Response full = c.Post("/v1/chat/completions", ChatBody("Tell me a story.", 24, false, kNoEos));
  ASSERT_EQ(full.status, 200) << full.body;
  const json::value v = json::parse(full.body);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_EQ(v.at("model").as_string(), "vlserve-test-llama");
  const std::string answer(v.at("choices").at(0).at("message").at("content").as_string());
  const json::object& usage = v.at("usage").as_object();
  const int64_t completion = usage.at("completion_tokens").as_int64();
  EXPECT_GT(completion, 0);
  EXPECT_LE(completion, 24);
  EXPECT_EQ(usage.at("total_tokens").as_int64(),
            usage.at("prompt_tokens").as_int64() + completion);
  EXPECT_TRUE(usage.at("prompt_tokens_details").as_object().contains("cached_tokens"));
  const json::object& timings = v.at("timings").as_object();
  for (const char* key : {"http_read", "parse", "queue", "prefill", "ttft", "total"}) {
    EXPECT_TRUE(timings.contains(key)) << key;
  }

  Response streamed = c.Post("/v1/chat/completions",
                             ChatBody("Tell me a story.", 24, true,
                                      kNoEos + R"(, "stream_options": {"include_usage": true})"));
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(streamed.content_type, "text/event-stream");
  const Streamed s = ParseStream(streamed.body);
  EXPECT_TRUE(s.error.empty()) << s.error;
  EXPECT_TRUE(s.done_last);
  EXPECT_EQ(s.text, answer);
  EXPECT_EQ(s.finish_reason, std::string(v.at("choices").at(0).at("finish_reason").as_string()));
  ASSERT_TRUE(s.final_chunk.is_object());
  EXPECT_TRUE(s.final_chunk.as_object().contains("timings"));
  ASSERT_TRUE(s.usage.is_object());
  EXPECT_EQ(s.usage.at("completion_tokens").as_int64(), completion);
}

TEST_F(ServerTest, ConcurrentStreamsMatchTheSoloAnswer) {
  const std::string body = ChatBody("Hello there, how are you?", 16, true, kNoEos);
  Client solo(port());
  const Streamed expected = ParseStream(solo.Post("/v1/chat/completions", body).body);
  ASSERT_TRUE(expected.done_last);
  ASSERT_FALSE(expected.text.empty());
  constexpr int kClients = 64;
  std::vector<Streamed> got(kClients);
  std::vector<int> status(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Client c(port());
      Response r = c.Post("/v1/chat/completions", body);
      status[i] = r.status;
      got[i] = ParseStream(r.body);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(status[i], 200) << i;
    EXPECT_TRUE(got[i].done_last) << i;
    EXPECT_TRUE(got[i].error.empty()) << got[i].error;
    EXPECT_EQ(got[i].text, expected.text) << i;
    EXPECT_EQ(got[i].finish_reason, expected.finish_reason) << i;
  }
}

TEST_F(ServerTest, DisconnectMidStreamFreesTheSequence) {
  {
    Client c(port());
    namespace http = testing::http;
    http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
    req.set(http::field::authorization, "Bearer test-key");
    req.body() = ChatBody("Write a very long essay.", 1500, true, kNoEos);
    req.prepare_payload();
    http::write(c.socket(), req);
    char buf[256];
    size_t got = 0;  // wait until tokens flow, then hang up
    while (got < 200) got += c.socket().read_some(testing::asio::buffer(buf));
  }
  bool freed = false;
  for (int i = 0; i < 200 && !freed; ++i) {  // <= 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto stats = server_->engine_stats();
    freed = stats && stats->running == 0 && stats->waiting == 0;
  }
  EXPECT_TRUE(freed);
  const auto stats = server_->engine_stats();
  EXPECT_GE(stats->requests_cancelled, 1);
}

TEST_F(ServerTest, BadRequestsGetJsonErrorsWhileAnotherStreams) {
  std::string streamed_body;
  std::thread streamer([&] {
    Client c(port());
    streamed_body = c.Post("/v1/chat/completions", ChatBody("Go on.", 200, true, kNoEos)).body;
  });
  auto error_of = [&](const std::string& body, const std::string& key = "test-key") {
    Client c(port());
    Response r = c.Post("/v1/chat/completions", body, key);
    EXPECT_EQ(r.content_type, "application/json") << body.substr(0, 80);
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    std::string message;
    if (!ec && v.is_object() && v.as_object().contains("error")) {
      message = std::string(v.at("error").at("message").as_string());
      EXPECT_EQ(v.at("error").at("code").as_int64(), r.status);
      EXPECT_TRUE(v.at("error").at("type").is_string());
    }
    return std::make_pair(r.status, message);
  };
  auto image_body = [](const std::vector<std::string>& urls) {
    json::array parts{json::object{{"type", "text"}, {"text", "What is this?"}}};
    for (const std::string& u : urls) {
      parts.push_back(json::object{{"type", "image_url"}, {"image_url", {{"url", u}}}});
    }
    return json::serialize(json::object{
        {"messages", json::array{json::object{{"role", "user"}, {"content", parts}}}}});
  };
  auto [s1, m1] = error_of("{not json");
  EXPECT_EQ(s1, 400);
  EXPECT_NE(m1.find("JSON"), std::string::npos) << m1;
  auto [s2, m2] = error_of(ChatBody("hi", 4, false, R"("top_p": "high")"));
  EXPECT_EQ(s2, 400);
  EXPECT_NE(m2.find("top_p"), std::string::npos) << m2;
  auto [s3, m3] = error_of(ChatBody("hi", 4, false, R"("model": "gpt-9")"));
  EXPECT_EQ(s3, 404);
  EXPECT_NE(m3.find("gpt-9"), std::string::npos) << m3;
  auto [s4, m4] = error_of(image_body({"data:image/png;base64,@@@notbase64"}));
  EXPECT_EQ(s4, 400);
  EXPECT_NE(m4.find("base64"), std::string::npos) << m4;
  auto [s5, m5] = error_of(image_body({"data:image/png;base64,aGVsbG8gd29ybGQ="}));
  EXPECT_EQ(s5, 400) << m5;
  auto [s7, m7] = error_of(image_body({"https://example.com/a.png"}));
  EXPECT_EQ(s7, 400);
  EXPECT_NE(m7.find("--allow-media-domains"), std::string::npos) << m7;
  auto [s8, m8] = error_of(image_body({"data:,", "data:,", "data:,"}));
  EXPECT_EQ(s8, 400);
  EXPECT_NE(m8.find("too many"), std::string::npos) << m8;
  auto [s9, m9] = error_of(ChatBody(std::string(2 << 20, 'a'), 4, false));
  EXPECT_EQ(s9, 413) << m9;
  auto [s10, m10] = error_of(ChatBody("hi", 4, false), "");
  EXPECT_EQ(s10, 401);
  auto [s11, m11] = error_of(ChatBody("hi", 4, false), "wrong-key");
  EXPECT_EQ(s11, 401);
  auto [s12, m12] = error_of(R"({"messages": [{"role": "user", "content": 7}]})");
  EXPECT_EQ(s12, 400);
  EXPECT_NE(m12.find("messages[0].content"), std::string::npos) << m12;

  streamer.join();
  const Streamed s = ParseStream(streamed_body);
  EXPECT_TRUE(s.done_last);
  EXPECT_TRUE(s.error.empty()) << s.error;
  EXPECT_FALSE(s.finish_reason.empty());
}

TEST_F(ServerTest, MetricsParse) {
  Client c(port());
  ASSERT_EQ(c.Post("/v1/chat/completions", ChatBody("hi", 4, false)).status, 200);
  Response r = c.Get("/metrics");
  ASSERT_EQ(r.status, 200);
  // Every non-comment line is "name{labels} value" with a numeric value.
  std::istringstream lines(r.body);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    size_t used = 0;
    std::stod(line.substr(space + 1), &used);
    EXPECT_EQ(used, line.size() - space - 1) << line;
    ++samples;
  }
  EXPECT_GT(samples, 20);
  for (const char* name :
       {"vlserve_requests_total{status=\"200\"}", "vlserve_requests_running",
        "vlserve_requests_waiting", "vlserve_kv_cache_usage_ratio", "vlserve_ttft_seconds_bucket",
        "vlserve_inter_token_latency_seconds_count", "vlserve_e2e_latency_seconds_sum",
        "vlserve_queue_seconds_count", "vlserve_stage_seconds_bucket{stage=\"parse\"",
        "vlserve_prompt_tokens_total", "vlserve_generation_tokens_total"}) {
    EXPECT_NE(r.body.find(name), std::string::npos) << name;
  }
}

TEST(ServerOverloadTest, QueueFullGives503ThenRecovers) {
  ServerConfig config;
  config.engine.max_running = 1;
  config.engine.max_waiting_requests = 1;
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  constexpr int kClients = 8;
  std::vector<Response> got(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Client c(server->port());
      got[i] = c.Post("/v1/chat/completions", ChatBody("Count to ten.", 48, false));
    });
  }
  for (std::thread& t : threads) t.join();
  int ok = 0, overloaded = 0;
  for (const Response& r : got) {
    if (r.status == 200) ++ok;
    if (r.status == 503) {
      ++overloaded;
      EXPECT_EQ(r.retry_after, "1");
      EXPECT_NE(r.body.find("\"error\""), std::string::npos);
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(overloaded, 1);
  EXPECT_EQ(ok + overloaded, kClients);
  Client after(server->port());
  EXPECT_EQ(after.Post("/v1/chat/completions", ChatBody("Count to ten.", 4, false)).status, 200);
}

TEST(MediaInputTest, Base64) {
  EXPECT_EQ(*DecodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*DecodeBase64("aGVsbG8"), "hello");
  EXPECT_EQ(*DecodeBase64(""), "");
  EXPECT_FALSE(DecodeBase64("aGV sbG8=").ok());
  EXPECT_FALSE(DecodeBase64("a").ok());
  // RFC 4648 section 10 test vectors.
  EXPECT_EQ(EncodeBase64(""), "");
  EXPECT_EQ(EncodeBase64("f"), "Zg==");
  EXPECT_EQ(EncodeBase64("fo"), "Zm8=");
  EXPECT_EQ(EncodeBase64("foo"), "Zm9v");
  EXPECT_EQ(EncodeBase64("foobar"), "Zm9vYmFy");
}

// /metrics reports the KV pool as stored. The built-in model has 2 layers and 2 kv heads
// of head_dim 16: a token is 2 (K, V) x 2 x 2 x 16 values, 512 bytes in f32, 256 in f16.
TEST(ServerKvTypeTest, MetricsReportThePoolBytesOfTheKvType) {
  for (const auto& [kv_type, bytes_per_token] :
       {std::pair<const char*, int>{"f32", 512}, {"f16", 256}, {"bf16", 256}}) {
    ServerConfig config;
    config.kv_type = kv_type;
    config.engine.kv_tokens = 64;
    config.warmup = false;
    auto server = StartServer(config);
    ASSERT_NE(server, nullptr);
    Client c(server->port());
    const Response r = c.Get("/metrics");
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("\nvlserve_kv_cache_bytes " + std::to_string(64 * bytes_per_token) +
                          "\n"),
              std::string::npos)
        << kv_type << "\n" << r.body;
  }
}

TEST(ServerKvTypeTest, UnknownKvTypeFailsLoadingAndNamesTheChoices) {
  ServerConfig config;
  config.kv_type = "q8_0";
  config.http.port = 0;
  auto server = Server::Start(std::move(config));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_FALSE((*server)->WaitReady(std::chrono::seconds(60)));
  const std::string message = (*server)->load_status().ToString();
  EXPECT_NE(message.find("kv type 'q8_0'"), std::string::npos) << message;
  EXPECT_NE(message.find("f16"), std::string::npos) << message;
}

}  // namespace
}  // namespace vlserve::server
