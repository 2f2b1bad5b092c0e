#include "engine/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <atomic>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "base/clock.h"
#include "base/log.h"
#include "cache/block_pool.h"
#include "cache/prefix_index.h"
#include "engine/admission.h"
#include "engine/runner.h"
#include "engine/scheduler.h"

namespace vlserve::engine {
namespace {

Status ResolveConfig(const models::TextConfig& model, EngineConfig& c) {
  if (c.max_context == 0) c.max_context = model.context_length;
  if (c.max_context < 2 || c.max_context > model.context_length) {
    return InvalidArgumentError(fmt::format(
        "engine max_context={} must be in [2, {}] (the model's context_length)", c.max_context,
        model.context_length));
  }
  if (c.kv_tokens == 0) c.kv_tokens = 2 * c.max_context;
  if (c.kv_tokens < models::kKvBlockSize) {
    return InvalidArgumentError(fmt::format(
        "engine kv_tokens={} is below one KV block ({} tokens); use 0 for the default",
        c.kv_tokens, models::kKvBlockSize));
  }
  c.kv_tokens = (c.kv_tokens + models::kKvBlockSize - 1) / models::kKvBlockSize *
                models::kKvBlockSize;
  if (!kernels::IsKvType(c.kv_type)) {
    return InvalidArgumentError(fmt::format("engine kv_type={} is not supported; use f16, "
                                            "bf16 or f32", Info(c.kv_type).name));
  }
  if (c.max_batch_tokens < 1) {
    return InvalidArgumentError(
        fmt::format("engine max_batch_tokens={} must be >= 1", c.max_batch_tokens));
  }
  if (c.max_running < 1) {
    return InvalidArgumentError(fmt::format("engine max_running={} must be >= 1", c.max_running));
  }
  if (c.max_waiting_requests < 1 || c.max_waiting_tokens < 1) {
    return InvalidArgumentError(
        "engine max_waiting_requests and max_waiting_tokens must be >= 1");
  }
  if (c.threads < 0) return InvalidArgumentError("engine threads must be >= 0 (0 = default)");
  if (c.encoder_budget < 0) {
    return InvalidArgumentError("engine encoder_budget must be >= 0 (0 = no limit)");
  }
  return OkStatus();
}

// Checks image spans: in order, inside the prompt, each with ready embeddings of the right
// size or an encode job the vision model can run. `hidden` is the floats per embedding row
// (TextConfig::embedding_width: wider than the model for deepstack models).
Status ValidateImages(const Request& r, int64_t hidden, const models::VisionModel* vision) {
  const auto n = static_cast<int64_t>(r.prompt_tokens.size());
  int64_t prev_end = 0;
  for (size_t i = 0; i < r.images.size(); ++i) {
    const ImageSpan& s = r.images[i];
    if (s.num_tokens < 1 || s.position < prev_end || s.position + s.num_tokens > n ||
        s.first_row < 0) {
      return InvalidArgumentError(fmt::format(
          "image span {} (position {}, {} tokens) must be non-empty, inside the {}-token "
          "prompt, sorted and non-overlapping",
          i, s.position, s.num_tokens, n));
    }
    if ((s.embeddings == nullptr) == (s.encode == nullptr)) {
      return InvalidArgumentError(fmt::format(
          "image span {} must carry either embeddings or an encode job (exactly one)", i));
    }
    int64_t rows = 0;
    if (s.embeddings != nullptr) {
      if (s.embeddings->size() % hidden != 0) {
        return InvalidArgumentError(fmt::format(
            "image span {} has {} embedding floats, not a multiple of hidden {}", i,
            s.embeddings->size(), hidden));
      }
      rows = static_cast<int64_t>(s.embeddings->size()) / hidden;
    } else {
      if (vision == nullptr) {
        return FailedPreconditionError(fmt::format(
            "image span {} needs the vision encoder, but this engine has none", i));
      }
      const EncodeJob& job = *s.encode;
      const models::ImageLayout& l = job.layout;
      if (l.num_tiles < 1 || job.embeddings != nullptr ||
          static_cast<int64_t>(job.tiles.size()) != l.num_tiles * l.tile_floats()) {
        return InvalidArgumentError(fmt::format(
            "image span {}: the encode job needs {} tiles of 3x{}x{} floats", i, l.num_tiles,
            l.tile_height, l.tile_width));
      }
      rows = l.tokens;
    }
    if (s.first_row + s.num_tokens > rows) {
      return InvalidArgumentError(fmt::format(
          "image span {} takes rows [{}, {}) but the image has {} embedding rows", i,
          s.first_row, s.first_row + s.num_tokens, rows));
    }
    prev_end = s.position + s.num_tokens;
  }
  return OkStatus();
}

bool InImage(const Request& r, int64_t pos) {
  for (const ImageSpan& s : r.images) {
    if (pos >= s.position && pos < s.position + s.num_tokens) return true;
  }
  return false;
}

double Ms(TimePoint a, TimePoint b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

class Engine::Impl {
 public:
  Impl(EngineConfig config, std::shared_ptr<const models::TextModel> model,
       std::shared_ptr<const tokenizer::Tokenizer> tokenizer, EngineVision vision)
      : config_(config),
        model_(std::move(model)),
        tokenizer_(std::move(tokenizer)),
        vision_(std::move(vision)),
        own_pool_(config.threads > 0 ? std::make_unique<ThreadPool>(config.threads) : nullptr),
        blocks_(static_cast<int32_t>(config.kv_tokens / models::kKvBlockSize),
                models::kKvBlockSize),
        prefix_(config.enable_prefix_cache ? std::make_unique<PrefixIndex>(&blocks_) : nullptr),
        admission_(config.max_waiting_requests, config.max_waiting_tokens),
        scheduler_(SchedulerConfig{config.max_batch_tokens, config.encoder_budget,
                                   config.max_running, config.max_waiting_requests,
                                   config.max_waiting_tokens, config.max_context},
                   &blocks_, tokenizer_.get(), &admission_, prefix_.get()),
        runner_(model_, blocks_.num_blocks(), config.kv_type,
                own_pool_ ? own_pool_.get() : &DefaultThreadPool()) {
    PublishStats(0);
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() { Shutdown(); }

  StatusOr<std::shared_ptr<RequestStream>> Submit(Request request) {
    Status s = Validate(request);
    if (s.ok()) {
      auto stream = std::make_shared<RequestStream>(request.id);
      s = admission_.Push(std::move(request), stream);
      if (s.ok()) {
        ++submitted_;
        return stream;
      }
    }
    ++rejected_;
    return s;
  }

  EngineStats Stats() const {
    std::lock_guard<std::mutex> lock(stats_mu_);
    EngineStats s = stats_;
    s.requests_submitted = submitted_;
    s.requests_rejected = rejected_;
    s.waiting_tokens = admission_.waiting_tokens();
    return s;
  }

  const EngineConfig& config() const { return config_; }
  // The pool's buffer never moves or changes size, so reading its residency needs no lock.
  int64_t KvResidentBytes() const { return static_cast<int64_t>(runner_.kv().resident_bytes()); }

  void Shutdown() {
    if (stop_.exchange(true)) {
      if (thread_.joinable()) thread_.join();
      return;
    }
    admission_.Wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  Status Validate(const Request& r) const {
    const auto n = static_cast<int64_t>(r.prompt_tokens.size());
    const models::TextConfig& mc = model_->config();
    if (n == 0) return InvalidArgumentError("the prompt is empty; send at least one token");
    const int64_t limit = std::min(config_.max_context, config_.kv_tokens) - 1;
    if (n > limit) {
      return OutOfRangeError(fmt::format(
          "the prompt has {} tokens but at most {} fit (context {}, KV capacity {}); "
          "shorten the prompt",
          n, limit, config_.max_context, config_.kv_tokens));
    }
    RETURN_IF_ERROR(ValidateSamplingParams(r.sampling, mc.vocab));
    if (r.logprobs < -1 || r.logprobs > kMaxTopLogprobs) {
      return InvalidArgumentError(fmt::format(
          "top_logprobs = {} is out of range; allowed: 0..{}", r.logprobs, kMaxTopLogprobs));
    }
    RETURN_IF_ERROR(ValidateImages(r, mc.embedding_width(), vision_.model.get()));
    if (!r.rope_positions.empty()) {
      if (!mc.rope_sections.active()) {
        return InvalidArgumentError(fmt::format(
            "the request carries multi-axis RoPE positions but the text model ({}) has no "
            "M-RoPE sections",
            mc.arch));
      }
      if (static_cast<int64_t>(r.rope_positions.size()) != 4 * n || r.next_rope_position < 0 ||
          r.next_rope_position + config_.max_context > (int64_t{1} << 30)) {
        return InvalidArgumentError(fmt::format(
            "the request's RoPE positions must be [{} prompt tokens, 4] with a sane next "
            "position",
            n));
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      const int32_t t = r.prompt_tokens[i];
      if ((t < 0 || t >= mc.vocab) && !InImage(r, i)) {
        return InvalidArgumentError(fmt::format(
            "prompt token {} at position {} is outside the vocabulary [0, {})", t, i, mc.vocab));
      }
    }
    return OkStatus();
  }

  void Loop() {
    while (!stop_.load()) {
      const TimePoint step_start = SteadyClock::now();
      StepPlan plan = scheduler_.Schedule();
      if (plan.empty()) {
        PublishStats(0);
        // Idle (or every waiting request is blocked): sleep until a request arrives, but
        // wake in time for the nearest deadline.
        auto timeout = std::chrono::milliseconds(scheduler_.HasWork() ? 1 : 100);
        if (auto d = scheduler_.NextDeadline()) {
          auto until = std::chrono::duration_cast<std::chrono::milliseconds>(
              *d - SteadyClock::now() + std::chrono::milliseconds(1));
          timeout = std::clamp(until, std::chrono::milliseconds(0), timeout);
        }
        admission_.Wait(timeout);
        continue;
      }
      StepTrace trace;
      trace.start = step_start;
      trace.schedule_ms = Ms(step_start, SteadyClock::now());
      Stopwatch watch;
      const int64_t images_before = images_encoded_;
      EncodeImages(plan);
      trace.encode_ms = watch.ElapsedMs();
      StepOutput out = runner_.Execute(plan);
      trace.forward_ms = watch.ElapsedMs() - trace.encode_ms;
      if (!out.status.ok()) LOG_ERROR("engine step failed: {}", out.status.ToString());
      scheduler_.Update(plan, out);
      trace.update_ms = watch.ElapsedMs() - trace.encode_ms - trace.forward_ms;
      PublishStats(watch.ElapsedSeconds());
      if (config_.on_step) {
        trace.requests = static_cast<int64_t>(plan.items.size());
        trace.decode_tokens = plan.num_decode;
        trace.prefill_tokens = plan.num_tokens - plan.num_decode;
        trace.images_encoded = images_encoded_ - images_before;
        trace.encode_token_layers = step_token_layers_;
        trace.preempted = plan.num_preempted;
        trace.kv_usage = blocks_.Usage();
        config_.on_step(trace);
      }
    }
    for (AdmissionQueue::Entry& e : admission_.Close()) {
      Event event;
      event.kind = Event::Kind::kFinished;
      event.finish_reason = FinishReason::kCancelled;
      event.usage.prompt_tokens = static_cast<int64_t>(e.request.prompt_tokens.size());
      event.timings = e.request.timings;
      e.stream->Push(std::move(event));
    }
    scheduler_.AbortAll(FinishReason::kCancelled, OkStatus());
    PublishStats(0);
  }

  // Scheduled encoding (docs/architecture.md "Scheduled encoding"): advances the plan's
  // images in order — each from the encoder cache if another request stored it since, else
  // by EncodeSome — until the step's encoder budget (tower token-layers) is spent. A
  // prefill chunk never reaches an image before its encode is complete (the scheduler
  // stops chunks there), so a long document delays other requests' decodes by at most
  // about one budget of tower work per step.
  void EncodeImages(const StepPlan& plan) {
    step_token_layers_ = 0;
    if (plan.encode.empty()) return;
    int64_t budget = plan.encoder_budget > 0 ? plan.encoder_budget
                                             : std::numeric_limits<int64_t>::max();
    for (const EncodeWork& work : plan.encode) {
      EncodeJob& job = *work.job;
      if (job.embeddings != nullptr) continue;  // finished by a duplicate earlier
      if (job.progress == nullptr && TakeFromCache(job)) continue;
      if (budget <= 0) break;
      Stopwatch watch;
      const int64_t spent = RunEncodeJob(job, budget);
      budget -= spent;
      step_token_layers_ += spent;
      const double ms = watch.ElapsedMs();
      for (const EncodeWork& w : plan.encode) {  // every request waiting for this image
        if (w.job == work.job) w.owner->timings.encode_ms = std::max(0.0, w.owner->timings.encode_ms) + ms;
      }
      encode_seconds_ += ms / 1000.0;
    }
  }

  // The server's cache lookup for this image missed when the request arrived, but an
  // earlier step may have encoded the same image for another request since: use that.
  bool TakeFromCache(EncodeJob& job) {
    if (vision_.cache == nullptr || job.cache_key.empty()) return false;
    std::optional<EncoderOutput> hit = vision_.cache->LookupAfterMiss(job.cache_key);
    const models::VisionModel& vision = *vision_.model;
    if (!hit || hit->layout != job.layout || hit->rows != job.layout.tokens ||
        hit->hidden != vision.output_width()) {
      return false;
    }
    job.embeddings = hit->embeddings;
    job.tiles = {};
    return true;
  }

  // Runs up to `budget` token-layers of the job's encode; on completion publishes the
  // embeddings (and stores them in the encoder cache). Returns the token-layers spent.
  int64_t RunEncodeJob(EncodeJob& job, int64_t budget) {
    const models::VisionModel& vision = *vision_.model;
    const int64_t width = vision.output_width();
    if (job.progress == nullptr) {
      job.progress = std::make_shared<models::EncodeProgress>();
      job.partial = std::make_shared<std::vector<float>>(job.layout.tokens * width);
    }
    ThreadPool* pool = own_pool_ ? own_pool_.get() : &DefaultThreadPool();
    const int64_t spent =
        vision.EncodeSome(job.tiles.data(), job.layout, job.partial->data(), *job.progress,
                          budget, vision_scratch_, pool, vision_.max_tiles_per_forward);
    if (!job.progress->done(job.layout)) return spent;
    std::shared_ptr<const std::vector<float>> out = std::move(job.partial);
    job.partial = nullptr;
    job.progress = nullptr;
    job.tiles = {};  // the pixels are not needed again (preemption keeps the embeddings)
    job.embeddings = out;
    ++images_encoded_;
    tiles_encoded_ += job.layout.num_tiles;
    if (vision_.cache != nullptr && !job.cache_key.empty()) {
      EncoderOutput value;
      value.embeddings = out;
      value.rows = job.layout.tokens;
      value.hidden = width;
      value.layout = job.layout;
      Status s = vision_.cache->Insert(job.cache_key, std::move(value));
      if (!s.ok()) LOG_WARN("encoder cache insert failed: {}", s.ToString());
    }
    return spent;
  }

  void PublishStats(double step_seconds) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    EngineStats& s = stats_;
    s.running = scheduler_.num_running();
    s.waiting = admission_.waiting_requests() + scheduler_.num_waiting_restart();
    s.kv_blocks_total = blocks_.num_blocks();
    s.kv_blocks_used = blocks_.num_used();
    s.kv_usage = blocks_.Usage();
    s.kv_block_size = blocks_.block_size();
    s.kv_bytes_total = static_cast<int64_t>(runner_.kv().bytes());
    const SchedulerCounters& c = scheduler_.counters();
    s.requests_finished = c.finished;
    s.requests_cancelled = c.cancelled;
    s.requests_deadline = c.deadline;
    s.requests_errored = c.errored;
    s.preemptions = c.preemptions;
    s.prompt_tokens_computed = c.prompt_tokens_computed;
    s.generated_tokens = c.generated_tokens;
    s.prefix_cache_queried_tokens = c.prefix_queried_tokens;
    s.prefix_cache_hit_tokens = c.prefix_hit_tokens;
    s.kv_blocks_cached = blocks_.EvictableCount();
    if (prefix_ != nullptr) {
      s.prefix_cache_evictions = prefix_->evictions();
      s.prefix_cache_blocks = prefix_->size();
    }
    s.images_encoded = images_encoded_;
    s.tiles_encoded = tiles_encoded_;
    s.encode_seconds = encode_seconds_;
    if (step_seconds > 0) {
      ++s.steps;
      s.busy_seconds += step_seconds;
    }
  }

  const EngineConfig config_;
  std::shared_ptr<const models::TextModel> model_;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  const EngineVision vision_;
  models::VisionScratch vision_scratch_;  // engine thread only
  int64_t images_encoded_ = 0, tiles_encoded_ = 0;
  int64_t step_token_layers_ = 0;  // tower work of the current step
  double encode_seconds_ = 0;
  std::unique_ptr<ThreadPool> own_pool_;
  BlockPool blocks_;
  std::unique_ptr<PrefixIndex> prefix_;  // null when enable_prefix_cache is false
  AdmissionQueue admission_;
  Scheduler scheduler_;
  Runner runner_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> submitted_{0}, rejected_{0};
  mutable std::mutex stats_mu_;
  EngineStats stats_;
  std::thread thread_;  // last: starts after every member above exists
};

StatusOr<std::unique_ptr<Engine>> Engine::Create(
    EngineConfig config, std::shared_ptr<const models::TextModel> model,
    std::shared_ptr<const tokenizer::Tokenizer> tokenizer, EngineVision vision) {
  if (model == nullptr || tokenizer == nullptr) {
    return InvalidArgumentError("Engine::Create needs a model and a tokenizer");
  }
  RETURN_IF_ERROR(ResolveConfig(model->config(), config));
  if (vision.model != nullptr) RETURN_IF_ERROR(vision.model->CheckCompatible(model->config()));
  auto impl = std::make_unique<Impl>(config, std::move(model), std::move(tokenizer),
                                     std::move(vision));
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() { Shutdown(); }

StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(Request request) {
  return impl_->Submit(std::move(request));
}
EngineStats Engine::Stats() const { return impl_->Stats(); }
const EngineConfig& Engine::config() const { return impl_->config(); }
int64_t Engine::KvResidentBytes() const { return impl_->KvResidentBytes(); }
void Engine::Shutdown() { impl_->Shutdown(); }

}  // namespace vlserve::engine
