// Log probabilities on chat completions and POST /v1/completions (issue 18 §2), in
// process with the built-in tiny random model. The values themselves are checked against
// an independent log-softmax in tests/unit/engine/logprobs_test.cc; here: the OpenAI
// shapes, greedy choice = top-1, sorting, streaming = non-streaming, every prompt form
// giving the same tokens as /tokenize, and the 400s.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "http_client.h"
#include "server/server.h"
#include "server_test_util.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
using testing::Client;
using testing::Response;
using testing::SseRecords;

std::string ChatBody(const std::string& extra) {
  return R"({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6,)"
         R"( "temperature": 0, )" +
         extra + "}";
}

std::string ErrorMessage(const Response& r) {
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "<not an error: " + r.body;
  return std::string(v.at("error").at("message").as_string());
}

// The choices[0] objects of a stream's chunks (not [DONE], not the usage chunk).
std::vector<json::object> StreamChoices(const Response& r) {
  std::vector<json::object> out;
  const std::vector<std::string> records = SseRecords(r.body);
  EXPECT_FALSE(records.empty());
  if (records.empty()) return out;
  EXPECT_EQ(records.back(), "[DONE]");
  for (size_t i = 0; i + 1 < records.size(); ++i) {
    const json::value v = json::parse(records[i]);
    if (v.at("choices").as_array().empty()) continue;
    out.push_back(v.at("choices").at(0).as_object());
  }
  return out;
}

class CompletionsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerConfig config;
    config.warmup = false;
    server_ = testing::StartTestServer(config).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  int port() const { return server_->port(); }

  json::value PostOk(const std::string& path, const std::string& body) {
    Client c(port());
    const Response r = c.Post(path, body, "");
    EXPECT_EQ(r.status, 200) << body << " -> " << r.body;
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  }
  Response Post(const std::string& path, const std::string& body) {
    Client c(port());
    return c.Post(path, body, "");
  }

  static Server* server_;
};
Server* CompletionsTest::server_ = nullptr;

TEST_F(CompletionsTest, ChatLogprobsAreValidAndGreedyPicksTheTopOne) {
  const json::value v =
      PostOk("/v1/chat/completions", ChatBody(R"("logprobs": true, "top_logprobs": 5)"));
  const json::object& choice = v.at("choices").at(0).as_object();
  const json::array& content = choice.at("logprobs").at("content").as_array();
  const int64_t completion_tokens = v.at("usage").at("completion_tokens").as_int64();
  // One entry per generated token; an end-of-generation token is not listed.
  EXPECT_GE(static_cast<int64_t>(content.size()), completion_tokens - 1);
  EXPECT_LE(static_cast<int64_t>(content.size()), completion_tokens);
  ASSERT_FALSE(content.empty());
  for (const json::value& e : content) {
    const double lp = e.at("logprob").as_double();
    EXPECT_LE(lp, 0.0);
    const std::string token(e.at("token").as_string());
    std::string bytes;
    for (const json::value& b : e.at("bytes").as_array()) bytes += static_cast<char>(b.as_int64());
    if (token.find("\\x") == std::string::npos) {
      EXPECT_EQ(bytes, token);
    }
    const json::array& top = e.at("top_logprobs").as_array();
    ASSERT_EQ(top.size(), 5u);
    EXPECT_EQ(top[0].at("token").as_string(), token);  // greedy
    EXPECT_EQ(top[0].at("logprob").as_double(), lp);
    for (size_t k = 1; k < top.size(); ++k) {
      EXPECT_GE(top[k - 1].at("logprob").as_double(), top[k].at("logprob").as_double());
      EXPECT_LE(top[k].at("logprob").as_double(), 0.0);
    }
    double mass = 0;  // the top five of a distribution hold at most all of it
    for (const json::value& t : top) mass += std::exp(t.at("logprob").as_double());
    EXPECT_LE(mass, 1.0 + 1e-5);
  }
  // Without logprobs there is no logprobs member; top_logprobs 0 gives empty lists.
  const json::value plain = PostOk("/v1/chat/completions", ChatBody(R"("seed": 1)"));
  EXPECT_FALSE(plain.at("choices").at(0).as_object().contains("logprobs"));
  const json::value zero =
      PostOk("/v1/chat/completions", ChatBody(R"("logprobs": true, "top_logprobs": 0)"));
  for (const json::value& e : zero.at("choices").at(0).at("logprobs").at("content").as_array()) {
    EXPECT_TRUE(e.at("top_logprobs").as_array().empty());
  }
}

TEST_F(CompletionsTest, StreamedChatLogprobsEqualTheNonStreamedOnes) {
  const std::string extra = R"("logprobs": true, "top_logprobs": 3)";
  const json::value whole = PostOk("/v1/chat/completions", ChatBody(extra));
  const Response r = Post("/v1/chat/completions", ChatBody(extra + R"(, "stream": true)"));
  ASSERT_EQ(r.status, 200) << r.body;
  json::array streamed;
  std::string text;
  for (const json::object& choice : StreamChoices(r)) {
    if (choice.at("finish_reason").is_null()) {
      text += choice.at("delta").at("content").as_string();
      for (const json::value& e : choice.at("logprobs").at("content").as_array()) {
        streamed.push_back(e);
      }
    }
  }
  EXPECT_EQ(text, whole.at("choices").at(0).at("message").at("content").as_string());
  EXPECT_EQ(json::value(streamed), whole.at("choices").at(0).at("logprobs").at("content"));
}

TEST_F(CompletionsTest, ChatLogprobsValidation) {
  for (const char* extra : {R"("top_logprobs": 2)", R"("logprobs": false, "top_logprobs": 2)",
                            R"("logprobs": true, "top_logprobs": 21)",
                            R"("logprobs": true, "top_logprobs": -1)", R"("logprobs": 1)",
                            R"("logprobs": true, "top_logprobs": "3")"}) {
    const Response r = Post("/v1/chat/completions", ChatBody(extra));
    EXPECT_EQ(r.status, 400) << extra << " -> " << r.body;
    EXPECT_NE(ErrorMessage(r).find("logprobs"), std::string::npos) << r.body;
  }
}

TEST_F(CompletionsTest, EveryPromptFormGivesTheSameAnswer) {
  // The ids /tokenize gives for the text (with BOS as the model wants it).
  const json::value ids = PostOk(
      "/tokenize", R"({"content": "Once upon a time", "add_special": true})");
  const std::string id_list = json::serialize(ids.at("tokens"));
  const std::string tail = R"(, "max_tokens": 5, "temperature": 0})";
  const json::value text = PostOk("/v1/completions", R"({"prompt": "Once upon a time")" + tail);
  EXPECT_EQ(text.at("object").as_string(), "text_completion");
  EXPECT_EQ(std::string(text.at("id").as_string()).rfind("cmpl-", 0), 0u);
  const json::object& choice = text.at("choices").at(0).as_object();
  EXPECT_TRUE(choice.at("logprobs").is_null());
  EXPECT_FALSE(choice.at("finish_reason").as_string().empty());
  const json::value usage = text.at("usage");
  EXPECT_EQ(usage.at("prompt_tokens").as_int64(),
            static_cast<int64_t>(ids.at("tokens").as_array().size()));
  EXPECT_TRUE(text.as_object().contains("timings"));
  for (const std::string& prompt :
       {std::string(R"(["Once upon a time"])"), id_list, "[" + id_list + "]"}) {
    const json::value other = PostOk("/v1/completions", R"({"prompt": )" + prompt + tail);
    EXPECT_EQ(other.at("choices").at(0).at("text"), choice.at("text")) << prompt;
    EXPECT_EQ(other.at("usage"), usage) << prompt;
  }
  // /completions is the same route.
  EXPECT_EQ(PostOk("/completions", R"({"prompt": "Once upon a time")" + tail)
                .at("choices").at(0).at("text"),
            choice.at("text"));
}

TEST_F(CompletionsTest, EchoStopAndLegacyLogprobs) {
  const std::string base = R"({"prompt": "Hello there", "max_tokens": 8, "temperature": 0)";
  const json::value plain = PostOk("/v1/completions", base + "}");
  const std::string answer(plain.at("choices").at(0).at("text").as_string());
  const json::value echo = PostOk("/v1/completions", base + R"(, "echo": true})");
  EXPECT_EQ(echo.at("choices").at(0).at("text").as_string(), "Hello there" + answer);
  // A stop string (one ASCII character after the first: the noise model's text may hold
  // any UTF-8) cuts the text where it first appears.
  const size_t at = answer.find_first_of(
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?", 1);
  if (at != std::string::npos) {
    const std::string stop = answer.substr(at, 1);
    const json::value cut =
        PostOk("/v1/completions", base + R"(, "stop": )" + json::serialize(json::string(stop)) + "}");
    EXPECT_EQ(cut.at("choices").at(0).at("text").as_string(), answer.substr(0, answer.find(stop)));
    EXPECT_EQ(cut.at("choices").at(0).at("finish_reason").as_string(), "stop");
  }
  const json::value lp = PostOk("/v1/completions", base + R"(, "logprobs": 3})");
  const json::object& l = lp.at("choices").at(0).at("logprobs").as_object();
  const json::array& tokens = l.at("tokens").as_array();
  const json::array& token_logprobs = l.at("token_logprobs").as_array();
  const json::array& top = l.at("top_logprobs").as_array();
  const json::array& offsets = l.at("text_offset").as_array();
  ASSERT_FALSE(tokens.empty());
  ASSERT_EQ(token_logprobs.size(), tokens.size());
  ASSERT_EQ(top.size(), tokens.size());
  ASSERT_EQ(offsets.size(), tokens.size());
  EXPECT_EQ(offsets[0].as_int64(), 0);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const double chosen = token_logprobs[i].as_double();
    EXPECT_LE(chosen, 0.0);
    const json::object& alternatives = top[i].as_object();
    EXPECT_GE(alternatives.size(), 1u);
    EXPECT_LE(alternatives.size(), 3u);
    double best = -1e9;
    for (const auto& [text, value] : alternatives) best = std::max(best, value.as_double());
    EXPECT_EQ(best, chosen) << "greedy picks the most likely token";
    if (i > 0) {
      EXPECT_GE(offsets[i].as_int64(), offsets[i - 1].as_int64());
    }
  }
  EXPECT_EQ(lp.at("choices").at(0).at("text"), plain.at("choices").at(0).at("text"));
}

TEST_F(CompletionsTest, StreamingTextCompletion) {
  const std::string base =
      R"({"prompt": "Hello there", "max_tokens": 8, "temperature": 0, "logprobs": 2)";
  const json::value whole = PostOk("/v1/completions", base + "}");
  const Response r = Post(
      "/v1/completions", base + R"(, "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<std::string> records = SseRecords(r.body);
  ASSERT_GE(records.size(), 3u);
  const json::value usage_chunk = json::parse(records[records.size() - 2]);
  EXPECT_EQ(usage_chunk.at("usage"), whole.at("usage"));
  std::string text;
  json::array tokens, offsets;
  std::string finish;
  for (const std::string& rec : records) {
    if (rec == "[DONE]") continue;
    const json::value v = json::parse(rec);
    EXPECT_EQ(v.at("object").as_string(), "text_completion");
    if (v.at("choices").as_array().empty()) continue;
    const json::object& c = v.at("choices").at(0).as_object();
    text += c.at("text").as_string();
    if (!c.at("finish_reason").is_null()) {
      finish = std::string(c.at("finish_reason").as_string());
      EXPECT_TRUE(v.as_object().contains("timings"));
      continue;
    }
    for (const json::value& t : c.at("logprobs").at("tokens").as_array()) tokens.push_back(t);
    for (const json::value& o : c.at("logprobs").at("text_offset").as_array()) offsets.push_back(o);
  }
  const json::object& w = whole.at("choices").at(0).as_object();
  EXPECT_EQ(text, w.at("text").as_string());
  EXPECT_EQ(finish, w.at("finish_reason").as_string());
  EXPECT_EQ(json::value(tokens), w.at("logprobs").at("tokens"));
  EXPECT_EQ(json::value(offsets), w.at("logprobs").at("text_offset"));  // continued count
}

TEST_F(CompletionsTest, CompletionErrors) {
  struct Case {
    const char* body;
    const char* says;
  };
  const Case cases[] = {
      {R"({"max_tokens": 2})", "prompt"},
      {R"({"prompt": ["a", "b"]})", "one prompt"},
      {R"({"prompt": [[1, 2], [3]]})", "one prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": 7})", "prompt"},
      {R"({"prompt": [1, "a"]})", "prompt"},
      {R"({"prompt": [-1]})", "prompt"},
      {R"({"prompt": [99999999]})", "vocabulary"},
      {R"({"prompt": "a", "echo": true, "logprobs": 1})", "echo"},
      {R"({"prompt": "a", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "a", "logprobs": true})", "logprobs"},
      {R"({"prompt": "a", "n": 2})", "'n'"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "a", "suffix": "b"})", "suffix"},
      {R"({"prompt": "a", "model": "other"})", "other"},
  };
  for (const Case& k : cases) {
    const Response r = Post("/v1/completions", k.body);
    EXPECT_EQ(r.status / 100, 4) << k.body << " -> " << r.body;
    EXPECT_NE(ErrorMessage(r).find(k.says), std::string::npos) << k.body << " -> " << r.body;
  }
  Client c(port());
  const Response get = c.Get("/v1/completions", "");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.allow, "POST");
}

}  // namespace
}  // namespace vlserve::server
