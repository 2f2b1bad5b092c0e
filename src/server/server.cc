// Server lifecycle: start listening, load + warm the model in the background, stop.
#include "server/server.h"

#include <fmt/format.h>

#include <filesystem>

#include "base/clock.h"
#include "base/log.h"
#include "models/registry.h"
#include "models/test_model.h"
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

}  // namespace

Server::Server(ServerConfig config) : config_(std::move(config)) {}

Server::~Server() { Stop(); }

StatusOr<std::unique_ptr<Server>> Server::Start(ServerConfig config) {
  if (config.max_body_mb <= 0) return InvalidArgumentError("--max-body-mb must be > 0");
  if (!config.media.allowed_hosts.empty()) {
    return UnimplementedError(
        "--allow-media-domains: fetching remote images is not implemented yet; send images "
        "as data: URLs or use --media-dir");
  }
  config.http.max_body_bytes = static_cast<size_t>(config.max_body_mb * 1024 * 1024);
  config.http.read_timeout = std::chrono::seconds(config.read_timeout_s);
  config.http.write_timeout = std::chrono::seconds(config.write_timeout_s);
  std::unique_ptr<Server> s(new Server(std::move(config)));
  if (!s->config_.trace_file.empty()) {
    ASSIGN_OR_RETURN(s->trace_, TraceWriter::Open(s->config_.trace_file));
    LOG_INFO("tracing request spans to {} (engine steps are not traced: no engine hook yet)",
             s->config_.trace_file);
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
  if (!config_.mmproj_path.empty()) {
    return UnimplementedError(fmt::format(
        "--mmproj {}: vision encoders are not supported by this build yet", config_.mmproj_path));
  }
  std::unique_ptr<models::TextModel> model;
  if (config_.model_path.empty()) {
    ASSIGN_OR_RETURN(model, LoadDefaultModel(config_.default_model_dir));
  } else {
    LOG_INFO("loading {} ...", config_.model_path);
    ASSIGN_OR_RETURN(model, models::LoadTextModel(config_.model_path));
  }
  auto ctx = std::make_unique<ModelContext>();
  ASSIGN_OR_RETURN(tokenizer::TokenizerConfig tok_config,
                   tokenizer::TokenizerConfigFromGguf(model->file()));
  const std::string gguf_template = tok_config.chat_template;
  ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::Create(std::move(tok_config)));
  ctx->id = model->config().name;
  if (ctx->id.empty()) ctx->id = std::filesystem::path(config_.model_path).stem().string();
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
  ASSIGN_OR_RETURN(ctx->engine, engine::Engine::Create(config_.engine, ctx->model, ctx->tokenizer));
  ctx->created_unix = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return ctx;
}

Status Server::WarmUp(ModelContext& ctx) {
  Stopwatch timer;
  engine::Request req;
  req.id = "warmup";
  req.prompt_tokens = ctx.tokenizer->Encode("Hello, warm up.", {.add_special = false});
  if (req.prompt_tokens.empty()) req.prompt_tokens.push_back(0);
  req.sampling.temperature = 0;
  req.sampling.max_tokens = 2;
  ASSIGN_OR_RETURN(auto stream, ctx.engine->Submit(std::move(req)));
  engine::Event event;
  for (int i = 0; i < 600; ++i) {  // <= 60 s
    if (!stream->WaitNext(&event, std::chrono::milliseconds(100))) {
      if (stream->drained()) break;
      continue;
    }
    if (event.kind == engine::Event::Kind::kError) return event.error.WithContext("warm-up");
    if (event.kind == engine::Event::Kind::kFinished) {
      LOG_INFO("warm-up generation done in {:.0f} ms", timer.ElapsedMs());
      return OkStatus();
    }
  }
  return DeadlineExceededError("warm-up generation did not finish within 60 s");
}

void Server::Load() {
  auto ctx = LoadModel();
  Status status = ctx.status();
  if (status.ok() && config_.warmup) status = WarmUp(**ctx);
  std::lock_guard<std::mutex> lock(mu_);
  load_status_ = status;
  loaded_ = true;
  if (status.ok() && !stopped_) {
    ctx_ = std::move(*ctx);
    ready_ = true;
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
  return ready_ ? ctx_->id : kNone;
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
