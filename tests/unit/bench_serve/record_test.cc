#include "bench_serve/record.h"

#include <gtest/gtest.h>

#include "bench_serve/report.h"

namespace vlserve::bench_serve {
namespace {

std::string Delta(const std::string& text) {
  return R"({"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":")" + text +
         R"("},"finish_reason":null}]})";
}

HttpResult GoodStream() {
  HttpResult r;
  r.status = 200;
  r.x_cache = "miss";
  r.events = {{100, R"({"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},)"
                    R"("finish_reason":null}]})"},
              {130, Delta("!")},
              {190, Delta(" yo")},
              {200, R"({"choices":[{"index":0,"delta":{},"finish_reason":"length"}],)"
                    R"("timings":{"prefill":5.5,"decode":20,"encode_cached":true,"ttft":90}})"},
              {200, R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4,)"
                    R"("total_tokens":16,"prompt_tokens_details":{"cached_tokens":16}}})"},
              {210, "[DONE]"}};
  r.end_ms = 211;
  return r;
}

TEST(Record, LatenciesFromEventTimes) {
  RequestRecord rec;
  FillFromResponse(GoodStream(), &rec);
  EXPECT_TRUE(rec.ok) << rec.error;
  EXPECT_EQ(rec.answer, "Hi! yo");
  EXPECT_EQ(rec.ttft_ms, 100);
  EXPECT_EQ(rec.e2e_ms, 210);  // the [DONE] event
  EXPECT_EQ(rec.itl_ms, (std::vector<double>{30, 60}));
  EXPECT_EQ(rec.content_chunks, 3);
  EXPECT_EQ(rec.output_tokens, 4);  // usage wins over the chunk count
  EXPECT_NEAR(rec.tpot_ms, (210.0 - 100.0) / 3, 1e-12);
  EXPECT_EQ(rec.prompt_tokens, 12);
  EXPECT_EQ(rec.cached_tokens, 16);
  EXPECT_EQ(rec.encode_cached, 1);
  EXPECT_EQ(rec.finish_reason, "length");
  EXPECT_EQ(rec.timings.at("prefill"), 5.5);
  EXPECT_EQ(rec.timings.at("decode"), 20);
  EXPECT_EQ(rec.x_cache, "miss");
}

TEST(Record, Failures) {
  HttpResult no_done = GoodStream();
  no_done.events.pop_back();
  RequestRecord a;
  FillFromResponse(no_done, &a);
  EXPECT_FALSE(a.ok);
  EXPECT_EQ(ErrorCategory(a), "stream");

  HttpResult error_event = GoodStream();
  error_event.events.insert(error_event.events.begin() + 1,
                            {120, R"({"error":{"message":"boom","code":500}})"});
  RequestRecord b;
  FillFromResponse(error_event, &b);
  EXPECT_FALSE(b.ok);
  EXPECT_NE(b.error.find("boom"), std::string::npos);

  HttpResult overloaded;
  overloaded.status = 503;
  overloaded.body = R"({"error":{"message":"queue full"}})";
  RequestRecord c;
  FillFromResponse(overloaded, &c);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(ErrorCategory(c), "503");

  HttpResult refused;
  refused.transport_error = "connect: refused";
  RequestRecord d;
  FillFromResponse(refused, &d);
  EXPECT_EQ(ErrorCategory(d), "transport");
}

TEST(Record, InvalidUtf8EventIsAnErrorAndSanitized) {
  HttpResult bad = GoodStream();
  // E0 8E 8E: an overlong form, not UTF-8 (a server bug a real client would trip on).
  bad.events.insert(bad.events.begin() + 1, {120,
                                             "{\"choices\":[{\"delta\":{\"content\":"
                                             "\"\xe0\x8e\x8e\"}}]}"});
  RequestRecord r;
  FillFromResponse(bad, &r);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(ErrorCategory(r), "stream");
  EXPECT_EQ(SanitizeUtf8(r.error), r.error);  // already clean
  EXPECT_NE(r.error.find("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"), std::string::npos);
}

TEST(Record, SanitizeUtf8) {
  EXPECT_EQ(SanitizeUtf8("plain"), "plain");
  EXPECT_EQ(SanitizeUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");                // é € 😀 kept
  EXPECT_EQ(SanitizeUtf8("a\xc3"), "a\xEF\xBF\xBD");                // truncated
  EXPECT_EQ(SanitizeUtf8("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(SanitizeUtf8("\xed\xa0\x80"),                           // surrogate D800
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xf4\x90\x80\x80").size(), 12u);  // > U+10FFFF
}

TEST(Report, AggregatesHandMadeRecords) {
  BenchResult result;
  result.duration_s = 2;
  result.config.slo.ttft_ms = 150;
  for (int i = 0; i < 4; ++i) {
    RequestRecord r;
    r.index = i;
    r.ok = i < 3;
    r.status = r.ok ? 200 : 503;
    r.ttft_ms = 100.0 * (i + 1);  // 100, 200, 300
    r.e2e_ms = r.ttft_ms + 50;
    r.tpot_ms = 10;
    r.output_tokens = 6;
    r.prompt_tokens = 20;
    r.cached_tokens = i == 1 ? 16 : 0;
    r.x_cache = i == 2 ? "hit" : "miss";
    r.timings = {{"prefill", 4.0 * (i + 1)}, {"decode", 30}};
    result.records.push_back(r);
  }
  const Report rep = Aggregate(result);
  EXPECT_EQ(rep.completed, 3);
  EXPECT_EQ(rep.failed, 1);
  EXPECT_EQ(rep.errors.at("503"), 1);
  EXPECT_DOUBLE_EQ(rep.ttft.mean, 200);
  EXPECT_DOUBLE_EQ(rep.ttft.p50, 200);
  EXPECT_DOUBLE_EQ(rep.e2e.p90, 330);  // 150/250/350: rank 1.8 -> 250 + 0.8 * 100
  EXPECT_DOUBLE_EQ(rep.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(rep.output_throughput, 9);
  EXPECT_EQ(rep.slo_met, 1);  // only TTFT 100 <= 150
  EXPECT_DOUBLE_EQ(rep.goodput, 0.5);
  EXPECT_EQ(rep.prompt_tokens, 80);
  EXPECT_EQ(rep.cached_tokens, 16);
  EXPECT_EQ(rep.response_cache_hits, 1);
  EXPECT_EQ(rep.response_cache_known, 4);
  ASSERT_EQ(rep.stages.size(), 2u);
  EXPECT_EQ(rep.stages[0].name, "prefill");    // pipeline order
  EXPECT_DOUBLE_EQ(rep.stages[0].mean_ms, 8);  // (4 + 8 + 12) / 3
  EXPECT_EQ(rep.stages[1].name, "decode");
  EXPECT_EQ(SvgPathFor("out/x.json"), "out/x.svg");
  EXPECT_EQ(SvgPathFor("x.out"), "x.out.svg");
}

}  // namespace
}  // namespace vlserve::bench_serve
