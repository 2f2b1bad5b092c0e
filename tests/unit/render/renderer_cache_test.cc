// RendererCache: a request's render options reuse the default renderer or one made for
// equal options before; new options make (and keep) one, the least recently used goes.
#include <gtest/gtest.h>

#include <memory>

#include "render/renderer_cache.h"

namespace vlserve::render {
namespace {

std::shared_ptr<const Renderer> Make(const RenderOptions& o) {
  auto r = Renderer::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::shared_ptr<const Renderer>(std::move(*r)) : nullptr;
}

TEST(RendererCache, EqualOptionsShareOneRenderer) {
  auto base = Make(RenderOptions{});
  ASSERT_NE(base, nullptr);
  RendererCache cache(base, 2);
  // The default renderer for its own options (as a request's parsed options start from them).
  auto same = cache.Get(base->options());
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->get(), base.get());
  EXPECT_EQ(cache.size(), 0u);

  RenderOptions big = base->options();
  big.font_size_pt = 12;
  auto a = cache.Get(big);
  auto b = cache.Get(big);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->get(), base.get());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ((*a)->options().font_size_pt, 12);
  EXPECT_EQ(cache.size(), 1u);

  // Capacity 2: a third option set pushes out the least recently used (big was used last
  // before small, so after touching big, small goes).
  RenderOptions small = base->options();
  small.font_size_pt = 7;
  RenderOptions wide = base->options();
  wide.margin_left_pt = 30;
  auto s1 = cache.Get(small);
  ASSERT_TRUE(s1.ok());
  ASSERT_TRUE(cache.Get(big).ok());
  ASSERT_TRUE(cache.Get(wide).ok());
  EXPECT_EQ(cache.size(), 2u);
  auto again_big = cache.Get(big);
  ASSERT_TRUE(again_big.ok());
  EXPECT_EQ(again_big->get(), a->get());  // kept
  auto again_small = cache.Get(small);
  ASSERT_TRUE(again_small.ok());
  EXPECT_NE(again_small->get(), s1->get());  // made again
}

TEST(RendererCache, BadOptionsAreAnErrorAndNotKept) {
  RendererCache cache(Make(RenderOptions{}), 4);
  RenderOptions bad;
  bad.font_path = "/nonexistent/font.ttf";
  EXPECT_FALSE(cache.Get(bad).ok());
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace vlserve::render
