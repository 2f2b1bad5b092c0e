// The request schema: strict types, extensions, limits.
#include "server/chat_request.h"

#include <gtest/gtest.h>

#include "server/http_error.h"

namespace vlserve::server {
namespace {

TEST(ChatRequestTest, ParsesSamplingAndExtensions) {
  auto r = ParseChatRequest(R"({
      "model": "m", "stream": true, "stream_options": {"include_usage": true},
      "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "max_completion_tokens": 7,
      "stop": ["a", "b"], "seed": 42, "presence_penalty": 0.1, "frequency_penalty": 0.2,
      "logit_bias": {"17": -5}, "repetition_penalty": 1.1, "priority": 3, "timeout": 2.5,
      "messages": [{"role": "system", "content": "s"},
                   {"role": "user", "content": [{"type": "text", "text": "t"},
                       {"type": "image_url", "image_url": {"url": "data:,x"}}]}]})",
                            {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r->model, "m");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_EQ(r->sampling.max_tokens, 7);
  EXPECT_EQ(r->sampling.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->sampling.seed, 42u);
  EXPECT_TRUE(r->seed_given);
  EXPECT_FLOAT_EQ(r->sampling.logit_bias.at(17), -5.0f);
  EXPECT_FLOAT_EQ(r->sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(r->priority, 3);
  EXPECT_DOUBLE_EQ(*r->timeout_s, 2.5);
  ASSERT_EQ(r->messages.size(), 2u);
  ASSERT_EQ(r->messages[1].parts.size(), 2u);
  EXPECT_EQ(r->messages[1].parts[1].kind, ParsedPart::Kind::kMedia);
  ASSERT_EQ(r->media.size(), 1u);
  EXPECT_EQ(r->media[0].url, "data:,x");
}

TEST(ChatRequestTest, WrongTypesNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"messages": [{"role":"user","content":"x"}], "temperature": "1"})", "temperature"},
      {R"({"messages": [{"role":"user","content":"x"}], "top_k": 1.5})", "top_k"},
      {R"({"messages": [{"role":"user","content":"x"}], "stream": 1})", "stream"},
      {R"({"messages": [{"role":"user","content":"x"}], "stop": [1]})", "stop"},
      {R"({"messages": [{"role":"user","content":"x"}], "logit_bias": {"a": 1}})", "logit_bias"},
      {R"({"messages": [{"role":"user","content":"x"}], "logit_bias": {" 5": 1}})", "logit_bias"},
      {R"({"messages": [{"role":"user","content":"x"}], "logit_bias": {"+5": 1}})", "logit_bias"},
      {R"({"messages": [{"role":"user","content":"x"}], "logit_bias": {"5 ": 1}})", "logit_bias"},
      {R"({"messages": [{"role":"user","content":"x"}], "logit_bias": {"99999999999": 1}})",
       "logit_bias"},
      {R"({"messages": [{"role":"user","content":"x"}], "max_tokens": 0})", "max_tokens"},
      {R"({"messages": {"role":"user"}})", "messages"},
      {R"({"messages": [{"role":"robot","content":"x"}]})", "messages[0].role"},
      {R"({"messages": [{"role":"user","content":[{"type":"audio"}]}]})",
       "messages[0].content[0].type"},
      {R"([1, 2])", "JSON object"},
  };
  for (const auto& [body, field] : cases) {
    auto r = ParseChatRequest(body, {});
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(HttpErrorFromStatus(r.status()).http_status, 400) << body;
    EXPECT_NE(r.status().message().find(field), std::string::npos)
        << body << " -> " << r.status().message();
  }
}

TEST(HttpErrorTest, StatusMapping) {
  EXPECT_EQ(HttpErrorFromStatus(NotFoundError("x")).http_status, 404);
  const HttpError busy = HttpErrorFromStatus(ResourceExhaustedError("full"));
  EXPECT_EQ(busy.http_status, 503);
  EXPECT_TRUE(busy.retry_after);
  EXPECT_EQ(HttpErrorFromStatus(UnavailableError("x")).http_status, 503);
  EXPECT_EQ(HttpErrorFromStatus(DeadlineExceededError("x")).http_status, 504);
  EXPECT_EQ(HttpErrorFromStatus(InternalError("x")).http_status, 500);
  EXPECT_EQ(ErrorJson({400, "invalid_request_error", "bad \"x\""}),
            R"({"error":{"message":"bad \"x\"","type":"invalid_request_error","code":400}})");
}

}  // namespace
}  // namespace vlserve::server
