// The access log (one line per request, text or JSON), request ids and W3C trace context
// (issue 18 §4). Expected values are written from the W3C Trace Context spec and by hand.
#include "server/access_log.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "server/metrics.h"
#include "server_test_util.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// The spec's own example.
constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceParent, AcceptsTheSpecExample) {
  auto t = ParseTraceParent(kParent);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->version, "00");
  EXPECT_EQ(t->trace_id, kTraceId);
  EXPECT_EQ(t->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(t->flags, "01");
}

TEST(TraceParent, RejectsMalformed) {
  for (const char* bad : {
           "", "garbage",
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // uppercase
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 has 4 fields
           "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",     // short trace id
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",    // separators
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",    // flags not hex
           "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   // later version, no '-'
       }) {
    EXPECT_FALSE(ParseTraceParent(bad).has_value()) << bad;
  }
  // A later version may carry more fields after a '-'.
  EXPECT_TRUE(ParseTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
}

TEST(RequestId, SaneIdsOnly) {
  EXPECT_EQ(SaneRequestId("7f3c9a2e-1b4d-4c1e-9a55-0c2d1e3f4a5b"),
            "7f3c9a2e-1b4d-4c1e-9a55-0c2d1e3f4a5b");
  EXPECT_EQ(SaneRequestId(std::string(128, 'a')), std::string(128, 'a'));
  EXPECT_EQ(SaneRequestId(std::string(129, 'a')), "");
  EXPECT_EQ(SaneRequestId(""), "");
  EXPECT_EQ(SaneRequestId("two words"), "");
  EXPECT_EQ(SaneRequestId("line\nbreak"), "");
  EXPECT_EQ(SaneRequestId("caf\xc3\xa9"), "");
}

// A request whose client left before any status was sent is counted in /metrics under 499,
// as the access log writes it, not under a status "0".
TEST(Metrics, ClientGoneCountsAs499) {
  Metrics m;
  m.CountRequest(0);
  m.CountRequest(200);
  const std::string text = m.Render(nullptr);
  EXPECT_NE(text.find("vlserve_requests_total{status=\"499\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("vlserve_requests_total{status=\"200\"} 1"), std::string::npos);
  EXPECT_EQ(text.find("status=\"0\""), std::string::npos);
}

TEST(Log, TimeIsIso8601UtcWithMilliseconds) {
  // 1733500000.123 s after the epoch, converted by hand (and by Python's datetime).
  const std::chrono::system_clock::time_point t{std::chrono::milliseconds(1733500000123)};
  EXPECT_EQ(FormatLogTime(t), "2024-12-06T15:46:40.123Z");
  EXPECT_EQ(FormatLogTime(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
}

TEST(Log, JsonQuoteAlwaysValidJson) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), R"("a\"b\\c\n\u0001")");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(JsonQuote("bad\xff\xc3"), R"("bad\ufffd\ufffd")");
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a UTF-16 surrogate
}

// Captures every log line while alive.
class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() {
    SetLogSink(nullptr);
    SetLogFormat(LogFormat::kText);
  }
  // The first line containing `needle`, waiting up to 5 s (the line is written after the
  // response, so it may come a moment after the client read it).
  std::string Find(const std::string& needle) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const std::string& l : lines_) {
          if (l.find(needle) != std::string::npos) return l;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return "";
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST(Log, EveryLineStartsWithTimeAndLevel) {
  LogCapture capture;
  LOG_INFO("hello {}", 42);
  SetLogFormat(LogFormat::kJson);
  LOG_WARN("quote \" and \xff");
  const std::vector<std::string> lines = capture.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(std::regex_match(lines[0],
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z I hello 42)")))
      << lines[0];
  json::value v = json::parse(lines[1]);
  EXPECT_EQ(v.at("level").as_string(), "warn");
  EXPECT_EQ(v.at("msg").as_string(), "quote \" and \xef\xbf\xbd");
  EXPECT_TRUE(std::regex_match(std::string(v.at("time").as_string()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
}

struct RawResponse {
  int status = 0;
  std::string body, request_id, traceparent;
  int local_port = 0;
};

// One request with the given extra header fields, on its own connection.
RawResponse Send(int port, http::verb method, const std::string& target, const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& fields) {
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [name, value] : fields) req.set(name, value);
  req.body() = body;
  req.prepare_payload();
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  RawResponse r;
  r.status = res.result_int();
  r.body = res.body();
  r.request_id = std::string(res["X-Request-Id"]);
  r.traceparent = std::string(res["traceparent"]);
  r.local_port = socket.local_endpoint().port();
  return r;
}

constexpr char kChat[] =
    R"({"messages":[{"role":"user","content":"Hi there"}],"max_tokens":3,"temperature":0})";

class AccessLogServer : public ::testing::Test {
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
  static Server* server_;
};
Server* AccessLogServer::server_ = nullptr;

TEST_F(AccessLogServer, ChatLineHasEveryFieldAndEchoesIds) {
  ASSERT_NE(server_, nullptr);
  LogCapture capture;
  const RawResponse r = Send(server_->port(), http::verb::post, "/v1/chat/completions?x=1", kChat,
                             {{"X-Request-Id", "proxy-req-0001"}, {"traceparent", kParent}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.request_id, "proxy-req-0001");
  // Same trace, a new span of ours, the sampled flag kept.
  auto ours = ParseTraceParent(r.traceparent);
  ASSERT_TRUE(ours.has_value()) << r.traceparent;
  EXPECT_EQ(ours->trace_id, kTraceId);
  EXPECT_NE(ours->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(ours->flags, "01");

  const json::value body = json::parse(r.body);
  const json::object& usage = body.at("usage").as_object();
  const std::string line = capture.Find("request_id=proxy-req-0001");
  ASSERT_FALSE(line.empty());
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      line, m,
      std::regex(R"((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) I request request_id=(\S+) )"
                 R"(method=POST route=/v1/chat/completions status=200 prompt_tokens=(\d+) )"
                 R"(completion_tokens=(\d+) cached_tokens=(\d+) ttft_ms=([\d.]+) )"
                 R"(total_ms=([\d.]+) client=127\.0\.0\.1:(\d+) trace_id=([0-9a-f]{32}))")))
      << line;
  EXPECT_EQ(std::stoll(m[3]), usage.at("prompt_tokens").as_int64());
  EXPECT_EQ(std::stoll(m[4]), usage.at("completion_tokens").as_int64());
  EXPECT_GE(std::stod(m[7]), std::stod(m[6]));  // total >= TTFT
  EXPECT_EQ(std::stoi(m[8]), r.local_port);
  EXPECT_EQ(m[9], kTraceId);
}

TEST_F(AccessLogServer, JsonLinesCarryTheSameFields) {
  ASSERT_NE(server_, nullptr);
  LogCapture capture;
  SetLogFormat(LogFormat::kJson);
  const RawResponse r =
      Send(server_->port(), http::verb::post, "/v1/chat/completions", kChat,
           {{"traceparent", "00-not-a-trace"}, {"X-Request-Id", std::string(200, 'x')}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value body = json::parse(r.body);
  // An insane X-Request-Id is not echoed: the request is named after its completion id.
  const std::string id(body.at("id").as_string());
  EXPECT_EQ(r.request_id, id);
  // A malformed traceparent starts a new trace.
  auto ours = ParseTraceParent(r.traceparent);
  ASSERT_TRUE(ours.has_value()) << r.traceparent;
  EXPECT_EQ(ours->flags, "00");

  const std::string line = capture.Find("\"request_id\":\"" + id + "\"");
  ASSERT_FALSE(line.empty());
  const json::object v = json::parse(line).as_object();
  EXPECT_EQ(v.at("level").as_string(), "info");
  EXPECT_EQ(v.at("msg").as_string(), "request");
  EXPECT_EQ(v.at("method").as_string(), "POST");
  EXPECT_EQ(v.at("route").as_string(), "/v1/chat/completions");
  EXPECT_EQ(v.at("status").as_int64(), 200);
  const json::object& usage = body.at("usage").as_object();
  EXPECT_EQ(v.at("prompt_tokens").as_int64(), usage.at("prompt_tokens").as_int64());
  EXPECT_EQ(v.at("completion_tokens").as_int64(), usage.at("completion_tokens").as_int64());
  EXPECT_TRUE(v.at("cached_tokens").is_int64());
  EXPECT_GE(v.at("total_ms").to_number<double>(), v.at("ttft_ms").to_number<double>());
  EXPECT_EQ(v.at("client").as_string(), "127.0.0.1:" + std::to_string(r.local_port));
  EXPECT_EQ(v.at("trace_id").as_string(), ours->trace_id);
}

TEST_F(AccessLogServer, FailedRequestsAreLogged) {
  ASSERT_NE(server_, nullptr);
  LogCapture capture;
  SetLogFormat(LogFormat::kJson);
  const int port = server_->port();
  EXPECT_EQ(Send(port, http::verb::post, "/v1/chat/completions", "{not json",
                 {{"X-Request-Id", "bad-json-1"}})
                .status,
            400);
  EXPECT_EQ(Send(port, http::verb::get, "/nope", "", {{"X-Request-Id", "not-found-1"}}).status,
            404);
  const json::object bad = json::parse(capture.Find("\"bad-json-1\"")).as_object();
  EXPECT_EQ(bad.at("status").as_int64(), 400);
  EXPECT_TRUE(bad.at("completion_tokens").is_null());
  EXPECT_TRUE(bad.at("ttft_ms").is_null());
  const json::object missing = json::parse(capture.Find("\"not-found-1\"")).as_object();
  EXPECT_EQ(missing.at("status").as_int64(), 404);
  EXPECT_EQ(missing.at("route").as_string(), "/nope");

  // Bytes that are not HTTP: answered 400 by the transport, and logged.
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
  asio::write(socket, asio::buffer(std::string("NOT HTTP\x01\r\n\r\n")));
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  boost::system::error_code ec;
  http::read(socket, buffer, res, ec);
  EXPECT_EQ(res.result_int(), 400);
  const std::string client = "127.0.0.1:" + std::to_string(socket.local_endpoint().port());
  const std::string line = capture.Find("\"client\":\"" + client + "\"");
  ASSERT_FALSE(line.empty());
  const json::object parse_error = json::parse(line).as_object();
  EXPECT_EQ(parse_error.at("status").as_int64(), 400);
  EXPECT_EQ(std::string(res["X-Request-Id"]), parse_error.at("request_id").as_string());
}

}  // namespace
}  // namespace vlserve::server
