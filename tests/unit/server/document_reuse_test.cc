// What Glyph-style clients rely on when they send a document again, over HTTP on a tiny
// GLM-4.1V pair (Glyph's family; answers are noise, greedy decoding keeps them fixed):
//  - a document re-sent with one more page encodes only that page (the encoder cache is
//    keyed by each page's pixels);
//  - a second question about the same document re-uses the first request's KV for the
//    pages (the prefix cache), and encodes nothing.
// Each claim is checked once with the cache that makes it true and once without it, so the
// assertions are seen to depend on that cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "http_client.h"
#include "models/test_model.h"
#include "render/renderer.h"
#include "server/server.h"
#include "server/vision_input.h"
#include "server_test_util.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;

constexpr char kDejaVu[] = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

// Small pages keep the tower cheap: 144 x 142 pt at 72 dpi = 144 x 142 px, 10 pt margins and
// 10 pt lines leave 122 pt, i.e. 12 lines a page, with the default auto-crop on. Whole lines
// do not fill the page exactly (as A4 at the defaults: 82 lines = 840 of 842 px), so this
// also checks that the page ending the first document, full but last, keeps its height:
// were it cropped to 140 px it would differ from the same page once text follows, and two
// pages would be encoded, not one. (The width crop is off only to keep the page size, and
// so the token count below, independent of the text's widths.)
constexpr char kRender[] =
    R"({"page_width":144,"page_height":142,"margin":10,"font_size":8,"line_height":10,)"
    R"("auto_crop_width":false})";
constexpr int kLinesPerPage = 12;
// GLM-4.1V's smart_resize (factor 28) of 144 x 142 px: round(142 / 28) * 28 = 140,
// round(144 / 28) * 28 = 140;
// (140 / 28)^2 merged tokens.
constexpr int64_t kPageTokens = 25;
constexpr int kPages = 3;

// Lines [from, to), each its own paragraph ("\n"). The first document ends exactly on a
// page end, and its last line ends a paragraph: the paginator moves a page break back to a
// paragraph or sentence end only when more text follows and the page's last line does not
// end a paragraph, so appending text leaves the old pages' lines where they were.
std::string Lines(int from, int to) {
  std::string text;
  for (int i = from; i < to; ++i) text += "Line " + std::to_string(i) + " of the report.\n";
  return text;
}

json::object DocumentPart(const std::string& text) {
  return json::object{{"type", "document"}, {"text", text}, {"render", json::parse(kRender)}};
}

struct Answer {
  std::string text;
  json::object usage, timings;
};

// Posts a chat request (greedy, 4 tokens) and returns its answer; a non-200 fails the test.
Answer Ask(int port, json::array messages) {
  json::object body;
  body["messages"] = std::move(messages);
  body["max_tokens"] = 4;
  body["temperature"] = 0;
  testing::Client client(port);
  const testing::Response r = client.Post("/v1/chat/completions", json::serialize(body));
  EXPECT_EQ(r.status, 200) << r.body;
  Answer a;
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  if (r.status != 200 || ec || !v.is_object()) return a;
  a.text = std::string(v.at("choices").at(0).at("message").at("content").as_string());
  a.usage = v.at("usage").as_object();
  a.timings = v.at("timings").as_object();
  return a;
}

int64_t Int(const json::object& o, const char* key) {
  return o.contains(key) ? o.at(key).as_int64() : -1;
}

// The pages of `text` as the server's renderer draws them with kRender: size and pixels.
struct Page {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};
std::vector<Page> RenderPages(const std::string& text) {
  auto options = ParseRenderOptions(kRender, render::RenderOptions{});
  EXPECT_TRUE(options.ok()) << options.status().ToString();
  if (!options.ok()) return {};
  options->font_path = kDejaVu;
  auto renderer = render::Renderer::Create(*options);
  EXPECT_TRUE(renderer.ok()) << renderer.status().ToString();
  if (!renderer.ok()) return {};
  std::vector<Page> pages;
  const Status s = (*renderer)->RenderAll(
      text, render::PixelFormat::kRgb8, nullptr,
      [&](const render::PageLayout&, const render::ImageView& view) -> Status {
        Page p{view.width, view.height, {}};
        for (int y = 0; y < view.height; ++y) {
          const uint8_t* row = view.data + y * view.stride;
          p.rgb.insert(p.rgb.end(), row, row + 3 * view.width);
        }
        pages.push_back(std::move(p));
        return OkStatus();
      });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return pages;
}

class DocumentReuseTest : public ::testing::Test {
 protected:
  // One tiny GLM-4.1V pair (make-test-model --arch glm4 --vision glm4v) for all tests.
  static void SetUpTestSuite() {
    dir_ = new std::string((std::filesystem::temp_directory_path() /
                            ("vlserve_document_reuse_" + std::to_string(getpid())))
                               .string());
    models::TestModelOptions text;
    text.arch = "glm4";
    text.rope_sections = models::TestRopeSections(text);
    models::VisionTestOptions vision = models::TinyVisionTestOptions("glm4v");
    vision.text_hidden = text.hidden;
    ASSERT_TRUE(models::WriteTestModel(text, *dir_).ok());
    ASSERT_TRUE(models::WriteTestMmproj(vision, *dir_).ok());
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    std::filesystem::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!std::filesystem::exists(kDejaVu)) GTEST_SKIP() << "DejaVu Sans is not installed";
  }

  // encoder_cache_mb 0 = encoder cache off; prefix_cache false = --no-prefix-cache.
  static std::unique_ptr<Server> Start(double encoder_cache_mb, bool prefix_cache) {
    ServerConfig config;
    config.model_path = *dir_ + "/text.gguf";
    config.mmproj_path = *dir_ + "/mmproj.gguf";
    config.font_path = kDejaVu;
    config.warmup = false;
    config.encoder_cache_mb = encoder_cache_mb;
    config.engine.enable_prefix_cache = prefix_cache;
    return testing::StartTestServer(config);
  }

  static inline std::string* dir_ = nullptr;
};

// The two documents of the first claim: kPages full pages, then the same text plus 3 lines
// (one more page). Checks, independently of the server, that the first kPages pages are
// pixel for pixel the same in both, so only the new page can need the tower.
void TwoDocuments(std::string* before, std::string* after) {
  *before = Lines(0, kPages * kLinesPerPage);
  *after = *before + Lines(kPages * kLinesPerPage, kPages * kLinesPerPage + 3);
  const std::vector<Page> old_pages = RenderPages(*before), new_pages = RenderPages(*after);
  ASSERT_EQ(old_pages.size(), static_cast<size_t>(kPages));
  ASSERT_EQ(new_pages.size(), static_cast<size_t>(kPages + 1));
  for (int i = 0; i < kPages; ++i) {
    EXPECT_EQ(old_pages[i].width, 144);
    EXPECT_EQ(old_pages[i].height, 142);
    EXPECT_TRUE(old_pages[i].rgb == new_pages[i].rgb) << "page " << i << " changed";
  }
}

json::array UserDocument(const std::string& text, const std::string& question) {
  return json::array{json::object{
      {"role", "user"},
      {"content",
       json::array{DocumentPart(text), json::object{{"type", "text"}, {"text", question}}}}}};
}

TEST_F(DocumentReuseTest, ResentDocumentWithOneMorePageEncodesOnePage) {
  std::string before, after;
  ASSERT_NO_FATAL_FAILURE(TwoDocuments(&before, &after));
  auto server = Start(256, true);
  ASSERT_NE(server, nullptr);
  const Answer first = Ask(server->port(), UserDocument(before, "Summarise it."));
  EXPECT_EQ(Int(first.timings, "images"), kPages);
  EXPECT_EQ(Int(first.timings, "images_cached"), 0);
  EXPECT_EQ(Int(first.timings, "document_image_tokens"), kPages * kPageTokens);

  const Answer second = Ask(server->port(), UserDocument(after, "Summarise it."));
  EXPECT_EQ(Int(second.timings, "images"), kPages + 1);
  EXPECT_EQ(Int(second.timings, "images_cached"), kPages);  // only the new page is encoded
  // The new last page holds 3 lines and is cropped to 10 + 30 + 10 = 50 px: smart_resize
  // gives round(50 / 28) * 28 = 56 by 140 px, 2 x 5 = 10 tokens.
  EXPECT_EQ(Int(second.timings, "document_image_tokens"), kPages * kPageTokens + 10);
}

TEST_F(DocumentReuseTest, WithoutTheEncoderCacheEveryPageIsEncodedAgain) {
  std::string before, after;
  ASSERT_NO_FATAL_FAILURE(TwoDocuments(&before, &after));
  auto server = Start(/*encoder_cache_mb=*/0, true);
  ASSERT_NE(server, nullptr);
  Ask(server->port(), UserDocument(before, "Summarise it."));
  const Answer second = Ask(server->port(), UserDocument(after, "Summarise it."));
  EXPECT_EQ(Int(second.timings, "images"), kPages + 1);
  EXPECT_EQ(Int(second.timings, "images_cached"), 0);
}

// Request 1: [user: document + question 1]; request 2: [user: document + question 1,
// assistant: answer 1, user: question 2]. GLM's template puts nothing between a turn and the
// next role token, so prompt 2 starts with all of prompt 1 (which ends "<|assistant|>\n").
// Returns request 2's answer; `first` gets request 1's.
Answer SecondQuestion(int port, Answer* first) {
  const std::string doc = Lines(0, kPages * kLinesPerPage);
  // A question long enough that the prompt after the last page spans a full 16-token block.
  const std::string question1 =
      "Which line numbers appear on the second page of this report, and what do the lines say?";
  *first = Ask(port, UserDocument(doc, question1));
  json::array messages = UserDocument(doc, question1);
  messages.push_back(json::object{{"role", "assistant"}, {"content", first->text}});
  messages.push_back(json::object{{"role", "user"}, {"content", "And on the third page?"}});
  return Ask(port, std::move(messages));
}

TEST_F(DocumentReuseTest, SecondQuestionReusesThePagesPrefix) {
  auto server = Start(256, true);
  ASSERT_NE(server, nullptr);
  Answer first;
  const Answer second = SecondQuestion(server->port(), &first);
  // The pages' tokens, from their sizes (kPageTokens) and as the server counted them.
  const int64_t page_tokens = kPages * kPageTokens;
  ASSERT_EQ(Int(first.timings, "document_image_tokens"), page_tokens);
  EXPECT_EQ(Int(second.timings, "images"), kPages);
  EXPECT_EQ(Int(second.timings, "images_cached"), kPages);  // nothing to encode
  EXPECT_EQ(second.timings.at("encode_cached").as_bool(), true);
  const int64_t prompt1 = Int(first.usage, "prompt_tokens");
  const int64_t cached = Int(second.usage.at("prompt_tokens_details").as_object(), "cached_tokens");
  EXPECT_EQ(Int(first.usage.at("prompt_tokens_details").as_object(), "cached_tokens"), 0);
  EXPECT_GT(prompt1, page_tokens + 16);  // the pages plus at least one block of text after them
  // The prefix cache shares whole 16-token blocks: request 2 re-uses every full block of
  // prompt 1 but perhaps the one holding its last token ("\n" after <|assistant|> may
  // tokenize differently before the answer), which still covers all the pages' tokens.
  EXPECT_GE(cached, (prompt1 - 1) / 16 * 16);
  EXPECT_GE(cached, page_tokens);
  EXPECT_LT(cached, Int(second.usage, "prompt_tokens"));
}

TEST_F(DocumentReuseTest, WithoutThePrefixCacheTheSecondQuestionRecomputesThePages) {
  auto server = Start(256, /*prefix_cache=*/false);
  ASSERT_NE(server, nullptr);
  Answer first;
  const Answer second = SecondQuestion(server->port(), &first);
  EXPECT_EQ(Int(second.timings, "images_cached"), kPages);  // the encoder cache still serves
  EXPECT_EQ(Int(second.usage.at("prompt_tokens_details").as_object(), "cached_tokens"), 0);
}

}  // namespace
}  // namespace vlserve::server
