// The engine: one thread that owns the text model's forward pass and the paged KV cache,
// and runs vLLM v1's step loop (docs/architecture.md "The engine step"):
//
//   while running:
//     plan = scheduler.Schedule()   // which requests, how many tokens each (scheduler.h)
//     out  = runner.Execute(plan)   // one batched TextModel::Forward (runner.h)
//     scheduler.Update(plan, out)   // sample, detokenize, stop, emit events
//
// HTTP threads never touch the model: they build a Request, Submit() it, and consume the
// returned RequestStream. Everything here is thread-safe. docs/engine.md is the user spec.
//
// Typical server use:
//   auto stream = engine->Submit(std::move(request));   // ResourceExhausted -> 503
//   if (!stream.ok()) return MapToHttp(stream.status());
//   (*stream)->SetNotify([strand] { post(strand, drain); });
//   ... drain: Poll(&events), write SSE chunks; on disconnect: (*stream)->Cancel().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "cache/encoder_cache.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "models/text_model.h"
#include "models/vision_model.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::engine {

// What one engine step did, for tracing (EngineConfig::on_step).
struct StepTrace {
  TimePoint start;            // Schedule() began
  double schedule_ms = 0;     // planning + KV allocation
  double encode_ms = 0;       // vision encoder (0 when no image was encoded)
  double forward_ms = 0;      // the batched forward pass
  double update_ms = 0;       // sampling, detokenizing, events
  int64_t requests = 0;       // items of the plan
  int64_t decode_tokens = 0;  // running requests decoding one token
  int64_t prefill_tokens = 0; // prompt tokens computed in this step
  int64_t images_encoded = 0;        // images whose encode completed in this step
  int64_t encode_token_layers = 0;   // vision-tower work of the step (encoder budget units)
  int64_t preempted = 0;
  double kv_usage = 0;        // after the step
};

struct EngineConfig {
  // Total KV capacity in tokens, rounded up to whole 16-token blocks. 0 = 2 x max_context
  // (one full-length request plus room to batch others). Memory per token:
  // 2 * layers * kv_heads * head_dim * (2 bytes for f16/bf16, 4 for f32) — see
  // models::KvBuffer::BytesPerToken.
  int64_t kv_tokens = 0;
  // What the KV cache stores: kF16 (default), kBF16 or kF32 (models::ParseKvType).
  DType kv_type = models::kDefaultKvType;
  // Token budget of one step (decode tokens + prefill chunk tokens). Larger = better
  // prefill throughput, longer steps (higher inter-token latency for running requests).
  int64_t max_batch_tokens = 512;
  // Vision-tower work one step may do, in tower token-layers (an image's tower tokens x
  // layers run; docs/engine.md "Scheduled encoding"). Images are encoded over several
  // steps, a layer at a time if need be, so other requests keep decoding while a document
  // is encoded. 8192 is two thirds of a 512-px SigLIP tile (1024 tokens x 12 layers) or
  // a tenth of a Qwen2-VL A4 page (2520 patches x 32 layers): bench-encode measured the
  // longest gap of another stream at 0.16 (SmolVLM) and 0.34 (Qwen2-VL, 588-px page) of a
  // page's encode with 16384, above the quarter we aim for. 0 = no limit (every pending
  // image encoded in one step). Server flag: --encoder-budget.
  int64_t encoder_budget = 8192;
  // Most requests in one step (running = holding KV).
  int max_running = 64;
  // Admission control: Submit() returns ResourceExhausted (server: 503 + Retry-After)
  // when this many requests, or this many prompt tokens, wait to start.
  int64_t max_waiting_requests = 64;
  int64_t max_waiting_tokens = 32768;
  // Longest sequence (prompt + generated). 0 = the model's context_length.
  int64_t max_context = 0;
  // Threads of the forward pass (the engine thread counts as one). 0 = the process-wide
  // DefaultThreadPool() (VLSERVE_THREADS or all hardware threads).
  int threads = 0;
  // Automatic prefix reuse over the paged KV cache (docs/caching.md): full 16-token blocks
  // of finished and running requests stay indexed by a SHA-256 chain of their content
  // (image spans by content_hash) and are shared by later requests with the same prefix.
  // Cached blocks use only otherwise-free KV memory. Server flag: --no-prefix-cache.
  bool enable_prefix_cache = true;
  // Called on the engine thread after every step that ran (keep it cheap). Server:
  // --trace-file writes these as Chrome trace events.
  std::function<void(const StepTrace&)> on_step;
};

// The vision side of an engine (optional): image spans that carry an EncodeJob are
// encoded in the step loop by `model` (all pending images of a step in batched forwards
// of at most max_tiles_per_forward tiles, 0 = the model's tiles_per_forward()) and their
// embeddings inserted into `cache`.
struct EngineVision {
  std::shared_ptr<const models::VisionModel> model;  // null = requests may not carry jobs
  std::shared_ptr<EncoderCache> cache;               // null = nothing is cached
  int max_tiles_per_forward = 0;                     // also bounds the activation memory
};

// A snapshot for /metrics and logs (refreshed once per step and on Submit).
struct EngineStats {
  int64_t running = 0;           // requests holding KV
  int64_t waiting = 0;           // accepted, not yet started (incl. preempted ones)
  int64_t waiting_tokens = 0;    // prompt tokens of requests not yet started
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  double kv_usage = 0;           // kv_blocks_used / kv_blocks_total
  int64_t kv_block_size = 16;
  int64_t kv_bytes_total = 0;    // the KV pool's memory (all blocks, K and V, every layer)
  // Counters since start.
  int64_t requests_submitted = 0;  // accepted by Submit
  int64_t requests_rejected = 0;   // Submit errors (full queue or invalid)
  int64_t requests_finished = 0;   // terminal events of any kind
  int64_t requests_cancelled = 0;
  int64_t requests_deadline = 0;
  int64_t requests_errored = 0;
  int64_t preemptions = 0;
  int64_t prompt_tokens_computed = 0;  // prefill tokens run through the model (incl. recompute)
  int64_t generated_tokens = 0;
  int64_t steps = 0;
  double busy_seconds = 0;           // time spent inside steps
  // Prefix cache (all 0 when disabled). Queried = known tokens of requests when they
  // (re)start; hit = those served from cached KV blocks instead of computed.
  int64_t prefix_cache_queried_tokens = 0;
  int64_t prefix_cache_hit_tokens = 0;
  int64_t prefix_cache_evictions = 0;  // indexed blocks reclaimed for other content
  int64_t kv_blocks_cached = 0;        // indexed blocks no request uses (reclaimable; in
                                       // kv_blocks_total - kv_blocks_used)
  int64_t prefix_cache_blocks = 0;     // indexed blocks (used or not)
  // Vision encoder (0 without one).
  int64_t images_encoded = 0;          // images (or pages) run through the encoder
  int64_t tiles_encoded = 0;
  double encode_seconds = 0;
};

class Engine {
 public:
  // Starts the engine thread. InvalidArgument for a config the model cannot satisfy
  // (e.g. kv_tokens below one block); the message names the field.
  static StatusOr<std::unique_ptr<Engine>> Create(
      EngineConfig config, std::shared_ptr<const models::TextModel> model,
      std::shared_ptr<const tokenizer::Tokenizer> tokenizer, EngineVision vision = {});
  ~Engine();  // Shutdown()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; its events arrive on the returned stream. Errors (nothing queued):
  //   InvalidArgument     empty prompt, bad sampling params, bad image spans, token ids
  //                       outside the vocabulary
  //   OutOfRange          prompt longer than max_context - 1 or than the KV capacity
  //   FailedPrecondition  an image span to encode but the engine has no vision model
  //   ResourceExhausted   the waiting queue is full (requests or tokens): retry later
  //   Unavailable         the engine is shutting down
  StatusOr<std::shared_ptr<RequestStream>> Submit(Request request);

  EngineStats Stats() const;
  const EngineConfig& config() const;  // with defaults resolved (kv_tokens, max_context)
  // Bytes of the KV pool in memory: the pages written so far (models::KvBuffer), at most
  // Stats().kv_bytes_total. A system call over the pool: for logs, not for every step.
  int64_t KvResidentBytes() const;

  // Stops the thread: every unfinished request ends with kFinished / kCancelled. Blocks
  // until the current step finishes. Idempotent.
  void Shutdown();

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlserve::engine
