// libFuzzer target for the JSON request bodies (src/server/chat_request.cc): chat and
// completion requests, /tokenize and /detokenize, then what the server does next with an
// accepted chat request that needs no model: rendering the messages through every
// built-in chat template (src/models/chat_template.cc).
// Properties: a refused body is InvalidArgument or Unimplemented with a message; an
// accepted one respects the documented limits; RenderChatPrompt equals ApplyChatTemplate
// and its content ranges hold exactly the messages' text parts, in order.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/check.h"
#include "engine/logprobs.h"
#include "models/chat_template.h"
#include "server/chat_request.h"

namespace {

using vlserve::Status;
using vlserve::StatusCode;
using namespace vlserve::server;
namespace models = vlserve::models;

void CheckRefusal(const Status& s) {
  CHECK(s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kUnimplemented)
      << s.ToString();
  CHECK(!s.message().empty());
}

void CheckOptions(const ChatRequest& r) {
  CHECK(r.logprobs >= -1 && r.logprobs <= vlserve::engine::kMaxTopLogprobs) << r.logprobs;
  CHECK(!r.timeout_s || (*r.timeout_s > 0 && *r.timeout_s <= kMaxTimeoutSeconds));
  CHECK(r.image_min_tokens >= 0 && r.image_max_tokens >= 0);
  CHECK(r.sampling.stop.size() <= 16);
  CHECK(r.sampling.max_tokens == -1 || r.sampling.max_tokens >= 1) << r.sampling.max_tokens;
}

// The chat as chat_service.cc builds it: media parts become image parts.
std::vector<models::ChatMessage> ToChat(const ChatRequest& r, std::vector<std::string>* texts) {
  std::vector<models::ChatMessage> chat;
  for (const ParsedMessage& m : r.messages) {
    models::ChatMessage out{m.role, {}};
    for (const ParsedPart& p : m.parts) {
      if (p.kind == ParsedPart::Kind::kText) {
        out.parts.push_back({models::ChatPart::Kind::kText, p.text});
        texts->push_back(p.text);
      } else {
        CHECK(p.media_index < r.media.size());
        out.parts.push_back({models::ChatPart::Kind::kImage, {}});
      }
    }
    chat.push_back(std::move(out));
  }
  return chat;
}

void CheckTemplates(const ChatRequest& r) {
  std::vector<std::string> texts;
  const std::vector<models::ChatMessage> chat = ToChat(r, &texts);
  for (const models::ChatTemplate& t : models::ChatTemplates()) {
    for (bool generation_prompt : {true, false}) {
      const models::ChatPrompt prompt = models::RenderChatPrompt(t, chat, generation_prompt);
      CHECK(prompt.text == models::ApplyChatTemplate(t, chat, generation_prompt)) << t.name;
      CHECK(prompt.content.size() == texts.size()) << t.name;
      size_t last_end = 0;
      for (size_t i = 0; i < texts.size(); ++i) {
        const auto [begin, end] = prompt.content[i];
        CHECK(begin >= last_end && end <= prompt.text.size()) << t.name;
        CHECK(std::string_view(prompt.text).substr(begin, end - begin) == texts[i]) << t.name;
        last_end = end;
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  ChatParseLimits limits;
  limits.max_media_parts = 4;
  limits.max_messages = 64;
  auto chat = ParseChatRequest(body, limits);
  if (!chat.ok()) {
    CheckRefusal(chat.status());
  } else {
    CHECK(!chat->messages.empty() && chat->messages.size() <= 64);
    CHECK(chat->media.size() <= 4);
    for (const ParsedMessage& m : chat->messages) {
      CHECK(m.role == "system" || m.role == "user" || m.role == "assistant") << m.role;
    }
    for (const MediaRef& ref : chat->media) {
      CHECK(ref.kind == MediaRef::Kind::kDocument || ref.render_json.empty());
    }
    CheckOptions(*chat);
    CheckTemplates(*chat);
  }

  auto completion = ParseCompletionRequest(body);
  if (!completion.ok()) {
    CheckRefusal(completion.status());
  } else {
    CHECK(completion->options.messages.empty() && completion->options.media.empty());
    CHECK(completion->prompt_is_ids || completion->prompt_ids.empty());
    for (int32_t id : completion->prompt_ids) CHECK(id >= 0);
    CheckOptions(completion->options);
  }

  auto tokenize = ParseTokenizeRequest(body);
  if (!tokenize.ok()) CheckRefusal(tokenize.status());
  auto detokenize = ParseDetokenizeRequest(body);
  if (!detokenize.ok()) CheckRefusal(detokenize.status());

  // The GGUF's tokenizer.chat_template is file input too: detection must always pick one.
  bool recognised = false;
  const models::ChatTemplate& detected = models::DetectChatTemplate(body, &recognised);
  CHECK(detected.render != nullptr);
  return 0;
}
