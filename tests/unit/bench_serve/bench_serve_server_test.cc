// bench-serve against the real server, in process, on a loopback port, with the built-in
// tiny random model (text is noise; we check counts, ordering and that numbers are sane).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench_serve/report.h"
#include "bench_serve/runner.h"
#include "server/server.h"

namespace vlserve::bench_serve {
namespace {

namespace json = boost::json;

class BenchServeServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server::ServerConfig config;
    config.http.port = 0;
    config.api_key = "bench-key";
    auto s = server::Server::Start(std::move(config));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->WaitReady(std::chrono::seconds(60))) << (*s)->load_status().ToString();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  BenchConfig Config(DatasetKind kind, int requests) const {
    BenchConfig c;
    c.url = "http://127.0.0.1:" + std::to_string(server_->port());
    c.api_key = "bench-key";
    c.dataset.kind = kind;
    c.dataset.seed = 1;
    c.dataset.max_tokens = 6;
    c.requests = requests;
    c.progress = false;
    c.timeout_s = 60;
    // Forbids the test vocabulary's 43 special tokens (end-of-generation and tokens that
    // render as nothing), as server_test does, so every answer has visible text.
    std::string bias;
    for (int id = 0; id < 43; ++id) bias += (id ? ",\"" : "\"") + std::to_string(id) + "\":-100";
    c.dataset.extra_body = R"({"logit_bias": {)" + bias + "}}";
    return c;
  }

  static server::Server* server_;
};
server::Server* BenchServeServerTest::server_ = nullptr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void ExpectSane(const RequestRecord& r) {
  EXPECT_TRUE(r.ok) << r.index << ": " << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(r.ttft_ms, 0);
  EXPECT_LE(r.ttft_ms, r.e2e_ms);
  EXPECT_GE(r.output_tokens, 1);
  EXPECT_LE(r.output_tokens, 6);
  EXPECT_GT(r.prompt_tokens, 0);
  EXPECT_GE(r.cached_tokens, 0);
  EXPECT_LT(r.cached_tokens, r.prompt_tokens);
  EXPECT_EQ(r.itl_ms.size() + 1, static_cast<size_t>(r.content_chunks));
  for (double g : r.itl_ms) EXPECT_GE(g, 0);
  EXPECT_TRUE(r.timings.count("prefill")) << r.index;
  EXPECT_FALSE(r.answer.empty());
}

TEST_F(BenchServeServerTest, ClosedLoopTextWritesReports) {
  BenchConfig config = Config(DatasetKind::kText, 6);
  config.concurrency = 2;
  config.slo.ttft_ms = 1e6;
  config.command_line = "vlserve bench-serve --dataset text";
  auto result = RunBench(config);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->records.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(result->records[i].index, i);
    ExpectSane(result->records[i]);
  }
  const Report rep = Aggregate(*result);
  EXPECT_EQ(rep.completed, 6);
  EXPECT_EQ(rep.failed, 0);
  EXPECT_EQ(rep.slo_met, 6);
  EXPECT_GT(rep.request_throughput, 0);
  EXPECT_GT(rep.output_throughput, 0);
  EXPECT_LE(rep.ttft.p50, rep.e2e.p99);

  const std::string dir = ::testing::TempDir() + "bench_serve_test";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/run.json";
  ASSERT_TRUE(WriteReports(path, *result, rep).ok());
  boost::system::error_code ec;
  json::value v = json::parse(ReadFile(path), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(v.at("completed"), 6);
  EXPECT_EQ(v.at("records").as_array().size(), 6u);
  EXPECT_EQ(v.at("command"), "vlserve bench-serve --dataset text");
  EXPECT_GT(v.at("ttft_ms").at("p50").as_double(), 0);
  const std::string svg = ReadFile(dir + "/run.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find(">prefill "), std::string::npos);  // a legend entry of the stage bar
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST_F(BenchServeServerTest, PoissonArrivalsKeepTheSchedule) {
  BenchConfig config = Config(DatasetKind::kText, 5);
  config.rate = 40;
  auto result = RunBench(config);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const std::vector<double> plan = PoissonSchedule(5, 40, 1);
  for (int i = 0; i < 5; ++i) {
    const RequestRecord& r = result->records[i];
    ExpectSane(r);
    EXPECT_EQ(r.scheduled_s, plan[i]);
    EXPECT_GE(r.start_s + 1e-3, r.scheduled_s);  // never early
  }
}

TEST_F(BenchServeServerTest, ErrorsAreCountedNotFatal) {
  BenchConfig config = Config(DatasetKind::kText, 3);
  config.api_key = "wrong";
  auto result = RunBench(config);
  ASSERT_TRUE(result.ok());
  const Report rep = Aggregate(*result);
  EXPECT_EQ(rep.failed, 3);
  EXPECT_EQ(rep.errors.at("401"), 3);

  // A port nobody listens on (bound and closed at once): connection refused.
  BenchConfig refused = Config(DatasetKind::kText, 2);
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    refused.url = "http://127.0.0.1:" + std::to_string(a.local_endpoint().port());
  }
  auto r2 = RunBench(refused);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(Aggregate(*r2).errors.at("transport"), 2);
}

// Multi-turn: turn t+1 carries turn t's answer, so the prefix cache must hit on it.
// Images may still be refused (400) by a server without a vision encoder; then the
// later turns are skipped and counted so.
TEST_F(BenchServeServerTest, MultiTurnUsesHistoryOrCountsRefusals) {
  BenchConfig config = Config(DatasetKind::kMultiTurn, 3);
  auto result = RunBench(config);
  ASSERT_TRUE(result.ok());
  const std::vector<RequestRecord>& r = result->records;
  ASSERT_EQ(r.size(), 3u);
  if (!r[0].ok) {
    EXPECT_GE(r[0].status, 400) << r[0].error;
    EXPECT_EQ(ErrorCategory(r[1]), "skipped");
    EXPECT_EQ(ErrorCategory(r[2]), "skipped");
    GTEST_SKIP() << "server refused the image: " << r[0].error;
  }
  for (const RequestRecord& rec : r) ExpectSane(rec);
  EXPECT_GT(r[1].prompt_tokens, r[0].prompt_tokens);
  EXPECT_GT(r[2].cached_tokens, 0);
}

}  // namespace
}  // namespace vlserve::bench_serve
