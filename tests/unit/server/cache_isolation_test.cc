// Cache isolation over HTTP (docs/caching.md "Isolation"): `cache_salt` and
// `--cache-isolation api-key` keep the prefix cache (cached_tokens), the encoder cache
// (images_cached) and the response cache (X-Cache) to the caller's own partition. In
// process, on an ephemeral loopback port, with the built-in tiny model and vision tower.
// The oracle for "shared" vs "not shared" is the cache signals a caller can see, which is
// exactly what must not leak across partitions.
#include "server/cache_isolation.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <string>

#include "media/encode.h"
#include "server/chat_request.h"
#include "server/media_input.h"
#include "server/server.h"
#include "server_test_util.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Reply {
  int status = 0;
  std::string x_cache;  // "" when absent
  json::object body;
  int64_t cached_tokens = -1, prompt_tokens = -1, images_cached = -1;
  std::string content, error;
};

// One POST on a fresh connection; `api_key` "" sends no Authorization header.
Reply Post(int port, const std::string& target, const std::string& body,
           const std::string& api_key = "") {
  Reply r;
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  boost::system::error_code ec;
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
  if (ec) return r;
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  req.body() = body;
  req.prepare_payload();
  http::write(socket, req, ec);
  if (ec) return r;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res, ec);
  if (ec) return r;
  r.status = res.result_int();
  r.x_cache = std::string(res["X-Cache"]);
  json::value v = json::parse(res.body(), ec);
  if (ec || !v.is_object()) return r;
  r.body = v.as_object();
  if (const json::value* e = r.body.if_contains("error")) {
    r.error = std::string(e->at("message").as_string());
    return r;
  }
  if (const json::value* usage = r.body.if_contains("usage")) {
    r.prompt_tokens = usage->at("prompt_tokens").as_int64();
    r.cached_tokens = usage->at("prompt_tokens_details").at("cached_tokens").as_int64();
  }
  if (const json::value* timings = r.body.if_contains("timings")) {
    if (const json::value* n = timings->as_object().if_contains("images_cached")) {
      r.images_cached = n->as_int64();
    }
  }
  const json::value& choice = r.body.at("choices").at(0);
  if (const json::value* m = choice.as_object().if_contains("message")) {
    r.content = std::string(m->at("content").as_string());
  }
  return r;
}

Reply Chat(int port, json::object body, const std::string& salt = "",
           const std::string& api_key = "") {
  if (!salt.empty()) body["cache_salt"] = salt;
  return Post(port, "/v1/chat/completions", json::serialize(body), api_key);
}

// Forbids the test vocabulary's special tokens so the noise model writes visible text.
json::object NoEos() {
  json::object bias;
  for (int id = 0; id < 43; ++id) bias[std::to_string(id)] = -100;
  return bias;
}

// `deterministic`: greedy, so the response cache may store it; otherwise sampled without a
// seed, which the response cache never stores (the prefix cache alone is then visible).
json::object Body(json::value content, bool deterministic) {
  json::object o;
  o["messages"] = json::array{json::object{{"role", "user"}, {"content", std::move(content)}}};
  o["max_tokens"] = 4;
  o["temperature"] = deterministic ? 0.0 : 1.0;
  o["logit_bias"] = NoEos();
  return o;
}

// Long enough for several full KV blocks (16 tokens each) before the answer.
constexpr const char* kPrompt =
    "Summarise the history of cache isolation between the tenants of a shared inference "
    "server, with examples.";

// A JPEG data URL of a w x h gradient whose colours depend on `seed`.
std::string JpegUrl(int w, int h, int seed) {
  media::Image img = media::MakeImage(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.Row(y) + 3 * x;
      p[0] = static_cast<uint8_t>(x * 255 / w);
      p[1] = static_cast<uint8_t>(y * 255 / h);
      p[2] = static_cast<uint8_t>(seed * 41 + (x & y));
    }
  }
  auto jpeg = media::EncodeJpeg(img, 90);
  EXPECT_TRUE(jpeg.ok());
  return "data:image/jpeg;base64," +
         EncodeBase64({reinterpret_cast<const char*>(jpeg->data()), jpeg->size()});
}

json::array ImageParts(const std::string& url) {
  return json::array{json::object{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                     json::object{{"type", "text"}, {"text", "What is in this picture?"}}};
}

// --- the partition and the flag, without a server ---

TEST(CacheIsolationTest, PartitionOfEachMode) {
  EXPECT_EQ(CachePartition(CacheIsolation::kNone, "ignored", ""), "");
  EXPECT_EQ(CachePartition(CacheIsolation::kNone, "ignored", "s1"), "s1");
  // hashlib.sha256(b"key-one").hexdigest()
  const std::string key_one = "9b346041bc9a49574eb2665b2ad2a0a3f9f9cce4e42f5d1f26deb8a256b5966a";
  EXPECT_EQ(CachePartition(CacheIsolation::kApiKey, "key-one", ""), "key:" + key_one + ":");
  EXPECT_EQ(CachePartition(CacheIsolation::kApiKey, "key-one", "s1"), "key:" + key_one + ":s1");
  EXPECT_NE(CachePartition(CacheIsolation::kApiKey, "key-two", "s1"),
            CachePartition(CacheIsolation::kApiKey, "key-one", "s1"));
}

TEST(CacheIsolationTest, FlagValuesAndKeys) {
  EXPECT_EQ(*ParseCacheIsolation("none"), CacheIsolation::kNone);
  EXPECT_EQ(*ParseCacheIsolation("api-key"), CacheIsolation::kApiKey);
  EXPECT_EQ(ParseCacheIsolation("apikey").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitApiKeys("a"), (std::vector<std::string>{"a"}));
  EXPECT_EQ(SplitApiKeys(" a , b,,c "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(SplitApiKeys(" , ").empty());
}

TEST(CacheIsolationTest, BadFlagsDoNotStart) {
  ServerConfig unknown;
  unknown.cache_isolation = "per-user";
  EXPECT_EQ(Server::Start(unknown).status().code(), StatusCode::kInvalidArgument);
  ServerConfig no_keys;
  no_keys.cache_isolation = "api-key";
  EXPECT_EQ(Server::Start(no_keys).status().code(), StatusCode::kInvalidArgument);
  ServerConfig only_commas;
  only_commas.api_key = ",";  // must not turn authentication off
  EXPECT_EQ(Server::Start(only_commas).status().code(), StatusCode::kInvalidArgument);
}

TEST(CacheIsolationTest, ParseCacheSalt) {
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  auto ok = ParseChatRequest("{" + msgs + R"(,"cache_salt":"tenant-a"})", {});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->cache_salt, "tenant-a");
  auto null_salt = ParseChatRequest("{" + msgs + R"(,"cache_salt":null})", {});
  ASSERT_TRUE(null_salt.ok());
  EXPECT_EQ(null_salt->cache_salt, "");
  const std::string max(kMaxCacheSaltBytes, 'x');
  EXPECT_TRUE(ParseChatRequest("{" + msgs + R"(,"cache_salt":")" + max + "\"}", {}).ok());
  for (const std::string& bad :
       std::vector<std::string>{"7", R"("")", R"(["a"])", "\"" + max + "y\""}) {
    auto r = ParseChatRequest("{" + msgs + R"(,"cache_salt":)" + bad + "}", {});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("cache_salt"), std::string::npos) << bad;
  }
  auto completion = ParseCompletionRequest(R"({"prompt":"hi","cache_salt":"c"})");
  ASSERT_TRUE(completion.ok());
  EXPECT_EQ(completion->options.cache_salt, "c");
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"hi","cache_salt":1})").ok());
}

// --- over HTTP ---

class CacheIsolationServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerConfig shared;
    shared.response_cache_mb = 4;
    shared_ = testing::StartTestServer(shared).release();
    ServerConfig keyed;
    keyed.response_cache_mb = 4;
    keyed.api_key = "key-one, key-two";
    keyed.cache_isolation = "api-key";
    keyed_ = testing::StartTestServer(keyed).release();
  }
  static void TearDownTestSuite() {
    delete shared_;
    delete keyed_;
    shared_ = keyed_ = nullptr;
  }
  static inline Server* shared_ = nullptr;  // --cache-isolation none (the default)
  static inline Server* keyed_ = nullptr;   // --cache-isolation api-key, two keys
};

TEST_F(CacheIsolationServerTest, PrefixReuseOnlyWithinASalt) {
  ASSERT_NE(shared_, nullptr);
  const int port = shared_->port();
  const json::object body = Body(kPrompt, /*deterministic=*/false);
  const Reply a1 = Chat(port, body, "prefix-a");
  ASSERT_EQ(a1.status, 200) << a1.error;
  ASSERT_GE(a1.prompt_tokens, 48) << "the test needs several full KV blocks";
  EXPECT_EQ(a1.cached_tokens, 0);
  const Reply b1 = Chat(port, body, "prefix-b");
  ASSERT_EQ(b1.status, 200) << b1.error;
  EXPECT_EQ(b1.cached_tokens, 0) << "salt b reused salt a's prompt";
  const Reply none = Chat(port, body);
  ASSERT_EQ(none.status, 200) << none.error;
  EXPECT_EQ(none.cached_tokens, 0) << "no salt reused a salted prompt";
  // Same salt again: every full block but the one holding the last token is reused.
  const int64_t hit = (a1.prompt_tokens - 1) / 16 * 16;
  EXPECT_EQ(Chat(port, body, "prefix-a").cached_tokens, hit);
  EXPECT_EQ(Chat(port, body, "prefix-b").cached_tokens, hit);
  EXPECT_EQ(Chat(port, body).cached_tokens, hit);
}

TEST_F(CacheIsolationServerTest, TextCompletionsAreSaltedToo) {
  ASSERT_NE(shared_, nullptr);
  const int port = shared_->port();
  auto complete = [&](const std::string& salt) {
    json::object o{{"prompt", std::string(kPrompt) + " (completion)"},
                   {"max_tokens", 2},
                   {"temperature", 1.0},
                   {"cache_salt", salt}};
    return Post(port, "/v1/completions", json::serialize(o));
  };
  const Reply first = complete("completion-a");
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_EQ(complete("completion-b").cached_tokens, 0);
  EXPECT_GT(complete("completion-a").cached_tokens, 0);
}

TEST_F(CacheIsolationServerTest, ImageEmbeddingsAreSharedOnlyWithinASalt) {
  ASSERT_NE(shared_, nullptr);
  const int port = shared_->port();
  const json::object body = Body(ImageParts(JpegUrl(80, 56, 7)), /*deterministic=*/false);
  const Reply a1 = Chat(port, body, "image-a");
  ASSERT_EQ(a1.status, 200) << a1.error;
  EXPECT_EQ(a1.images_cached, 0);
  const Reply b1 = Chat(port, body, "image-b");
  ASSERT_EQ(b1.status, 200) << b1.error;
  EXPECT_EQ(b1.images_cached, 0) << "salt b got salt a's image embeddings";
  EXPECT_EQ(b1.cached_tokens, 0);
  EXPECT_EQ(b1.body.at("timings").at("encode_cached"), false);
  const Reply a2 = Chat(port, body, "image-a");
  ASSERT_EQ(a2.status, 200) << a2.error;
  EXPECT_EQ(a2.images_cached, 1);
  EXPECT_GT(a2.cached_tokens, 0);
}

TEST_F(CacheIsolationServerTest, ResponseCacheHitsOnlyWithinASalt) {
  ASSERT_NE(shared_, nullptr);
  const int port = shared_->port();
  const json::object body = Body("Tell me a short story about salt.", /*deterministic=*/true);
  const Reply a1 = Chat(port, body, "answer-a");
  ASSERT_EQ(a1.status, 200) << a1.error;
  EXPECT_EQ(a1.x_cache, "miss");
  const Reply b1 = Chat(port, body, "answer-b");
  EXPECT_EQ(b1.x_cache, "miss") << "salt b was answered from salt a's response";
  EXPECT_EQ(Chat(port, body).x_cache, "miss");
  const Reply a2 = Chat(port, body, "answer-a");
  EXPECT_EQ(a2.x_cache, "hit");
  EXPECT_EQ(a2.content, a1.content);
  EXPECT_EQ(Chat(port, body, "answer-b").x_cache, "hit");
}

TEST_F(CacheIsolationServerTest, BadCacheSaltIsA400WithAJsonError) {
  ASSERT_NE(shared_, nullptr);
  const int port = shared_->port();
  json::object body = Body("hi", true);
  for (const json::value& bad : {json::value(3), json::value(""), json::value(json::array{}),
                                 json::value(std::string(kMaxCacheSaltBytes + 1, 's'))}) {
    body["cache_salt"] = bad;
    const Reply r = Post(port, "/v1/chat/completions", json::serialize(body));
    EXPECT_EQ(r.status, 400) << json::serialize(bad);
    EXPECT_NE(r.error.find("cache_salt"), std::string::npos) << r.error;
  }
  const Reply completion =
      Post(port, "/v1/completions", R"({"prompt":"hi","max_tokens":1,"cache_salt":false})");
  EXPECT_EQ(completion.status, 400);
  EXPECT_NE(completion.error.find("cache_salt"), std::string::npos) << completion.error;
}

TEST_F(CacheIsolationServerTest, ApiKeyModeSeparatesKeysWithoutClientHelp) {
  ASSERT_NE(keyed_, nullptr);
  const int port = keyed_->port();
  EXPECT_EQ(Chat(port, Body("hi", true)).status, 401);
  EXPECT_EQ(Chat(port, Body("hi", true), "", "key-three").status, 401);
  // Prefix cache: key two does not see key one's prompt, even with the same cache_salt.
  const json::object sampled = Body(kPrompt, /*deterministic=*/false);
  const Reply one = Chat(port, sampled, "", "key-one");
  ASSERT_EQ(one.status, 200) << one.error;
  EXPECT_EQ(one.cached_tokens, 0);
  EXPECT_EQ(Chat(port, sampled, "", "key-two").cached_tokens, 0) << "key two saw key one's KV";
  const int64_t hit = (one.prompt_tokens - 1) / 16 * 16;
  EXPECT_EQ(Chat(port, sampled, "", "key-one").cached_tokens, hit);
  EXPECT_EQ(Chat(port, sampled, "", "key-two").cached_tokens, hit);
  EXPECT_EQ(Chat(port, sampled, "shared", "key-one").cached_tokens, 0);
  EXPECT_EQ(Chat(port, sampled, "shared", "key-two").cached_tokens, 0);
  // Response cache: a hit needs the same key.
  const json::object greedy = Body("Tell me about keys.", /*deterministic=*/true);
  EXPECT_EQ(Chat(port, greedy, "", "key-one").x_cache, "miss");
  EXPECT_EQ(Chat(port, greedy, "", "key-two").x_cache, "miss");
  EXPECT_EQ(Chat(port, greedy, "", "key-one").x_cache, "hit");
  // Encoder cache: the same image under the other key is encoded again.
  const json::object image = Body(ImageParts(JpegUrl(72, 48, 3)), /*deterministic=*/false);
  EXPECT_EQ(Chat(port, image, "", "key-one").images_cached, 0);
  EXPECT_EQ(Chat(port, image, "", "key-two").images_cached, 0);
  EXPECT_EQ(Chat(port, image, "", "key-one").images_cached, 1);
}

}  // namespace
}  // namespace vlserve::server
