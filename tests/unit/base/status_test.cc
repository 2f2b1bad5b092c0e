#include "base/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace vlserve {
namespace {

StatusOr<int> ParsePositive(int x) {
  if (x <= 0) return InvalidArgumentError("expected a positive number, got " + std::to_string(x));
  return x;
}

Status Doubled(int x, int* out) {
  ASSIGN_OR_RETURN(int v, ParsePositive(x));
  *out = 2 * v;
  return OkStatus();
}

TEST(StatusTest, OkAndError) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = NotFoundError("no tensor 'blk.0.attn_q.weight'");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no tensor 'blk.0.attn_q.weight'");
  EXPECT_EQ(s.WithContext("text.gguf").message(), "text.gguf: no tensor 'blk.0.attn_q.weight'");
}

TEST(StatusTest, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(Doubled(21, &out).ok());
  EXPECT_EQ(out, 42);
  Status s = Doubled(-1, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "expected a positive number, got -1");
}

TEST(StatusTest, StatusOrHoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(7);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> v = std::move(p).value();
  EXPECT_EQ(*v, 7);
}

TEST(StatusDeathTest, ValueOfErrorAborts) {
  StatusOr<int> bad = DataLossError("truncated");
  EXPECT_DEATH((void)bad.value(), "truncated");
}

}  // namespace
}  // namespace vlserve
