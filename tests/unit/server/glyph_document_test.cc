// Glyph's pipeline through PrepareChat (no HTTP, no engine): a document part becomes one
// image per page, in page order, before the question, each planned and preprocessed like
// a PNG of the page's size; the timings count the document as text and as pages. Plus the
// "preset" field of a document's render options.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <string>

#include "http_client.h"
#include "models/chat_template.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "models/vision_model.h"
#include "render/presets.h"
#include "render/renderer.h"
#include "server/chat_request.h"
#include "server/chat_service.h"
#include "server/server.h"
#include "server/vision_input.h"
#include "server_test_util.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::server {
namespace {

constexpr char kDejaVu[] = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

// The built-in tiny model and tower (server.cc's defaults), rendering with Glyph's preset.
std::unique_ptr<ModelContext> TinyContext() {
  auto ctx = std::make_unique<ModelContext>();
  auto text_bytes = models::BuildTestModel(models::TestModelOptions{});
  EXPECT_TRUE(text_bytes.ok());
  auto model = models::LoadTextModel(
      std::move(gguf::File::FromBytes(text_bytes->WriteToString(), "test-model")).value());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  auto tok_config = tokenizer::TokenizerConfigFromGguf((*model)->file());
  EXPECT_TRUE(tok_config.ok());
  bool recognised = false;
  ctx->chat_template = &models::DetectChatTemplate(tok_config->chat_template, &recognised);
  ctx->tokenizer = std::move(tokenizer::Tokenizer::Create(std::move(*tok_config))).value();
  models::VisionTestOptions vo;
  vo.text_hidden = (*model)->config().hidden;
  auto vision_bytes = models::BuildTestMmproj(vo);
  EXPECT_TRUE(vision_bytes.ok());
  auto vision = models::VisionModel::Load(
      std::move(gguf::File::FromBytes(vision_bytes->WriteToString(), "test-mmproj")).value());
  EXPECT_TRUE(vision.ok()) << vision.status().ToString();
  ctx->vision.preprocess_id = PreprocessId(**vision);
  ctx->vision.mmproj_id = "test-mmproj";
  ctx->vision.model = std::move(*vision);
  render::RenderOptions ro = render::GlyphPreset();
  ro.font_path = kDejaVu;
  ctx->vision.renderer = std::move(render::Renderer::Create(ro)).value();
  ctx->id = "tiny";
  ctx->model = std::move(*model);
  return ctx;
}

// 120 lines: 82 fill page 1 (842 px tall), 38 go to page 2 (cropped to 400 px).
std::string TwoPageText() {
  std::string text;
  for (int i = 0; i < 120; ++i) text += "Line " + std::to_string(i) + " of the report.\n";
  return text;
}

TEST(GlyphDocument, PagesComeInOrderBeforeTheQuestion) {
  if (!std::filesystem::exists(kDejaVu)) GTEST_SKIP() << "DejaVu Sans is not installed";
  auto ctx = TinyContext();
  const std::string doc = TwoPageText();
  auto chat =
      ParseChatRequest(R"({"messages":[{"role":"user","content":[{"type":"document","text":)" +
                           boost::json::serialize(boost::json::value(doc)) +
                           R"(},{"type":"text","text":"QUESTION: who wrote it?"}]}]})",
                       ChatParseLimits{});
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  engine::Request request;
  ASSERT_TRUE(PrepareChat(*chat, *ctx, MediaConfig{}, ChatDefaults{}, &request).ok());

  // The pages as the renderer gives them, and each one's plan as a PNG of that size.
  std::vector<models::ImageLayout> expected;
  std::vector<std::pair<int, int>> sizes;
  auto document = ctx->vision.renderer->Open(doc);
  render::PageLayout page;
  while (document->Next(&page)) {
    sizes.emplace_back(page.width_px, page.height_px);
    expected.push_back(ctx->vision.model->Plan(page.width_px, page.height_px).value());
  }
  ASSERT_EQ(sizes.size(), 2u);
  ASSERT_NE(expected[0], expected[1]);  // so the order below is visible in the layouts
  EXPECT_EQ(sizes[0].second, 842);      // full A4 page at 72 dpi
  EXPECT_EQ(sizes[1].second, 10 + 38 * 10 + 10);

  // One image (one encode job, its own cache key) per page, in page order: the spans of
  // page 1 all come before those of page 2.
  ASSERT_FALSE(request.images.empty());
  std::vector<std::shared_ptr<engine::EncodeJob>> jobs;
  int64_t rows = 0, last_end = 0;
  for (const engine::ImageSpan& span : request.images) {
    ASSERT_NE(span.encode, nullptr);
    if (jobs.empty() || jobs.back() != span.encode) jobs.push_back(span.encode);
    EXPECT_GE(span.position, last_end);
    last_end = span.position + span.num_tokens;
    rows += span.num_tokens;
  }
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_NE(jobs[0]->cache_key, jobs[1]->cache_key);
  EXPECT_EQ(jobs[0]->layout, expected[0]);  // the full page first
  EXPECT_EQ(jobs[1]->layout, expected[1]);
  EXPECT_EQ(rows, expected[0].tokens + expected[1].tokens);

  // The question follows the last page.
  const std::vector<int32_t> tail(request.prompt_tokens.begin() + last_end,
                                  request.prompt_tokens.end());
  EXPECT_NE(ctx->tokenizer->Decode(tail).find("QUESTION: who wrote it?"), std::string::npos);
  const std::vector<int32_t> head(request.prompt_tokens.begin(),
                                  request.prompt_tokens.begin() + request.images[0].position);
  EXPECT_EQ(ctx->tokenizer->Decode(head).find("QUESTION"), std::string::npos);

  // Timings: the document as text (the tokenizer's count) and as pages (the plans' rows).
  EXPECT_EQ(request.timings.document_text_tokens,
            static_cast<int64_t>(ctx->tokenizer->Encode(doc, {.add_special = false}).size()));
  EXPECT_EQ(request.timings.document_image_tokens, expected[0].tokens + expected[1].tokens);
  EXPECT_EQ(request.timings.images, 2);
}

TEST(GlyphDocument, ImagesOnlyRequestHasNoDocumentTimings) {
  engine::RequestTimings t;
  EXPECT_EQ(t.document_text_tokens, -1);
  EXPECT_EQ(t.document_image_tokens, -1);
}

TEST(GlyphDocument, RenderPresetFieldStartsFromGlyphsConfiguration) {
  render::RenderOptions server_defaults;
  server_defaults.dpi = 96;
  server_defaults.margin_left_pt = 3;
  server_defaults.font_path = "/fonts/Verdana.ttf";
  auto o = ParseRenderOptions(R"({"preset":"glyph","font_size":10})", server_defaults);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->dpi, 72);                          // the preset's
  EXPECT_EQ(o->margin_left_pt, 10);               // the preset's
  EXPECT_EQ(o->font_size_pt, 10);                 // the request's own field wins
  EXPECT_EQ(o->font_path, "/fonts/Verdana.ttf");  // the server's font stays
  auto bad = ParseRenderOptions(R"({"preset":"verdana"})", server_defaults);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().ToString().find("glyph, glyph-96dpi"), std::string::npos)
      << bad.status().ToString();
}

TEST(GlyphDocument, CropFlagsSeparatelyAsGlyphsConfigurationHasThem) {
  const render::RenderOptions defaults;  // both crops on
  auto width_only = ParseRenderOptions(R"({"auto_crop_last_page":false})", defaults);
  ASSERT_TRUE(width_only.ok()) << width_only.status().ToString();
  EXPECT_TRUE(width_only->auto_crop_width);
  EXPECT_FALSE(width_only->auto_crop_last_page);
  auto last_only = ParseRenderOptions(R"({"auto_crop":false,"auto_crop_last_page":true})", defaults);
  ASSERT_TRUE(last_only.ok()) << last_only.status().ToString();
  EXPECT_FALSE(last_only->auto_crop_width);
  EXPECT_TRUE(last_only->auto_crop_last_page);
  auto bad = ParseRenderOptions(R"({"auto_crop_width":"no"})", defaults);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().ToString().find("auto_crop_width must be a bool"), std::string::npos);
}

// Over HTTP, as Glyph's client sends it (model "glyph", pages then the question): the
// answer's timings count the document as text (= POST /tokenize of its text) and as pages
// (= POST /v1/render's image_tokens, the same renderer and resize rule).
TEST(GlyphDocument, ServedTimingsCompareTextAndPageTokens) {
  if (!std::filesystem::exists(kDejaVu)) GTEST_SKIP() << "DejaVu Sans is not installed";
  ServerConfig config;
  config.api_key = "test-key";
  config.alias = "glyph";
  config.render_preset = "glyph";
  config.warmup = false;
  auto server = testing::StartTestServer(config);
  ASSERT_NE(server, nullptr);
  const std::string doc = TwoPageText();
  namespace json = boost::json;
  json::object body;
  body["model"] = "glyph";
  body["max_tokens"] = 2;
  body["messages"] = json::array{json::object{
      {"role", "user"},
      {"content", json::array{json::object{{"type", "document"}, {"text", doc}},
                              json::object{{"type", "text"}, {"text", "Who wrote it?"}}}}}};
  testing::Client chat(server->port());
  const auto r = chat.Post("/v1/chat/completions", json::serialize(body));
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value answer = json::parse(r.body);
  const json::object& t = answer.at("timings").as_object();
  testing::Client tok(server->port());
  const json::value ids =
      json::parse(tok.Post("/tokenize", json::serialize(json::object{{"content", doc}})).body);
  EXPECT_EQ(t.at("document_text_tokens").as_int64(),
            static_cast<int64_t>(ids.at("tokens").as_array().size()));
  testing::Client preview(server->port());
  const json::value rendered =
      json::parse(preview.Post("/v1/render", json::serialize(json::object{{"text", doc}})).body);
  EXPECT_EQ(rendered.at("pages").as_int64(), 2);
  EXPECT_EQ(t.at("document_image_tokens").as_int64(), rendered.at("image_tokens").as_int64());
  EXPECT_EQ(t.at("images").as_int64(), 2);

  // A request without a document has neither field.
  testing::Client text_only(server->port());
  const auto plain = text_only.Post(
      "/v1/chat/completions",
      R"({"model":"glyph","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_FALSE(json::parse(plain.body).at("timings").as_object().contains("document_text_tokens"));
}

}  // namespace
}  // namespace vlserve::server
