// Images and documents over HTTP, in process, with the built-in tiny model and its tiny
// vision tower (answers are noise; greedy decoding makes them deterministic).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

#include "http_client.h"
#include "server_test_util.h"
#include "media/encode.h"
#include "models/test_model.h"
#include "server/media_input.h"
#include "server/server.h"
#include "server/vision_input.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;
using testing::Client;
using testing::Response;
using testing::SseRecords;

// A JPEG data URL of a w x h gradient whose colours depend on `seed`.
std::string JpegUrl(int w, int h, int seed) {
  media::Image img = media::MakeImage(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.Row(y) + 3 * x;
      p[0] = static_cast<uint8_t>(x * 255 / w);
      p[1] = static_cast<uint8_t>(y * 255 / h);
      p[2] = static_cast<uint8_t>(seed * 53 + (x ^ y));
    }
  }
  auto jpeg = media::EncodeJpeg(img, 92);
  EXPECT_TRUE(jpeg.ok());
  return "data:image/jpeg;base64," +
         EncodeBase64({reinterpret_cast<const char*>(jpeg->data()), jpeg->size()});
}

// Forbids the test vocabulary's special tokens so the noise model writes visible text.
json::object NoEos() {
  json::object bias;
  for (int id = 0; id < 43; ++id) bias[std::to_string(id)] = -100;
  return bias;
}

std::string Body(json::array parts, int max_tokens = 8, bool stream = false) {
  json::object o;
  o["messages"] = json::array{json::object{{"role", "user"}, {"content", std::move(parts)}}};
  o["max_tokens"] = max_tokens;
  o["temperature"] = 0;
  o["stream"] = stream;
  o["logit_bias"] = NoEos();
  return json::serialize(o);
}

json::array ImageParts(const std::string& url, const std::string& question) {
  return json::array{json::object{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                     json::object{{"type", "text"}, {"text", question}}};
}

struct Answer {
  int status = 0;
  std::string text;
  json::object usage, timings;
  std::string error;
};

Answer Ask(int port, const std::string& body) {
  Client c(port);
  Response r = c.Post("/v1/chat/completions", body);
  Answer a;
  a.status = r.status;
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return a;
  const json::object& o = v.as_object();
  if (o.contains("error")) {
    a.error = std::string(o.at("error").at("message").as_string());
    return a;
  }
  a.text = std::string(o.at("choices").at(0).at("message").at("content").as_string());
  a.usage = o.at("usage").as_object();
  a.timings = o.at("timings").as_object();
  return a;
}

std::unique_ptr<Server> Start(ServerConfig config) {
  config.api_key = "test-key";
  return testing::StartTestServer(std::move(config));
}

class VisionServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = Start(ServerConfig{}).release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->port(); }
  static inline Server* server_ = nullptr;
};

TEST_F(VisionServerTest, ImageIsEncodedOnceThenServedFromTheCaches) {
  ASSERT_NE(server_, nullptr);
  const std::string url = JpegUrl(96, 64, 1);
  const Answer text_only = Ask(port(), Body(json::array{json::object{
                                           {"type", "text"}, {"text", "What is this?"}}}));
  ASSERT_EQ(text_only.status, 200) << text_only.error;

  const Answer first = Ask(port(), Body(ImageParts(url, "What is this?")));
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_FALSE(first.text.empty());
  // 96x64 -> SmolVLM longest edge 128 -> 128x88 -> a 3x4 grid of 32-px tiles + global,
  // 4 rows each, plus the wrapper tokens: far more prompt than the text alone.
  EXPECT_GE(first.usage.at("prompt_tokens").as_int64(),
            text_only.usage.at("prompt_tokens").as_int64() + 13 * 4);
  EXPECT_EQ(first.timings.at("images").as_int64(), 1);
  EXPECT_EQ(first.timings.at("images_cached").as_int64(), 0);
  EXPECT_FALSE(first.timings.at("encode_cached").as_bool());
  EXPECT_TRUE(first.timings.contains("image_decode"));
  EXPECT_TRUE(first.timings.contains("preprocess"));
  EXPECT_GT(first.timings.at("encode").to_number<double>(), 0.0);

  // Same image, same question: encoder cache (no decode) and prefix cache.
  const Answer second = Ask(port(), Body(ImageParts(url, "What is this?")));
  ASSERT_EQ(second.status, 200) << second.error;
  EXPECT_EQ(second.text, first.text);
  EXPECT_EQ(second.timings.at("images_cached").as_int64(), 1);
  EXPECT_TRUE(second.timings.at("encode_cached").as_bool());
  EXPECT_FALSE(second.timings.contains("image_decode"));
  EXPECT_EQ(second.timings.at("encode").to_number<double>(), 0.0);
  EXPECT_GT(second.usage.at("prompt_tokens_details").at("cached_tokens").as_int64(), 0);

  // A different image gives a different prompt: a different answer from the noise model.
  const Answer other = Ask(port(), Body(ImageParts(JpegUrl(96, 64, 2), "What is this?")));
  ASSERT_EQ(other.status, 200) << other.error;
  EXPECT_EQ(other.timings.at("images_cached").as_int64(), 0);
  EXPECT_EQ(other.usage.at("prompt_tokens").as_int64(), first.usage.at("prompt_tokens").as_int64());

  // /metrics counts the hit and the encodes.
  Client m(port());
  const std::string metrics = m.Get("/metrics").body;
  auto value = [&](const std::string& name) {
    const size_t at = metrics.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + name.size() + 2));
  };
  EXPECT_GE(value("vlserve_encoder_cache_hits_total"), 1.0);
  EXPECT_GE(value("vlserve_encoder_cache_misses_total"), 2.0);
  EXPECT_GE(value("vlserve_images_encoded_total"), 2.0);  // first + other (+ warm-up)
}

TEST_F(VisionServerTest, CachesDoNotChangeTheAnswer) {
  ASSERT_NE(server_, nullptr);
  ServerConfig config;
  config.encoder_cache_mb = 0;
  config.engine.enable_prefix_cache = false;
  auto plain = Start(config);
  ASSERT_NE(plain, nullptr);
  for (int seed : {3, 4}) {
    const std::string body = Body(ImageParts(JpegUrl(50 + seed * 10, 40, seed), "Describe."));
    const Answer cached_a = Ask(port(), body);
    const Answer cached_b = Ask(port(), body);  // served from both caches
    const Answer uncached = Ask(plain->port(), body);
    ASSERT_EQ(uncached.status, 200) << uncached.error;
    EXPECT_EQ(uncached.timings.at("images_cached").as_int64(), 0);
    EXPECT_EQ(cached_a.text, uncached.text);
    EXPECT_EQ(cached_b.text, uncached.text);
  }
}

TEST_F(VisionServerTest, DocumentIsRenderedIntoPages) {
  ASSERT_NE(server_, nullptr);
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Line " + std::to_string(i) + " of a long document. ";
  json::array parts{json::object{{"type", "document"}, {"text", text}},
                    json::object{{"type", "text"}, {"text", "Summarise."}}};
  const Answer a = Ask(port(), Body(parts));
  ASSERT_EQ(a.status, 200) << a.error;
  EXPECT_GE(a.timings.at("images").as_int64(), 1);
  EXPECT_TRUE(a.timings.contains("render"));

  json::array letter{
      json::object{{"type", "document"}, {"text", text}, {"render", {{"page", "Letter"},
                                                                    {"dpi", 96}}}},
      json::object{{"type", "text"}, {"text", "Summarise."}}};
  const Answer b = Ask(port(), Body(letter));
  ASSERT_EQ(b.status, 200) << b.error;

  json::array bad{json::object{{"type", "document"}, {"text", text}, {"render", {{"dpi", "x"}}}}};
  const Answer c = Ask(port(), Body(bad));
  EXPECT_EQ(c.status, 400);
  EXPECT_NE(c.error.find("dpi"), std::string::npos) << c.error;
  json::array empty{json::object{{"type", "document"}, {"text", "   "}}};
  EXPECT_EQ(Ask(port(), Body(empty)).status, 400);
}

TEST_F(VisionServerTest, RenderPreviewCountsPagesAndTokens) {
  ASSERT_NE(server_, nullptr);
  std::string text;
  for (int i = 0; i < 900; ++i) text += "Sentence number " + std::to_string(i) + " goes here. ";
  Client c(port());
  Response r = c.Post("/v1/render", json::serialize(json::object{{"text", text},
                                                                 {"max_images", 1}}));
  ASSERT_EQ(r.status, 200) << r.body;
  json::value v = json::parse(r.body);
  const int64_t pages = v.at("pages").as_int64();
  EXPECT_GE(pages, 2);  // ~30K characters do not fit one A4 page at 9 pt
  EXPECT_EQ(v.at("sizes").as_array().size(), static_cast<size_t>(pages));
  ASSERT_EQ(v.at("images").as_array().size(), 1u);
  EXPECT_EQ(v.at("images").at(0).as_string().subview().substr(0, 23), "data:image/jpeg;base64,");
  // Each page of the built-in tower costs at least one 4-row tile.
  EXPECT_GE(v.at("image_tokens").as_int64(), 4 * pages);
  Client tok(port());
  json::value t = json::parse(
      tok.Post("/tokenize", json::serialize(json::object{{"content", text}})).body);
  EXPECT_EQ(v.at("text_tokens").as_int64(), static_cast<int64_t>(t.at("tokens").as_array().size()));

  Client bad(port());
  EXPECT_EQ(bad.Post("/v1/render", R"({"text": "x", "render": {"dpi": -1}})").status, 400);
  Client missing(port());
  EXPECT_EQ(missing.Post("/v1/render", R"({"render": {}})").status, 400);
}

TEST_F(VisionServerTest, StreamedImageAnswerCarriesTimings) {
  ASSERT_NE(server_, nullptr);
  Client c(port());
  Response r = c.Post("/v1/chat/completions",
                      Body(ImageParts(JpegUrl(40, 40, 9), "Hi"), 6, /*stream=*/true));
  ASSERT_EQ(r.status, 200);
  std::vector<std::string> records = SseRecords(r.body);
  ASSERT_GE(records.size(), 3u);
  EXPECT_EQ(records.back(), "[DONE]");
  json::value final_chunk = json::parse(records[records.size() - 2]);
  EXPECT_EQ(final_chunk.at("timings").at("images").as_int64(), 1);
}

TEST_F(VisionServerTest, BadImagesAreClientErrors) {
  ASSERT_NE(server_, nullptr);
  std::string url = JpegUrl(64, 64, 5);
  const Answer truncated = Ask(port(), Body(ImageParts(url.substr(0, url.size() / 2), "x")));
  EXPECT_EQ(truncated.status, 400) << truncated.error;
  const Answer not_image =
      Ask(port(), Body(ImageParts("data:image/png;base64,aGVsbG8gd29ybGQ=", "x")));
  EXPECT_EQ(not_image.status, 400);
  // The server keeps serving.
  EXPECT_EQ(Ask(port(), Body(ImageParts(JpegUrl(32, 32, 6), "x"))).status, 200);
}

// Issue #18 item 7: what users type is text. A literal "<image>" next to an attached image
// is not a second placeholder (it was a 400), and "<|im_start|>" typed in content is not the
// control token (which let a user forge a system turn).
TEST_F(VisionServerTest, TypedSpecialTokensAndMarkersStayText) {
  ASSERT_NE(server_, nullptr);
  const Answer marker = Ask(port(), Body(ImageParts(JpegUrl(32, 32, 7), "what is <image>?")));
  EXPECT_EQ(marker.status, 200) << marker.error;
  auto prompt_tokens = [&](const std::string& text) -> int64_t {
    const Answer a =
        Ask(port(), Body(json::array{json::object{{"type", "text"}, {"text", text}}}, 1));
    EXPECT_EQ(a.status, 200) << a.error;
    return a.usage.contains("prompt_tokens") ? a.usage.at("prompt_tokens").as_int64() : 0;
  };
  // As the control token it would add one token; as text "<|", "im", "_", "start", "|>"
  // are five pre-tokenizer words, at least one token each.
  EXPECT_GE(prompt_tokens("x<|im_start|>") - prompt_tokens("x"), 5);
}

TEST(VisionServerTextOnly, ModelWithoutMmprojRejectsImages) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("vlserve_text_only_" + std::to_string(getpid())))
                              .string();
  ASSERT_TRUE(models::WriteTestModel(models::TestModelOptions{}, dir).ok());
  ServerConfig config;
  config.model_path = dir + "/text.gguf";
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  const Answer a = Ask(server->port(), Body(ImageParts(JpegUrl(16, 16, 1), "x")));
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(a.error.find("no vision encoder"), std::string::npos) << a.error;
  server.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// A Qwen2-VL server: images become M-RoPE prompts end to end; --image-max-tokens scales
// images down, a request may ask for fewer tokens but not more; a qwen2vl text model
// without rope sections serves text but refuses images with the reconvert advice.
TEST(VisionServerQwen2Vl, TokenLimitsAndPositionsEndToEnd) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("vlserve_qwen2vl_" + std::to_string(getpid())))
                              .string();
  models::TestModelOptions text;
  text.arch = "qwen2vl";
  text.rope_sections = models::DefaultRopeSections(text.hidden / text.heads);
  models::VisionTestOptions vision;
  vision.projector = "qwen2vl_merger";
  vision.image_size = 56, vision.patch_size = 14;
  ASSERT_TRUE(models::WriteTestModel(text, dir).ok());
  ASSERT_TRUE(models::WriteTestMmproj(vision, dir).ok());
  ServerConfig config;
  config.model_path = dir + "/text.gguf";
  config.mmproj_path = dir + "/mmproj.gguf";
  config.image_max_tokens = 64;
  config.warmup = false;
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  // 320x240 would be 99 tokens (smart_resize: 308 x 252, 11 x 9 merged); the server's
  // 64 scales it down.
  auto ask = [&](json::object extra) {
    json::object body =
        json::parse(Body(ImageParts(JpegUrl(320, 240, 4), "What is it?"), 4)).as_object();
    for (const auto& kv : extra) body[kv.key()] = kv.value();
    return Ask(server->port(), json::serialize(body));
  };
  const Answer plain = ask({});
  ASSERT_EQ(plain.status, 200) << plain.error;
  const Answer fewer = ask({{"image_max_tokens", 8}});
  ASSERT_EQ(fewer.status, 200) << fewer.error;
  const int64_t image_tokens =
      plain.usage.at("prompt_tokens").as_int64() - fewer.usage.at("prompt_tokens").as_int64();
  EXPECT_GT(image_tokens, 40);  // <= 64 - 8, and well above 0: the limit was applied
  EXPECT_LE(image_tokens, 64 - 1);
  const Answer more = ask({{"image_max_tokens", 1000}});
  EXPECT_EQ(more.status, 400);
  EXPECT_NE(more.error.find("--image-max-tokens"), std::string::npos) << more.error;
  const Answer bad = ask({{"image_max_tokens", "many"}});
  EXPECT_EQ(bad.status, 400);
  server.reset();

  // The same text model converted without rope.dimension_sections.
  text.rope_sections.reset();
  ASSERT_TRUE(models::WriteTestModel(text, dir).ok());
  config.image_max_tokens = 0;
  server = Start(config);
  ASSERT_NE(server, nullptr);
  const Answer refused = ask({});
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.error.find("reconvert"), std::string::npos) << refused.error;
  const std::string text_only =
      Body(json::array{json::object{{"type", "text"}, {"text", "Hi"}}}, 4);
  EXPECT_EQ(Ask(server->port(), text_only).status, 200);
  server.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(TraceFileTest, HasEngineStepsAndRequestSpans) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("vlserve_trace_" + std::to_string(getpid()) + ".json"))
                               .string();
  {
    ServerConfig config;
    config.trace_file = path;
    config.warmup = false;
    auto server = Start(config);
    ASSERT_NE(server, nullptr);
    const Answer a = Ask(server->port(), Body(ImageParts(JpegUrl(48, 48, 3), "Hi"), 4));
    ASSERT_EQ(a.status, 200) << a.error;
  }  // Stop() closes the JSON array
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  ASSERT_FALSE(ec) << text.substr(0, 200);
  int steps = 0, encode_steps = 0, prefill_tokens = 0;
  std::set<std::string> request_spans;
  for (const json::value& e : v.as_array()) {
    EXPECT_EQ(e.at("ph").as_string(), "X");
    EXPECT_GE(e.at("ts").to_number<double>(), 0.0);
    EXPECT_GE(e.at("dur").to_number<double>(), 0.0);
    if (e.at("cat") == "engine") {
      ++steps;
      if (e.at("args").at("images_encoded").as_int64() > 0) ++encode_steps;
      prefill_tokens += static_cast<int>(e.at("args").at("prefill_tokens").as_int64());
    } else {
      request_spans.insert(std::string(e.at("name").as_string()));
    }
  }
  EXPECT_GE(steps, 4);  // prefill + 3 more decode steps at least
  EXPECT_EQ(encode_steps, 1);
  EXPECT_GT(prefill_tokens, 13 * 4);  // the image rows were prefilled
  for (const char* stage : {"parse", "image_decode", "preprocess", "queue", "encode", "prefill",
                            "decode"}) {
    EXPECT_TRUE(request_spans.count(stage)) << stage;
  }
  std::filesystem::remove(path);
}

TEST(RenderOptionsTest, ParsesAndValidates) {
  render::RenderOptions defaults;
  auto o = ParseRenderOptions(R"({"page":"Letter","dpi":96,"align":"justify","margin":5})",
                              defaults);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->page_width_pt, 612);
  EXPECT_EQ(o->dpi, 96);
  EXPECT_EQ(o->align, render::Align::kJustify);
  EXPECT_EQ(o->margin_left_pt, 5);
  EXPECT_EQ(o->margin_bottom_pt, 5);
  EXPECT_FALSE(ParseRenderOptions(R"({"dpi":5000})", defaults).ok());
  EXPECT_FALSE(ParseRenderOptions(R"({"colour":"red"})", defaults).ok());
  EXPECT_FALSE(ParseRenderOptions(R"([1])", defaults).ok());
  EXPECT_FALSE(ParseRenderOptions(R"({"align":"diagonal"})", defaults).ok());
}

}  // namespace
}  // namespace vlserve::server
