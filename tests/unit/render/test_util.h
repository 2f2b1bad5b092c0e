// Helpers shared by the render tests.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "render/renderer.h"

namespace vlserve::render::testing {

constexpr char kDejaVu[] = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
constexpr char kWqy[] = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc";

inline bool HaveFonts() { return std::filesystem::exists(kDejaVu); }

#define SKIP_WITHOUT_FONTS()                                                          \
  if (!::vlserve::render::testing::HaveFonts())                                       \
  GTEST_SKIP() << "DejaVu Sans is not installed (apt-get install fonts-dejavu-core)"

inline std::unique_ptr<Renderer> MakeRenderer(RenderOptions options) {
  options.font_path = kDejaVu;
  if (!std::filesystem::exists(kWqy)) options.cjk_font_path = "";
  auto r = Renderer::Create(options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

inline std::vector<PageLayout> AllPages(const Renderer& renderer, std::string_view text) {
  std::vector<PageLayout> pages;
  auto doc = renderer.Open(text);
  PageLayout page;
  while (doc->Next(&page)) pages.push_back(page);
  return pages;
}

}  // namespace vlserve::render::testing
