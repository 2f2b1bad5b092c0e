// docs/deploy/grafana-dashboard.json queries only metrics the server exports: every
// vlserve_* name in it must appear in a live /metrics page (sample or # TYPE family name),
// and every exact label matcher (stage="encode") must match a sample. Renaming or dropping
// a metric without updating the dashboard fails here.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "http_client.h"
#include "server_test_util.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;

void CollectStrings(const json::value& v, std::vector<std::string>* out) {
  if (v.is_string()) {
    out->emplace_back(v.as_string());
  } else if (v.is_array()) {
    for (const json::value& e : v.as_array()) CollectStrings(e, out);
  } else if (v.is_object()) {
    for (const auto& kv : v.as_object()) CollectStrings(kv.value(), out);
  }
}

TEST(GrafanaDashboard, QueriesOnlyExportedMetrics) {
  std::ifstream file(VLSERVE_SOURCE_DIR "/docs/deploy/grafana-dashboard.json");
  ASSERT_TRUE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  boost::system::error_code ec;
  const json::value dashboard = json::parse(text.str(), ec);
  ASSERT_FALSE(ec) << "the dashboard is not valid JSON: " << ec.message();
  ASSERT_TRUE(dashboard.as_object().contains("panels"));

  // Every optional family on: the response cache (off by default) and the built-in vision
  // tower's encoder cache.
  ServerConfig config;
  config.warmup = false;
  config.response_cache_mb = 1;
  auto server = testing::StartTestServer(config);
  ASSERT_NE(server, nullptr);
  testing::Client client(server->port());
  // A finished request, so the labelled request counter has a sample.
  client.Post("/v1/chat/completions",
              R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":2})");
  const testing::Response metrics = client.Get("/metrics");
  ASSERT_EQ(metrics.status, 200);

  std::set<std::string> exported;
  std::istringstream lines(metrics.body);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, std::regex(R"(^# TYPE (\S+) )")) ||
        std::regex_search(line, m, std::regex(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*))"))) {
      exported.insert(m[1]);
    }
  }
  ASSERT_GT(exported.size(), 20u) << metrics.body;

  std::vector<std::string> strings;
  CollectStrings(dashboard, &strings);
  const std::regex name_re(R"(vlserve_[a-z0-9_]+)");
  const std::regex matcher_re(R"(([a-z_]+)="([^"$]+)\")");
  int names = 0;
  for (const std::string& s : strings) {
    for (std::sregex_iterator it(s.begin(), s.end(), name_re), end; it != end; ++it) {
      ++names;
      EXPECT_TRUE(exported.count(it->str()) != 0)
          << "the dashboard queries " << it->str() << ", which /metrics does not export";
    }
    if (s.find("vlserve_") == std::string::npos) continue;  // only queries have matchers
    for (std::sregex_iterator it(s.begin(), s.end(), matcher_re), end; it != end; ++it) {
      const std::string label = (*it)[1].str() + "=\"" + (*it)[2].str() + "\"";
      EXPECT_NE(metrics.body.find(label), std::string::npos)
          << "the dashboard selects " << label << ", which no /metrics sample carries";
    }
  }
  EXPECT_GT(names, 30);  // the dashboard's queries were found at all
}

}  // namespace
}  // namespace vlserve::server
