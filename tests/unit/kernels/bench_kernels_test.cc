// Smoke test of the bench-kernels driver at tiny sizes: it runs, reports every
// requested type at every valid shape, and rejects bad options with a Status.
#include <gtest/gtest.h>

#include <string>

#include "kernels/bench_kernels.h"

namespace vlserve::kernels {
namespace {

BenchKernelsOptions Tiny() {
  BenchKernelsOptions o;
  o.threads = 1;
  o.stream_bytes = 1 << 20;
  o.matvec_bytes = 1 << 16;
  o.matmul_tokens = 2;
  o.seconds = 0;
  return o;
}

TEST(BenchKernelsTest, TableListsTypesAndSkipsInvalidShapes) {
  BenchKernelsOptions o = Tiny();
  o.types = {DType::kQ8_0, DType::kQ4_K};  // a 32-block and a 256-block type
  auto report = BenchKernels(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_NE(report->find("memory read"), std::string::npos);
  EXPECT_NE(report->find("q8_0   135M    576x576"), std::string::npos) << *report;
  EXPECT_NE(report->find("q4_k   1.7B   2048x8192"), std::string::npos) << *report;
  // Q4_K needs cols % 256 == 0: the 576-column shapes are skipped, 576x1536 is not.
  EXPECT_EQ(report->find("q4_k   135M    576x576"), std::string::npos) << *report;
  EXPECT_EQ(report->find("q4_k   135M   1536x576"), std::string::npos) << *report;
  EXPECT_NE(report->find("q4_k   135M    576x1536"), std::string::npos) << *report;
}

TEST(BenchKernelsTest, JsonAndErrors) {
  BenchKernelsOptions o = Tiny();
  o.types = {DType::kF16};
  o.json = true;
  auto report = BenchKernels(o);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->front(), '{');
  EXPECT_NE(report->find("\"type\": \"f16\""), std::string::npos);
  // Each row carries the read limit sampled between its own matvec passes.
  const size_t at = report->find("\"matvec_read_gbs\": ");
  ASSERT_NE(at, std::string::npos) << *report;
  EXPECT_GT(std::stod(report->substr(at + 19)), 0.0) << *report;
  // And a pure read of the same bytes in pieces of one matrix.
  const std::string key = "\"matvec_by_matrix_read_gbs\": ";
  const size_t by = report->find(key);
  ASSERT_NE(by, std::string::npos) << *report;
  EXPECT_GT(std::stod(report->substr(by + key.size())), 0.0) << *report;
  o.threads = 0;
  EXPECT_FALSE(BenchKernels(o).ok());
  o.threads = 1;
  o.types = {DType::kIQ2_XXS};
  EXPECT_FALSE(BenchKernels(o).ok());
}

}  // namespace
}  // namespace vlserve::kernels
