// response_format json_object / json_schema end to end with the built-in random-weight
// model, whose free answers are noise: constrained, the answer must parse (Boost.JSON) and
// conform to the schema (checked field by field here); unconstrained, the same request
// does not even parse. Also the 400s of the HTTP layer.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
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

// name <= 6 characters, age integer, ok boolean, tags 0..3 of "x" | "y": short answers.
constexpr const char* kSchema = R"({"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 6},
    "age": {"type": "integer"},
    "ok": {"type": "boolean"},
    "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3}},
  "required": ["name", "age", "ok", "tags"], "additionalProperties": false})";

std::string SchemaFormat() {
  return std::string(R"({"type": "json_schema", "json_schema": {"name": "person", "strict": true, )"
                     R"("schema": )") + kSchema + "}}";
}

void ExpectConforms(const std::string& text) {
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  ASSERT_FALSE(ec) << ec.message() << ": " << text;
  ASSERT_TRUE(v.is_object()) << text;
  const json::object& o = v.as_object();
  ASSERT_EQ(o.size(), 4u) << text;
  const char* order[] = {"name", "age", "ok", "tags"};
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ((o.begin() + i)->key(), order[i]) << text;
  ASSERT_TRUE(o.at("name").is_string()) << text;
  size_t chars = 0;
  for (char c : o.at("name").as_string()) chars += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  EXPECT_LE(chars, 6u) << text;
  EXPECT_TRUE(o.at("age").is_int64() || o.at("age").is_uint64() ||
              (o.at("age").is_double() && o.at("age").as_double() == std::trunc(o.at("age").as_double())))
      << text;
  EXPECT_TRUE(o.at("ok").is_bool()) << text;
  ASSERT_TRUE(o.at("tags").is_array()) << text;
  EXPECT_LE(o.at("tags").as_array().size(), 3u) << text;
  for (const json::value& t : o.at("tags").as_array()) {
    EXPECT_TRUE(t.is_string() && (t.as_string() == "x" || t.as_string() == "y")) << text;
  }
}

std::string Finish(const json::object& choice) {
  const json::value* f = choice.if_contains("finish_reason");
  return f != nullptr && f->is_string() ? std::string(f->as_string()) : "<none>";
}

bool ParsesAsJson(const std::string& text) {
  boost::system::error_code ec;
  json::parse(text, ec);
  return !ec;
}

std::string ErrorMessage(const Response& r) {
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "<not an error: " + r.body;
  return std::string(v.at("error").at("message").as_string());
}

class StructuredOutputTest : public ::testing::Test {
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

  Response Post(const std::string& path, const std::string& body) {
    Client c(server_->port());
    return c.Post(path, body, "");
  }
  // choices[0] of a 200 answer.
  json::object Choice(const std::string& path, const std::string& body) {
    const Response r = Post(path, body);
    EXPECT_EQ(r.status, 200) << body << " -> " << r.body;
    boost::system::error_code ec;
    const json::value v = json::parse(r.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("choices")) return {};
    return v.at("choices").at(0).as_object();
  }

  static Server* server_;
};
Server* StructuredOutputTest::server_ = nullptr;

std::string ChatBody(const std::string& extra, uint64_t seed) {
  return R"({"messages": [{"role": "user", "content": "Describe a person as JSON."}], )"
         R"("max_tokens": 1000, "temperature": 1, "seed": )" +
         std::to_string(seed) + extra + "}";
}

TEST_F(StructuredOutputTest, ChatJsonSchemaConforms) {
  for (uint64_t seed : {1, 2, 3}) {
    const json::object choice =
        Choice("/v1/chat/completions", ChatBody(", \"response_format\": " + SchemaFormat(), seed));
    ASSERT_FALSE(choice.empty());
    EXPECT_EQ(Finish(choice), "stop");
    ExpectConforms(std::string(choice.at("message").at("content").as_string()));
    // The same request without the constraint is noise, not JSON.
    const json::object free = Choice("/v1/chat/completions", ChatBody("", seed));
    ASSERT_FALSE(free.empty());
    EXPECT_FALSE(ParsesAsJson(std::string(free.at("message").at("content").as_string())))
        << free.at("message").at("content");
  }
}

TEST_F(StructuredOutputTest, ChatJsonObjectIsOneObject) {
  // Free-form strings of a noise model run long: a bias toward the quote keeps them short
  // (logit_bias acts before the constraint, as any sampling option).
  const Response tok = Post("/tokenize", R"({"content": "\""})");
  ASSERT_EQ(tok.status, 200) << tok.body;
  const json::value ids = json::parse(tok.body).at("tokens");
  ASSERT_EQ(ids.as_array().size(), 1u) << tok.body;
  const std::string bias =
      R"(, "logit_bias": {")" + std::to_string(ids.at(0).to_number<int64_t>()) + R"(": 8})";
  int stopped = 0;
  for (uint64_t seed : {1, 2, 3, 4}) {
    const json::object choice = Choice(
        "/v1/chat/completions",
        ChatBody(R"(, "response_format": {"type": "json_object"})" + bias, seed));
    ASSERT_FALSE(choice.empty());
    const std::string text(choice.at("message").at("content").as_string());
    if (Finish(choice) != "stop") continue;  // cut by max_tokens: a prefix
    ++stopped;
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    ASSERT_FALSE(ec) << ec.message() << ": " << text;
    EXPECT_TRUE(v.is_object()) << text;
    const json::object free = Choice("/v1/chat/completions", ChatBody(bias, seed));
    EXPECT_FALSE(ParsesAsJson(std::string(free.at("message").at("content").as_string())));
  }
  EXPECT_GE(stopped, 2);
}

TEST_F(StructuredOutputTest, LengthCutIsLength) {
  const json::object choice = Choice(
      "/v1/chat/completions",
      R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "seed": 1, )"
      R"("response_format": )" + SchemaFormat() + "}");
  ASSERT_FALSE(choice.empty());
  EXPECT_EQ(Finish(choice), "length");
  const std::string text(choice.at("message").at("content").as_string());
  EXPECT_FALSE(ParsesAsJson(text)) << text;  // three tokens cannot hold four properties
}

TEST_F(StructuredOutputTest, CompletionsAndStreamingConform) {
  const json::object choice = Choice(
      "/v1/completions",
      R"({"prompt": "A person:", "max_tokens": 1000, "temperature": 1, "seed": 5, )"
      R"("response_format": )" + SchemaFormat() + "}");
  ASSERT_FALSE(choice.empty());
  EXPECT_EQ(Finish(choice), "stop");
  ExpectConforms(std::string(choice.at("text").as_string()));

  const Response r = Post("/v1/chat/completions",
                          ChatBody(", \"stream\": true, \"response_format\": " + SchemaFormat(), 6));
  ASSERT_EQ(r.status, 200) << r.body;
  std::string text, finish;
  for (const std::string& record : SseRecords(r.body)) {
    if (record == "[DONE]") continue;
    const json::value v = json::parse(record);
    if (v.at("choices").as_array().empty()) continue;
    const json::object& c = v.at("choices").at(0).as_object();
    if (const json::value* d = c.at("delta").as_object().if_contains("content");
        d != nullptr && d->is_string()) {
      text += d->as_string();
    }
    if (!c.at("finish_reason").is_null()) finish = Finish(c);
  }
  EXPECT_EQ(finish, "stop");
  ExpectConforms(text);
}

TEST_F(StructuredOutputTest, BadFormatsAre400NamingTheProblem) {
  struct Case {
    std::string format;
    const char* must_mention;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"type": "json_schema", "json_schema": {"name": "x"}})",
            "response_format.json_schema.schema' is required"},
           {R"({"type": "json_schema"})", "response_format.json_schema' is required"},
           {R"({"type": "json_schema", "json_schema": {"schema": {"type": "string",
                "pattern": "a+"}}})",
            "keyword 'pattern' is not supported"},
           {R"({"type": "json_schema", "json_schema": {"schema": {"type": "object",
                "properties": {"n": {"type": "number", "minimum": 1}}}}})",
            "response_format.json_schema.schema.properties.n: keyword 'minimum'"},
           {R"({"type": "json_schema", "json_schema": {"strict": "yes", "schema": {}}})",
            "strict"},
           {R"({"type": "json_object", "schema": {"type": "nope"}})", "response_format.schema"},
           {R"({"type": "yaml"})", "not a known type"},
       }) {
    const Response r = Post("/v1/chat/completions",
                            R"({"messages": [{"role": "user", "content": "x"}], )"
                            R"("response_format": )" + c.format + "}");
    EXPECT_EQ(r.status, 400) << c.format << " -> " << r.body;
    EXPECT_NE(ErrorMessage(r).find(c.must_mention), std::string::npos) << r.body;
  }
}

}  // namespace
}  // namespace vlserve::server
