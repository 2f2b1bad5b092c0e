#include "bench_serve/stats.h"

#include <gtest/gtest.h>

#include "bench_serve/runner.h"

namespace vlserve::bench_serve {
namespace {

// Hand-computed with rank = p/100 * (n-1), linear between neighbours (numpy "linear").
TEST(Stats, PercentilesOfOneToTen) {
  const Summary s = Summarize({10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  EXPECT_EQ(s.count, 10u);
  EXPECT_DOUBLE_EQ(s.mean, 5.5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 10);
  EXPECT_DOUBLE_EQ(s.p50, 5.5);     // rank 4.5
  EXPECT_NEAR(s.p90, 9.1, 1e-12);   // rank 8.1
  EXPECT_NEAR(s.p99, 9.91, 1e-12);  // rank 8.91
}

TEST(Stats, PercentilesOfFiveUnevenSamples) {
  const Summary s = Summarize({40, 15, 50, 20, 35});
  EXPECT_DOUBLE_EQ(s.mean, 32);
  EXPECT_DOUBLE_EQ(s.p50, 35);      // rank 2
  EXPECT_NEAR(s.p90, 46, 1e-12);    // rank 3.6: 40 + 0.6 * 10
  EXPECT_NEAR(s.p99, 49.6, 1e-12);  // rank 3.96
  EXPECT_DOUBLE_EQ(Percentile({15, 20, 35, 40, 50}, 0), 15);
  EXPECT_DOUBLE_EQ(Percentile({15, 20, 35, 40, 50}, 100), 50);
  EXPECT_DOUBLE_EQ(Percentile({15, 20, 35, 40, 50}, 25), 20);
}

TEST(Stats, EmptyAndSingle) {
  const Summary empty = Summarize({});
  EXPECT_EQ(empty.count, 0u);
  EXPECT_EQ(empty.mean, 0);
  EXPECT_EQ(empty.p99, 0);
  const Summary one = Summarize({7.5});
  EXPECT_EQ(one.p50, 7.5);
  EXPECT_EQ(one.p99, 7.5);
  EXPECT_EQ(one.mean, 7.5);
}

TEST(Stats, CdfPoints) {
  auto all = CdfPoints({3, 1, 2, 4}, 10);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0], std::make_pair(1.0, 0.25));
  EXPECT_EQ(all[3], std::make_pair(4.0, 1.0));
  auto two = CdfPoints({3, 1, 2, 4}, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], std::make_pair(2.0, 0.5));
  EXPECT_EQ(two[1], std::make_pair(4.0, 1.0));
}

TEST(Slo, ParseAndMeet) {
  auto slo = ParseSlo("ttft:500,tpot:50");
  ASSERT_TRUE(slo.ok()) << slo.status().ToString();
  EXPECT_EQ(slo->ttft_ms, 500);
  EXPECT_EQ(slo->tpot_ms, 50);
  EXPECT_EQ(slo->e2e_ms, 0);
  EXPECT_FALSE(ParseSlo("ttft=5").ok());
  EXPECT_FALSE(ParseSlo("foo:5").ok());
  EXPECT_FALSE(ParseSlo("ttft:-1").ok());
  EXPECT_TRUE(ParseSlo("").ok() && ParseSlo("")->empty());

  RequestRecord r;
  r.ok = true;
  r.ttft_ms = 400;
  r.tpot_ms = 50;
  EXPECT_TRUE(MeetsSlo(*slo, r));
  r.tpot_ms = 50.5;
  EXPECT_FALSE(MeetsSlo(*slo, r));
  r.tpot_ms = -1;  // one token: no TPOT to violate
  EXPECT_TRUE(MeetsSlo(*slo, r));
  r.ttft_ms = 501;
  EXPECT_FALSE(MeetsSlo(*slo, r));
  r.ttft_ms = 1;
  r.ok = false;
  EXPECT_FALSE(MeetsSlo(*slo, r));
}

TEST(Schedule, PoissonIsSeededAndHasTheRate) {
  const std::vector<double> a = PoissonSchedule(20000, 4.0, 7);
  EXPECT_EQ(a, PoissonSchedule(20000, 4.0, 7));
  EXPECT_NE(a, PoissonSchedule(20000, 4.0, 8));
  EXPECT_EQ(a[0], 0);
  for (size_t i = 1; i < a.size(); ++i) ASSERT_GE(a[i], a[i - 1]);
  // Mean gap 1/rate = 0.25 s; the sample mean of 19999 exponential gaps has a relative
  // standard deviation of 0.7%, so 3% is > 4 sigma.
  EXPECT_NEAR(a.back() / (a.size() - 1), 0.25, 0.25 * 0.03);
  // Exponential: about exp(-1) = 36.8% of the gaps exceed the mean.
  int longer = 0;
  for (size_t i = 1; i < a.size(); ++i) longer += a[i] - a[i - 1] > 0.25;
  EXPECT_NEAR(longer / 19999.0, 0.3679, 0.02);
}

}  // namespace
}  // namespace vlserve::bench_serve
