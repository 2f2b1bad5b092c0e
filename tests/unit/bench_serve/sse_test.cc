#include "bench_serve/sse.h"

#include <gtest/gtest.h>

#include "bench_serve/http_client.h"

namespace vlserve::bench_serve {
namespace {

const std::string kStream =
    "data: {\"a\":1}\n\n"
    ": a comment\n"
    "event: message\n"
    "data: {\"b\":\n"
    "data: 2}\n\n"
    "data:[DONE]\n\n";
const std::vector<std::string> kEvents = {"{\"a\":1}", "{\"b\":\n2}", "[DONE]"};

TEST(SseParser, WholeStream) {
  SseParser p;
  std::vector<std::string> events;
  p.Feed(kStream, &events);
  EXPECT_EQ(events, kEvents);
  EXPECT_EQ(p.pending_bytes(), 0u);
}

// Every split point, including inside "data:" and between the two '\n' of a terminator.
TEST(SseParser, SplitAnywhere) {
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    SseParser p;
    std::vector<std::string> events;
    p.Feed(std::string_view(kStream).substr(0, cut), &events);
    const size_t before = events.size();
    p.Feed(std::string_view(kStream).substr(cut), &events);
    EXPECT_EQ(events, kEvents) << "cut at " << cut;
    EXPECT_LE(before, kEvents.size());
  }
}

TEST(SseParser, OneByteAtATimeWithCrLf) {
  const std::string crlf = "data: x\r\n\r\ndata: y\r\n\r\ndata: partial";
  SseParser p;
  std::vector<std::string> events;
  for (char c : crlf) p.Feed(std::string_view(&c, 1), &events);
  EXPECT_EQ(events, (std::vector<std::string>{"x", "y"}));
  EXPECT_GT(p.pending_bytes(), 0u);  // "data: partial" has no terminator yet
  p.Feed("\n\n", &events);
  EXPECT_EQ(events.back(), "partial");
}

TEST(ParseUrl, Forms) {
  auto e = ParseUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, "8080");
  EXPECT_EQ(e->target, "/v1/chat/completions");
  e = ParseUrl("http://example.org/api/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->port, "80");
  EXPECT_EQ(e->target, "/api/v1/chat/completions");
  e = ParseUrl("http://h:1/chat/completions");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->target, "/chat/completions");
  auto tls = ParseUrl("https://h:443");
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.status().message().find("https is not supported"), std::string::npos);
  EXPECT_FALSE(ParseUrl("h:80").ok());
  EXPECT_FALSE(ParseUrl("http://h:x").ok());
  EXPECT_FALSE(ParseUrl("http://:80").ok());
}

}  // namespace
}  // namespace vlserve::bench_serve
