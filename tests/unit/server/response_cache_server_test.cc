// The response cache end to end (--response-cache-mb): in process, on an ephemeral loopback
// port, with the built-in tiny random model (greedy decoding makes its noise deterministic).
// That a hit did not run the model is checked against the engine's own request counter.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <string>

#include "http_client.h"
#include "server_test_util.h"
#include "server/server.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Reply {
  int status = 0;
  std::string body;
  std::string x_cache;
  bool has_x_cache = false;
};

// One POST on a fresh connection, keeping the headers http_client.h does not expose.
Reply Post(int port, const std::string& target, const std::string& body) {
  Reply r;
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  boost::system::error_code ec;
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
  if (ec) return r;
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(socket, req, ec);
  if (ec) return r;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res, ec);
  if (ec) return r;
  r.status = res.result_int();
  r.body = res.body();
  r.has_x_cache = res.find("X-Cache") != res.end();
  r.x_cache = std::string(res["X-Cache"]);
  return r;
}

Reply Chat(const Server& s, const std::string& body) {
  return Post(s.port(), "/v1/chat/completions", body);
}

std::unique_ptr<Server> StartServer(double cache_mb) {
  ServerConfig config;
  config.response_cache_mb = cache_mb;
  return testing::StartTestServer(std::move(config));
}

int64_t Submitted(const Server& s) { return s.engine_stats()->requests_submitted; }

// Forbids the test vocabulary's 43 special tokens (end-of-generation and CONTROL tokens
// that render as nothing) so the noise model always produces visible text.
std::string NoEos() {
  std::string s = R"("logit_bias":{)";
  for (int id = 0; id < 43; ++id) s += (id ? ",\"" : "\"") + std::to_string(id) + "\":-100";
  return s + "}";
}

std::string Body(const std::string& user, const std::string& extra = "") {
  return R"({"messages":[{"role":"user","content":")" + user +
         R"("}],"max_tokens":6,"temperature":0,)" + NoEos() + extra + "}";
}

std::string Content(const std::string& body) {
  json::value v = json::parse(body);
  return std::string(v.at("choices").at(0).at("message").at("content").as_string());
}

// Concatenated delta content of an SSE body and its records, checked for the live shape.
struct Stream {
  std::string text;
  std::string finish_reason;
  bool role_first = false;
  bool usage_chunk = false;
  bool done_last = false;
};

Stream ParseStream(const std::string& body) {
  Stream s;
  const std::vector<std::string> records = testing::SseRecords(body);
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i] == "[DONE]") {
      s.done_last = i + 1 == records.size();
      continue;
    }
    json::object o = json::parse(records[i]).as_object();
    EXPECT_EQ(o.at("object").as_string(), "chat.completion.chunk");
    if (o.contains("usage")) {
      s.usage_chunk = o.at("choices").as_array().empty();
      continue;
    }
    const json::object& choice = o.at("choices").at(0).as_object();
    const json::object& delta = choice.at("delta").as_object();
    if (i == 0) s.role_first = delta.contains("role") && delta.at("role") == "assistant";
    if (delta.contains("content")) s.text += delta.at("content").as_string();
    if (!choice.at("finish_reason").is_null()) {
      s.finish_reason = std::string(choice.at("finish_reason").as_string());
      EXPECT_TRUE(o.contains("timings"));
    }
  }
  return s;
}

TEST(ResponseCacheServer, SameDeterministicRequestTwiceIsAHit) {
  auto server = StartServer(4);
  ASSERT_NE(server, nullptr);
  const Reply first = Chat(*server, Body("hello cache"));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.x_cache, "miss");
  const int64_t submitted = Submitted(*server);
  const Reply second = Chat(*server, Body("hello cache"));
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.x_cache, "hit");
  EXPECT_EQ(Submitted(*server), submitted) << "a hit must not reach the engine";
  EXPECT_FALSE(Content(first.body).empty());
  EXPECT_EQ(Content(second.body), Content(first.body));
  json::value a = json::parse(first.body), b = json::parse(second.body);
  EXPECT_EQ(b.at("usage").at("prompt_tokens"), a.at("usage").at("prompt_tokens"));
  EXPECT_EQ(b.at("usage").at("completion_tokens"), 6);
  EXPECT_EQ(b.at("choices").at(0).at("finish_reason"), "length");
  EXPECT_EQ(b.at("object"), "chat.completion");
  EXPECT_NE(b.at("id"), a.at("id"));
  // A different question misses.
  EXPECT_EQ(Chat(*server, Body("hello cache!")).x_cache, "miss");

  const std::string m = testing::Client(server->port()).Get("/metrics", "").body;
  EXPECT_NE(m.find("vlserve_response_cache_hits_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("vlserve_response_cache_misses_total 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("vlserve_response_cache_entries 2\n"), std::string::npos) << m;
}

TEST(ResponseCacheServer, SamplingWithoutSeedIsNeverCachedWithSeedIs) {
  auto server = StartServer(4);
  ASSERT_NE(server, nullptr);
  const std::string random = R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":3,)"
                             R"("temperature":0.9})";
  const int64_t before = Submitted(*server);
  EXPECT_EQ(Chat(*server, random).x_cache, "miss");
  EXPECT_EQ(Chat(*server, random).x_cache, "miss");
  EXPECT_EQ(Submitted(*server), before + 2);

  const std::string seeded = R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":3,)"
                             R"("temperature":0.9,"seed":7,)" +
                             NoEos() + "}";
  const Reply a = Chat(*server, seeded);
  const Reply b = Chat(*server, seeded);
  EXPECT_EQ(a.x_cache, "miss");
  EXPECT_EQ(b.x_cache, "hit");
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(Content(b.body), Content(a.body));
}

TEST(ResponseCacheServer, StreamingHitHasTheLiveSseShape) {
  auto server = StartServer(4);
  ASSERT_NE(server, nullptr);
  const std::string body = Body("stream me", R"(,"stream":true,)"
                                             R"("stream_options":{"include_usage":true})");
  const Reply live = Chat(*server, body);
  const Reply hit = Chat(*server, body);
  ASSERT_EQ(live.status, 200);
  ASSERT_EQ(hit.status, 200);
  EXPECT_EQ(live.x_cache, "miss");
  EXPECT_EQ(hit.x_cache, "hit");
  const Stream a = ParseStream(live.body), b = ParseStream(hit.body);
  EXPECT_FALSE(a.text.empty());
  EXPECT_EQ(b.text, a.text);
  EXPECT_TRUE(b.role_first);
  EXPECT_EQ(b.finish_reason, "length");
  EXPECT_TRUE(b.usage_chunk);
  EXPECT_TRUE(b.done_last);
  EXPECT_EQ(a.finish_reason, b.finish_reason);
  EXPECT_EQ(a.usage_chunk, b.usage_chunk);
}

TEST(ResponseCacheServer, KeyIgnoresKeyOrderWhitespaceStreamAndUser) {
  auto server = StartServer(4);
  ASSERT_NE(server, nullptr);
  const Reply plain = Chat(*server, Body("order"));
  ASSERT_EQ(plain.status, 200);
  // Same request: keys reordered, spaces and newlines, stream on, a user field.
  const std::string shuffled = "{ \"temperature\" : 0.0 ,\n \"stream\": true, \"user\": \"u-1\", " +
                               NoEos() +
                               ",\n \"max_tokens\": 6, \"messages\": [ {\"content\": "
                               "\"order\", \"role\": \"user\"} ] }";
  const Reply again = Chat(*server, shuffled);
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.x_cache, "hit");
  EXPECT_EQ(ParseStream(again.body).text, Content(plain.body));
}

TEST(ResponseCacheServer, IncompleteAnswersAreNotStored) {
  auto server = StartServer(4);
  ASSERT_NE(server, nullptr);
  // "timeout" is not part of the key; a deadline that passes before the request starts
  // must not leave an entry behind.
  const Reply late = Chat(*server, Body("deadline", R"(,"timeout":0.000001)"));
  EXPECT_EQ(late.x_cache, "miss");
  const Reply after = Chat(*server, Body("deadline"));
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.x_cache, "miss");
}

TEST(ResponseCacheServer, CacheOffSendsNoHeader) {
  auto server = StartServer(0);
  ASSERT_NE(server, nullptr);
  const Reply a = Chat(*server, Body("off"));
  const Reply b = Chat(*server, Body("off"));
  ASSERT_EQ(b.status, 200);
  EXPECT_FALSE(a.has_x_cache);
  EXPECT_FALSE(b.has_x_cache);
  const std::string m = testing::Client(server->port()).Get("/metrics", "").body;
  EXPECT_EQ(m.find("vlserve_response_cache"), std::string::npos);
}

}  // namespace
}  // namespace vlserve::server
