// `vlserve bench-encode`: what a document request does to another user's stream. A text
// request decodes; a document (rendered pages, encoded by the engine) arrives; the text
// stream's inter-token gaps while the pages are encoded are compared with one page's
// encode time, without scheduled encoding (--encoder-budget 0: each image in one step)
// and with it (docs/engine.md "Scheduled encoding").
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <cstdio>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "command.h"
#include "engine/engine.h"
#include "media/image.h"
#include "models/image_prompt.h"
#include "models/registry.h"
#include "models/vision_model.h"
#include "render/renderer.h"
#include "render/sample_text.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::app {
namespace {

using Clock = std::chrono::steady_clock;

struct Page {
  models::ImageLayout layout;
  std::vector<float> pixels;
};

StatusOr<std::vector<Page>> RenderPages(const models::VisionModel& vision, int pages) {
  ASSIGN_OR_RETURN(auto renderer, render::Renderer::Create(render::RenderOptions{}));
  std::vector<Page> out;
  media::BufferPool pool;
  media::PreprocessScratch scratch;
  const std::string text = render::SampleEnglish(static_cast<size_t>(pages) * 6000);
  RETURN_IF_ERROR(renderer->RenderAll(
      text, render::PixelFormat::kRgb8, nullptr,
      [&](const render::PageLayout&, const render::ImageView& view) -> Status {
        if (static_cast<int>(out.size()) >= pages) return OkStatus();
        media::Image image = media::MakeImage(view.width, view.height);
        for (int y = 0; y < view.height; ++y) {
          std::copy_n(view.data + y * view.stride, image.RowBytes(), image.Row(y));
        }
        ASSIGN_OR_RETURN(models::ImageLayout layout, vision.Plan(image.width, image.height));
        media::PixelTiles tiles = vision.Preprocess(layout, image, &pool, &scratch);
        out.push_back({layout, {tiles.Tile(0), tiles.Tile(0) + layout.num_tiles * layout.tile_floats()}});
        return OkStatus();
      },
      nullptr));
  return out;
}

struct Row {
  int64_t budget = 0;
  double max_encode_step_ms = 0;  // longest engine step that did vision work
  int64_t encode_steps = 0;
  double page_encode_ms = 0;   // the document's encode time / pages
  double itl_max_ms = 0;       // the text stream's longest gap while the document runs
  int64_t gaps = 0;
};

StatusOr<Row> RunOnce(int64_t budget, const std::shared_ptr<const models::TextModel>& text,
                      const std::shared_ptr<const tokenizer::Tokenizer>& tok,
                      const std::shared_ptr<const models::VisionModel>& vision,
                      const std::vector<Page>& pages, int threads) {
  engine::EngineConfig config;
  config.encoder_budget = budget;
  config.enable_prefix_cache = false;
  config.threads = threads;
  config.max_context = std::min<int64_t>(text->config().context_length, 8192);
  std::mutex mu;
  double max_encode_step_ms = 0;
  int64_t encode_steps = 0;
  config.on_step = [&](const engine::StepTrace& t) {
    if (t.encode_token_layers == 0) return;
    std::lock_guard<std::mutex> lock(mu);
    ++encode_steps;
    max_encode_step_ms = std::max(
        max_encode_step_ms, t.schedule_ms + t.encode_ms + t.forward_ms + t.update_ms);
  };
  engine::EngineVision ev;
  ev.model = vision;
  ASSIGN_OR_RETURN(auto engine, engine::Engine::Create(config, text, tok, ev));

  engine::Request chat;
  chat.id = "stream";
  chat.sampling.temperature = 0;
  chat.sampling.max_tokens = 4000;
  chat.sampling.logit_bias[tok->eos_id()] = -100;
  chat.prompt_tokens = tok->Encode("Tell me a long story about the sea.");
  ASSIGN_OR_RETURN(auto stream, engine->Submit(chat));

  std::string prompt;
  for (size_t i = 0; i < pages.size(); ++i) prompt += "<image>";
  prompt += "What is this document about?";
  std::vector<models::ImageLayout> layouts;
  for (const Page& p : pages) layouts.push_back(p.layout);
  ASSIGN_OR_RETURN(models::ExpandedPrompt e,
                   models::ExpandImagePrompt(*tok, *vision, text->config(), prompt, layouts, {}));
  engine::Request doc;
  doc.id = "document";
  doc.sampling.temperature = 0;
  doc.sampling.max_tokens = 1;
  doc.prompt_tokens = e.tokens;
  doc.rope_positions = e.rope_positions;
  doc.next_rope_position = e.next_rope_position;
  std::vector<std::shared_ptr<engine::EncodeJob>> jobs;
  for (const Page& p : pages) {
    auto job = std::make_shared<engine::EncodeJob>();
    job->layout = p.layout;
    job->tiles = p.pixels;
    jobs.push_back(job);
  }
  for (const models::PromptImageSpan& s : e.spans) {
    engine::ImageSpan span;
    span.position = s.position;
    span.num_tokens = s.num_tokens;
    span.first_row = s.first_row;
    span.encode = jobs[s.image];
    doc.images.push_back(span);
  }

  std::vector<double> during;  // the stream's gaps from the document's arrival
  Clock::time_point last{};
  std::shared_ptr<engine::RequestStream> doc_stream;
  Clock::time_point doc_start{};
  double doc_encode_ms = -1;
  for (int tokens = 0; tokens < 4000;) {
    engine::Event ev_text;
    if (!stream->WaitNext(&ev_text, std::chrono::seconds(120))) {
      return DeadlineExceededError("the text stream stalled for 120 s");
    }
    if (ev_text.kind != engine::Event::Kind::kDelta) break;
    const Clock::time_point now = Clock::now();
    const double gap = std::chrono::duration<double, std::milli>(now - last).count();
    if (doc_stream != nullptr) during.push_back(gap);
    last = now;
    tokens += static_cast<int>(ev_text.tokens.size());
    if (doc_stream == nullptr && tokens >= 16) {
      ASSIGN_OR_RETURN(doc_stream, engine->Submit(doc));
      doc_start = now;
    }
    if (doc_stream != nullptr) {
      std::vector<engine::Event> doc_events;
      doc_stream->Poll(&doc_events);
      for (const engine::Event& ev_doc : doc_events) {
        if (ev_doc.kind != engine::Event::Kind::kDelta) doc_encode_ms = ev_doc.timings.encode_ms;
      }
      if (doc_encode_ms >= 0) break;
    }
  }
  engine->Shutdown();
  (void)doc_start;
  Row row;
  row.budget = budget;
  row.page_encode_ms = doc_encode_ms / static_cast<double>(pages.size());
  row.itl_max_ms = during.empty() ? 0 : *std::max_element(during.begin(), during.end());
  row.gaps = static_cast<int64_t>(during.size());
  std::lock_guard<std::mutex> lock(mu);
  row.max_encode_step_ms = max_encode_step_ms;
  row.encode_steps = encode_steps;
  return row;
}

int RunBenchEncode(int argc, char** argv) {
  CLI::App cli("How a document request's encoding delays another request's stream: the "
               "stream's inter-token gaps while the pages are encoded, without and with "
               "scheduled encoding.",
               "vlserve bench-encode");
  std::string model_path, mmproj_path;
  int pages = 2, threads = 0;
  int64_t budget = engine::EngineConfig{}.encoder_budget;
  cli.add_option("-m,--model", model_path, "text model GGUF")->required();
  cli.add_option("--mmproj", mmproj_path, "vision projector GGUF")->required();
  cli.add_option("--pages", pages, "document pages (rendered sample text)")->capture_default_str();
  cli.add_option("--encoder-budget", budget, "the scheduled run's budget (token-layers)")
      ->capture_default_str();
  cli.add_option("-t,--threads", threads, "threads (0 = all cores)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  };
  auto text = models::LoadTextModel(model_path);
  if (!text.ok()) return fail(text.status());
  auto vision = models::VisionModel::Load(mmproj_path);
  if (!vision.ok()) return fail(vision.status());
  auto tok = tokenizer::LoadTokenizerFromGguf(model_path);
  if (!tok.ok()) return fail(tok.status());
  std::shared_ptr<const models::TextModel> t(std::move(*text));
  std::shared_ptr<const models::VisionModel> v(std::move(*vision));
  std::shared_ptr<const tokenizer::Tokenizer> k(std::move(*tok));
  auto rendered = RenderPages(*v, pages);
  if (!rendered.ok()) return fail(rendered.status());
  std::printf("%s: %zu pages of %dx%d px, %lld tokens each\n", std::string(v->family().name()).c_str(),
              rendered->size(), rendered->front().layout.tile_width,
              rendered->front().layout.tile_height,
              static_cast<long long>(rendered->front().layout.tokens));
  std::printf(
      "| encoder budget | page encode ms | steps that encode | longest such step ms (/ page "
      "encode) | stream's longest gap while the document is encoded and prefilled, ms |\n"
      "|---|---|---|---|---|\n");
  for (int64_t b : {int64_t{0}, budget}) {
    auto row = RunOnce(b, t, k, v, *rendered, threads);
    if (!row.ok()) return fail(row.status());
    std::printf("| %s | %.0f | %lld | %.0f (%.2f) | %.0f |\n",
                b == 0 ? "0 (whole image per step)" : std::to_string(b).c_str(),
                row->page_encode_ms, static_cast<long long>(row->encode_steps),
                row->max_encode_step_ms, row->max_encode_step_ms / row->page_encode_ms,
                row->itl_max_ms);
  }
  return 0;
}

}  // namespace

VLSERVE_COMMAND("bench-encode",
                "inter-token gaps of a stream while another request's document is encoded",
                RunBenchEncode);

}  // namespace vlserve::app
