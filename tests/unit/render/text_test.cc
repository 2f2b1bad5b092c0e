#include <gtest/gtest.h>

#include "render/text.h"
#include "render/vision_tokens.h"

namespace vlserve::render {
namespace {

TEST(DecodeUtf8, ValidMultiByte) {
  const DecodedText t = DecodeUtf8("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");  // a é 中 😀
  EXPECT_EQ(t.chars, (std::u32string{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(t.invalid_bytes, 0);
}

TEST(DecodeUtf8, InvalidBytesReplacedAndCounted) {
  // stray continuation, overlong '/', UTF-16 surrogate, > U+10FFFF, truncated tail
  const DecodedText t =
      DecodeUtf8(std::string_view("x\x80y\xC0\xAFz\xED\xA0\x80w\xF4\x90\x80\x80v\xE4\xB8", 17));
  const char32_t r = kReplacementChar;
  EXPECT_EQ(t.chars, (std::u32string{U'x', r, U'y', r, r, U'z', r, r, r, U'w', r, r, r, r,
                                     U'v', r, r}));
  EXPECT_EQ(t.invalid_bytes, 12);
}

TEST(CharClasses, CjkAndKinsoku) {
  EXPECT_TRUE(IsCjkBreakable(0x4E2D));
  EXPECT_TRUE(IsCjkBreakable(0x3002));
  EXPECT_FALSE(IsCjkBreakable(U'a'));
  EXPECT_TRUE(IsNoBreakBefore(0xFF0C));
  EXPECT_TRUE(IsClusterContinuation(0x0301));
  EXPECT_TRUE(IsClusterContinuation(0x200D));
  EXPECT_FALSE(IsClusterContinuation(U'e'));
}

TEST(VisionTokens, SmolVlmA4Page) {
  // 595x842: longest edge 842 -> 2048, width floor(595 * 2048 / 842) = 1447 -> 1536;
  // 3 x 4 tiles of 512 plus a global image, 64 tokens each.
  const VisionCost c = EstimateVisionTokens(595, 842, VisionConfig{});
  EXPECT_EQ(c.resized_width, 1536);
  EXPECT_EQ(c.resized_height, 2048);
  EXPECT_EQ(c.tiles_x, 3);
  EXPECT_EQ(c.tiles_y, 4);
  EXPECT_EQ(c.images, 13);
  EXPECT_EQ(c.tokens, 13 * 64);
}

TEST(VisionTokens, NoUpscaleSmallImageIsOneTile) {
  VisionConfig cfg;
  cfg.upscale = false;
  const VisionCost c = EstimateVisionTokens(300, 200, cfg);
  EXPECT_EQ(c.images, 1);
  EXPECT_EQ(c.tokens, 64);
  EXPECT_EQ(EstimateTextTokens(400, 10), 110);
}

}  // namespace
}  // namespace vlserve::render
