#include "server/warm_prompts.h"

#include <fmt/format.h>

#include <fstream>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/log.h"

namespace vlserve::server {
namespace {

bool Blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

StatusOr<std::vector<std::pair<int, ChatRequest>>> ParseFile(const std::string& path,
                                                             int max_media_parts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return NotFoundError(fmt::format("--warm-prompt {}: cannot open the file", path));
  }
  std::vector<std::pair<int, ChatRequest>> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (Blank(line)) continue;
    auto chat = ParseChatRequest(line, {.max_media_parts = max_media_parts});
    if (!chat.ok()) {
      return chat.status().WithContext(fmt::format(
          "--warm-prompt {} line {} (each line must be one chat-completions request JSON)", path,
          n));
    }
    out.emplace_back(n, std::move(*chat));
  }
  return out;
}

// Runs one prepared request to its end; its usage on success.
StatusOr<engine::Usage> RunOne(engine::Engine& engine, engine::Request request,
                               std::chrono::steady_clock::time_point deadline) {
  ASSIGN_OR_RETURN(auto stream, engine.Submit(std::move(request)));
  engine::Event event;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!stream->WaitNext(&event, std::chrono::milliseconds(100))) continue;
    if (event.kind == engine::Event::Kind::kError) return event.error;
    if (event.kind == engine::Event::Kind::kFinished) return event.usage;
  }
  stream->Cancel();
  return DeadlineExceededError("did not finish in time");
}

}  // namespace

StatusOr<WarmPromptStats> RunWarmPrompts(const std::string& path, const ModelContext& ctx,
                                         const MediaConfig& media,
                                         const WarmPromptOptions& options) {
  Stopwatch timer;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  ASSIGN_OR_RETURN(auto prompts, ParseFile(path, options.max_media_parts));
  WarmPromptStats stats;
  for (auto& [line, chat] : prompts) {
    const std::string where = fmt::format("--warm-prompt {} line {}", path, line);
    engine::Request request;
    request.id = fmt::format("warm-{}", line);
    Status s = PrepareChat(chat, ctx, media, {.max_tokens = 1}, &request);
    if (!s.ok()) return s.WithContext(where);
    request.sampling.max_tokens = 1;  // only the prompt's KV matters
    request.sampling.temperature = 0;
    const int64_t tokens = static_cast<int64_t>(request.prompt_tokens.size());
    auto usage = RunOne(*ctx.engine, std::move(request), deadline);
    if (!usage.ok()) return usage.status().WithContext(where);
    ++stats.prompts;
    stats.prompt_tokens += tokens;
    stats.cached_tokens += usage->cached_tokens;
  }
  LOG_INFO("warm prompts: {} prompt(s), {} tokens ({} were already cached) from {} in {:.0f} ms",
           stats.prompts, stats.prompt_tokens, stats.cached_tokens, path, timer.ElapsedMs());
  return stats;
}

}  // namespace vlserve::server
