// Server lifecycle: start listening, load + warm the model in the background, stop.
#include "server/server.h"

#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "base/clock.h"
#include "base/log.h"
#include "media/encode.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "models/vision_model.h"
#include "render/presets.h"
#include "render/renderer.h"
#include "server/memory_report.h"
#include "server/vision_input.h"
#include "server/warm_prompts.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::server {
namespace {

// The built-in model: `make-test-model` defaults, generated in memory (or cached in `dir`).
StatusOr<std::unique_ptr<models::TextModel>> LoadDefaultModel(const std::string& dir) {
  LOG_WARN("no --model given: serving the built-in tiny random test model; its answers are "
           "NOISE. Start with -m MODEL.gguf for real output.");
  models::TestModelOptions options;
  if (!dir.empty()) {
    const std::string path = dir + "/text.gguf";
    if (!std::filesystem::exists(path)) RETURN_IF_ERROR(models::WriteTestModel(options, dir));
    return models::LoadTextModel(path);
  }
  ASSIGN_OR_RETURN(gguf::Writer writer, models::BuildTestModel(options));
  ASSIGN_OR_RETURN(auto file, gguf::File::FromBytes(writer.WriteToString(), "builtin-test-model"));
  return models::LoadTextModel(std::move(file));
}

// Reads the file pages the model still reads at run time (gguf::File::Prefault: every
// tensor page the loader did not release after copying it), so they are in memory before
// the first request, with a progress bar on a terminal and log lines otherwise. Touching
// every tensor instead faulted the released pages back in, and they stayed mapped: the
// smolvlm-256m Q8_0 text file was 137 MiB resident next to its copies, now 1 MiB
// (docs/serve.md "Memory").
void PrefaultWeights(const gguf::File& file, const std::string& label) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  int last_shown = -1;
  file.Prefault([&](int64_t done, int64_t total) {
    const int percent = static_cast<int>(100 * done / total);
    if (tty && percent != last_shown) {
      const int bar = percent / 4;
      std::fprintf(stderr, "\rloading %s [%.*s%*s] %3d%% %.0f/%.0f MiB", label.c_str(), bar,
                   "#########################", 25 - bar, "", percent, done / 1048576.0,
                   total / 1048576.0);
    } else if (!tty && percent / 25 != last_shown / 25) {
      LOG_INFO("loading {}: {}% of {:.0f} MiB still read from the file", label, percent,
               total / 1048576.0);
    }
    last_shown = percent;
  });
  if (tty && last_shown >= 0) std::fprintf(stderr, "\n");
}

// The built-in vision tower (`make-test-model --vision idefics3` defaults, projecting to the
// built-in text model's width): tiny and random, so image answers are noise too.
StatusOr<std::unique_ptr<models::VisionModel>> LoadDefaultVision(const std::string& dir,
                                                                  int64_t text_hidden) {
  models::VisionTestOptions options;
  options.text_hidden = text_hidden;
  if (!dir.empty()) {
    const std::string path = dir + "/mmproj.gguf";
    if (!std::filesystem::exists(path)) RETURN_IF_ERROR(models::WriteTestMmproj(options, dir));
    return models::VisionModel::Load(path);
  }
  ASSIGN_OR_RETURN(gguf::Writer writer, models::BuildTestMmproj(options));
  ASSIGN_OR_RETURN(auto file,
                   gguf::File::FromBytes(writer.WriteToString(), "builtin-test-mmproj"));
  return models::VisionModel::Load(std::move(file));
}

// The vision side of the served model: tower, encoder cache, document renderer.
StatusOr<VisionContext> LoadVision(const ServerConfig& config, const models::TextModel& text) {
  VisionContext v;
  std::unique_ptr<models::VisionModel> model;
  ASSIGN_OR_RETURN(models::VisionComputeType compute,
                   models::ParseVisionComputeType(config.vision_compute));
  if (!config.mmproj_path.empty()) {
    LOG_INFO("loading {} ...", config.mmproj_path);
    models::VisionLoadOptions options;
    options.compute = compute;
    options.limits = {config.image_min_tokens, config.image_max_tokens};
    if (options.limits.min_tokens < 0 || options.limits.max_tokens < 0 ||
        (options.limits.max_tokens > 0 && options.limits.min_tokens > options.limits.max_tokens)) {
      return InvalidArgumentError(
          "--image-min-tokens and --image-max-tokens must be >= 0 and min <= max");
    }
    ASSIGN_OR_RETURN(model, models::VisionModel::Load(config.mmproj_path, options));
  } else if (config.model_path.empty()) {
    ASSIGN_OR_RETURN(model, LoadDefaultVision(config.default_model_dir, text.config().hidden));
  } else {
    return v;  // -m without --mmproj: a text-only model
  }
  RETURN_IF_ERROR(model->CheckCompatible(text.config()).WithContext("--mmproj"));
  if (!config.mmproj_path.empty()) PrefaultWeights(model->file(), config.mmproj_path);
  v.preprocess_id = PreprocessId(*model);
  // The compute type changes the embeddings: part of the tower's identity in cache keys.
  v.mmproj_id = MmprojId(config.mmproj_path) + " compute=" + config.vision_compute;
  LOG_INFO("vision: {} ({}), {} layers, {}",
           model->family().name(), model->config().projector_type, model->config().num_layers,
           model->config().dynamic_size
               ? fmt::format("dynamic resolution, {}-px patches", model->config().patch_size)
               : fmt::format("{}x{} px tiles, {} tokens per tile", model->config().image_size,
                             model->config().image_size, model->tokens_per_tile()));
  v.model = std::shared_ptr<const models::VisionModel>(std::move(model));
  if (config.encoder_cache_mb > 0) {
    v.cache = std::make_shared<EncoderCache>(
        static_cast<int64_t>(config.encoder_cache_mb * 1024 * 1024));
  }
  v.max_document_pages = config.max_document_pages;
  render::RenderOptions render_options;
  if (!config.render_preset.empty()) {
    auto preset = render::RenderPreset(config.render_preset);
    if (!preset.ok()) return preset.status().WithContext("--render-preset");
    render_options = *preset;
  }
  render_options.font_path = config.font_path;
  render_options.cjk_font_path = config.cjk_font_path;
  auto renderer = render::Renderer::Create(render_options);
  if (renderer.ok()) {
    v.renderer = std::move(*renderer);
    v.renderers = std::make_shared<render::RendererCache>(v.renderer);
  } else if (!config.font_path.empty() || !config.cjk_font_path.empty()) {
    return renderer.status().WithContext("--font / --cjk-font");  // asked for, so not optional
  } else {
    LOG_WARN("document parts are disabled: {}", renderer.status().ToString());
  }
  return v;
}

}  // namespace

Server::Server(ServerConfig config) : config_(std::move(config)) {}

Server::~Server() { Stop(); }

StatusOr<std::unique_ptr<Server>> Server::Start(ServerConfig config) {
  if (config.log_format == "json") {
    SetLogFormat(LogFormat::kJson);
  } else if (config.log_format == "text") {
    SetLogFormat(LogFormat::kText);
  } else {
    return InvalidArgumentError(
        fmt::format("--log-format '{}' is not known; use text or json", config.log_format));
  }
  if (config.max_body_mb <= 0) return InvalidArgumentError("--max-body-mb must be > 0");
  if (config.response_cache_mb < 0) {
    return InvalidArgumentError("--response-cache-mb must be >= 0 (0 = off)");
  }
  if (config.encoder_cache_mb < 0) {
    return InvalidArgumentError("--encoder-cache-mb must be >= 0 (0 = off)");
  }
  if (!(config.media.fetch_timeout_s > 0)) {
    return InvalidArgumentError("--media-fetch-timeout must be > 0 seconds");
  }
  ASSIGN_OR_RETURN(CacheIsolation isolation, ParseCacheIsolation(config.cache_isolation));
  std::vector<std::string> api_keys = SplitApiKeys(config.api_key);
  if (!config.api_key.empty() && api_keys.empty()) {
    return InvalidArgumentError("--api-key holds no key (only commas and spaces)");
  }
  if (isolation == CacheIsolation::kApiKey && api_keys.empty()) {
    return InvalidArgumentError(
        "--cache-isolation api-key needs --api-key: the keys are what tells callers apart");
  }
  config.http.max_body_bytes = static_cast<size_t>(config.max_body_mb * 1024 * 1024);
  config.http.read_timeout = std::chrono::seconds(config.read_timeout_s);
  config.http.write_timeout = std::chrono::seconds(config.write_timeout_s);
  std::unique_ptr<Server> s(new Server(std::move(config)));
  s->api_keys_ = std::move(api_keys);
  s->cache_isolation_ = isolation;
  if (!s->config_.trace_file.empty()) {
    ASSIGN_OR_RETURN(s->trace_, TraceWriter::Open(s->config_.trace_file));
    LOG_INFO("tracing engine steps and request spans to {}", s->config_.trace_file);
  }
  Server* self = s.get();
  ASSIGN_OR_RETURN(s->http_, HttpServer::Start(s->config_.http,
                                               [self](Connection& c, IncomingRequest& r) {
                                                 return self->Handle(c, r);
                                               }));
  LOG_INFO("listening on http://{}:{} (model loading...)", s->config_.http.host, s->port());
  s->loader_ = std::thread([self] { self->Load(); });
  return s;
}

StatusOr<std::unique_ptr<ModelContext>> Server::LoadModel() {
  Stopwatch timer;
  if (!config_.mmproj_path.empty() && config_.model_path.empty()) {
    return InvalidArgumentError("--mmproj needs -m/--model (the text model it belongs to)");
  }
  std::unique_ptr<models::TextModel> model;
  if (config_.model_path.empty()) {
    ASSIGN_OR_RETURN(model, LoadDefaultModel(config_.default_model_dir));
  } else {
    LOG_INFO("loading {} ...", config_.model_path);
    ASSIGN_OR_RETURN(model, models::LoadTextModel(config_.model_path));
    PrefaultWeights(model->file(), config_.model_path);
  }
  auto ctx = std::make_unique<ModelContext>();
  ASSIGN_OR_RETURN(tokenizer::TokenizerConfig tok_config,
                   tokenizer::TokenizerConfigFromGguf(model->file()));
  const std::string gguf_template = tok_config.chat_template;
  ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::Create(std::move(tok_config)));
  ctx->id = model->config().name;
  if (ctx->id.empty()) ctx->id = std::filesystem::path(config_.model_path).stem().string();
  ctx->alias = config_.alias;
  if (config_.chat_template.empty()) {
    bool recognised = false;
    ctx->chat_template = &models::DetectChatTemplate(gguf_template, &recognised);
    if (!recognised) {
      LOG_WARN("the GGUF chat template is not recognised; using '{}'. Pick one with "
               "--chat-template ({})",
               ctx->chat_template->name, models::ChatTemplateNames());
    }
  } else {
    ASSIGN_OR_RETURN(ctx->chat_template, models::FindChatTemplate(config_.chat_template));
  }
  LOG_INFO("model '{}' ({}, {} layers, {:.1f} MiB) loaded in {:.0f} ms; chat template {}",
           ctx->id, model->config().arch, model->config().num_layers,
           model->weight_bytes() / 1048576.0, timer.ElapsedMs(), ctx->chat_template->name);
  ctx->model = std::shared_ptr<const models::TextModel>(std::move(model));
  ctx->tokenizer = std::shared_ptr<const tokenizer::Tokenizer>(std::move(tok));
  ASSIGN_OR_RETURN(ctx->vision, LoadVision(config_, *ctx->model));
  engine::EngineVision engine_vision;
  engine_vision.model = ctx->vision.model;
  engine_vision.cache = ctx->vision.cache;
  engine::EngineConfig engine_config = config_.engine;
  ASSIGN_OR_RETURN(engine_config.kv_type, models::ParseKvType(config_.kv_type));
  if (trace_ != nullptr) {
    TraceWriter* trace = trace_.get();  // outlives the engine (Stop() order)
    engine_config.on_step = [trace](const engine::StepTrace& step) { trace->AddStep(step); };
  }
  ASSIGN_OR_RETURN(ctx->engine, engine::Engine::Create(engine_config, ctx->model, ctx->tokenizer,
                                                       std::move(engine_vision)));
  const engine::EngineStats stats = ctx->engine->Stats();
  LOG_INFO("KV cache: {} tokens of {}, {} bytes per token, {:.1f} MiB",
           stats.kv_blocks_total * stats.kv_block_size, config_.kv_type,
           models::KvBuffer::BytesPerToken(ctx->model->config(), engine_config.kv_type),
           stats.kv_bytes_total / 1048576.0);
  ctx->created_unix = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return ctx;
}

namespace {

// Waits for the terminal event of a warm-up request (<= 60 s).
Status AwaitWarmUp(engine::RequestStream& stream, std::string_view what) {
  engine::Event event;
  for (int i = 0; i < 600; ++i) {
    if (!stream.WaitNext(&event, std::chrono::milliseconds(100))) {
      if (stream.drained()) break;
      continue;
    }
    if (event.kind == engine::Event::Kind::kError) return event.error.WithContext(what);
    if (event.kind == engine::Event::Kind::kFinished) return OkStatus();
  }
  return DeadlineExceededError(fmt::format("{} did not finish within 60 s", what));
}

// A chat request with a synthetic JPEG and a short document: warms decode, preprocess,
// render, the vision tower and prefill over image embeddings.
StatusOr<engine::Request> VisionWarmUpRequest(const ModelContext& ctx, const MediaConfig& media) {
  // Very wide: SmolVLM resizes the long edge to 4 tiles, so this is the fewest tiles (one
  // row + the global image) that still runs the split-image path.
  media::Image image = media::MakeImage(256, 8);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 31);
  ASSIGN_OR_RETURN(std::vector<uint8_t> jpeg, media::EncodeJpeg(image, 85));
  ChatRequest chat;
  MediaRef picture;
  picture.url = "data:image/jpeg;base64," +
                EncodeBase64({reinterpret_cast<const char*>(jpeg.data()), jpeg.size()});
  chat.media.push_back(std::move(picture));
  if (ctx.vision.renderer != nullptr) {
    MediaRef document;
    document.kind = MediaRef::Kind::kDocument;
    document.document_text = "Warm-up page.";
    chat.media.push_back(std::move(document));
  }
  ParsedMessage user{"user", {}};
  for (size_t i = 0; i < chat.media.size(); ++i) {
    user.parts.push_back({ParsedPart::Kind::kMedia, "", i});
  }
  user.parts.push_back({ParsedPart::Kind::kText, "Warm up.", 0});
  chat.messages.push_back(std::move(user));
  chat.sampling.temperature = 0;
  chat.sampling.max_tokens = 2;
  chat.seed_given = true;
  engine::Request req;
  req.id = "warmup-vision";
  RETURN_IF_ERROR(PrepareChat(chat, ctx, media, {}, &req));
  return req;
}

}  // namespace

Status Server::WarmUp(ModelContext& ctx) {
  Stopwatch timer;
  engine::Request req;
  req.id = "warmup";
  req.prompt_tokens = ctx.tokenizer->Encode("Hello, warm up.", {.add_special = false});
  if (req.prompt_tokens.empty()) req.prompt_tokens.push_back(0);
  req.sampling.temperature = 0;
  req.sampling.max_tokens = 2;
  ASSIGN_OR_RETURN(auto stream, ctx.engine->Submit(std::move(req)));
  RETURN_IF_ERROR(AwaitWarmUp(*stream, "warm-up"));
  LOG_INFO("warm-up generation done in {:.0f} ms", timer.ElapsedMs());
  if (ctx.vision.model == nullptr) return OkStatus();
  Stopwatch vision_timer;
  ASSIGN_OR_RETURN(engine::Request image_req, VisionWarmUpRequest(ctx, config_.media));
  ASSIGN_OR_RETURN(auto image_stream, ctx.engine->Submit(std::move(image_req)));
  RETURN_IF_ERROR(AwaitWarmUp(*image_stream, "image warm-up"));
  LOG_INFO("image + document warm-up done in {:.0f} ms", vision_timer.ElapsedMs());
  return OkStatus();
}

void Server::Load() {
  auto ctx = LoadModel();
  Status status = ctx.status();
  if (status.ok() && config_.warmup) status = WarmUp(**ctx);
  for (const std::string& file : config_.warm_prompt_files) {
    if (!status.ok()) break;
    auto warmed = RunWarmPrompts(file, **ctx, config_.media,
                                 {.max_media_parts = config_.max_media_parts});
    status = warmed.status();
  }
  std::lock_guard<std::mutex> lock(mu_);
  load_status_ = status;
  loaded_ = true;
  if (status.ok() && !stopped_) {
    ctx_ = std::move(*ctx);
    ready_ = true;
    const ResponseCacheStats responses = response_cache_.Stats();
    LOG_INFO("{}", MemoryReport(CountMemory(*ctx_, responses.bytes, responses.capacity_bytes),
                                ReadProcessMemory()));
    LOG_INFO("ready: http://{}:{}", config_.http.host, port());
  } else if (!status.ok()) {
    LOG_ERROR("model loading failed: {}", status.ToString());
  }
  loaded_cv_.notify_all();
}

bool Server::WaitReady(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  loaded_cv_.wait_for(lock, timeout, [this] { return loaded_; });
  return ready_;
}

Status Server::WaitLoaded() {
  std::unique_lock<std::mutex> lock(mu_);
  loaded_cv_.wait(lock, [this] { return loaded_; });
  return load_status_;
}

Status Server::load_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return load_status_;
}

std::optional<engine::EngineStats> Server::engine_stats() const {
  if (!ready_) return std::nullopt;
  return ctx_->engine->Stats();
}

const std::string& Server::model_id() const {
  static const std::string kNone;
  return ready_ ? ctx_->served_id() : kNone;
}

void Server::Stop() {
  if (stopped_.exchange(true)) return;
  if (loader_.joinable()) loader_.join();
  if (ctx_ != nullptr) ctx_->engine->Shutdown();
  if (http_ != nullptr) http_->Stop();
  workers_.join();
  trace_.reset();
}

}  // namespace vlserve::server
