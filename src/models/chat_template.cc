// The built-in chat template table. Each render function reproduces its family's Jinja
// template from Hugging Face byte for byte for text and image parts.
#include "models/chat_template.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace vlserve::models {
namespace {

// Text of a message with image parts replaced by `marker`.
std::string JoinParts(const ChatMessage& message, const char* marker) {
  std::string out;
  for (const ChatPart& part : message.parts) {
    out += part.kind == ChatPart::Kind::kText ? part.text : std::string(marker);
  }
  return out;
}

// ChatML (SmolLM2, Qwen2 text): <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
std::string RenderChatMl(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                         const ChatTemplate& self) {
  std::string out;
  for (const ChatMessage& m : messages) {
    out += "<|im_start|>" + m.role + "\n" + JoinParts(m, self.image_marker) + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// Qwen2 / Qwen2-VL: ChatML with a default system turn when the chat does not start with one.
std::string RenderQwen2(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const ChatTemplate& self) {
  std::string out;
  if (messages.empty() || messages.front().role != "system") {
    out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
  }
  return out + RenderChatMl(messages, add_generation_prompt, self);
}

// SmolVLM (Idefics3), from HuggingFaceTB/SmolVLM-*-Instruct's chat_template:
//   <|im_start|>{for m}{Role}{':' if first part is an image else ': '}{parts}<end_of_utterance>\n
//   {endfor}{'Assistant:' if add_generation_prompt}
// Only the first turn starts with <|im_start|>.
std::string RenderSmolVlm(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                          const ChatTemplate& self) {
  std::string out = "<|im_start|>";
  for (const ChatMessage& m : messages) {
    std::string role = m.role;
    if (!role.empty()) {
      // Jinja's capitalize: first letter upper, the rest lower.
      for (char& c : role) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      role[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(role[0])));
    }
    const bool image_first = !m.parts.empty() && m.parts[0].kind == ChatPart::Kind::kImage;
    out += role + (image_first ? ":" : ": ") + JoinParts(m, self.image_marker) +
           "<end_of_utterance>\n";
  }
  if (add_generation_prompt) out += "Assistant:";
  return out;
}

// Vicuna v1.1 as used by LLaVA-1.5 (llava-hf chat_template):
//   {system} USER: <image>\n{text} ASSISTANT: {answer}</s>USER: ... ASSISTANT:
std::string RenderVicuna(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                         const ChatTemplate& self) {
  std::string out;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      out += JoinParts(m, self.image_marker) + " ";
    } else if (m.role == "assistant") {
      out += "ASSISTANT: " + JoinParts(m, self.image_marker) + "</s>";
    } else {
      // Images first, as the llava-1.5 template emits them before the text.
      std::string images, text;
      for (const ChatPart& p : m.parts) {
        if (p.kind == ChatPart::Kind::kImage) {
          images += self.image_marker;
        } else {
          text += p.text;
        }
      }
      out += "USER: " + images + text + " ";
    }
  }
  if (add_generation_prompt) out += "ASSISTANT:";
  return out;
}

// GLM-4 / GLM-4.1V (zai-org/GLM-4.1V-9B-Thinking's chat_template.jinja, rendered with
// transformers' trim_blocks + lstrip_blocks):
//   [gMASK]<sop>{for m in system|user|assistant}<|role|>\n{parts}{endfor}
//   {'<|assistant|>\n' if add_generation_prompt}
// No separator between turns: the next role token ends the previous turn. Images go where
// they stand among the text parts. Past assistant turns go in verbatim (a <think> block is
// not stripped) and the generation prompt opens no <think>: the model writes it. The
// template has no branch for other roles, so they render nothing (llama.cpp's chatglm4
// writes any role as <|role|>\n).
std::string RenderGlm4(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                       const ChatTemplate& self) {
  std::string out = "[gMASK]<sop>";
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") continue;
    out += "<|" + m.role + "|>\n" + JoinParts(m, self.image_marker);
  }
  if (add_generation_prompt) out += "<|assistant|>\n";
  return out;
}

}  // namespace

const std::vector<ChatTemplate>& ChatTemplates() {
  static const std::vector<ChatTemplate> table = {
      {"glm4", "GLM-4 / GLM-4.1V: [gMASK]<sop><|user|>\\n...<|assistant|>\\n",
       {"[gMASK]<sop>"}, "<|begin_of_image|><|image|><|end_of_image|>", RenderGlm4},
      {"smolvlm", "SmolVLM / Idefics3: <|im_start|>User: ...<end_of_utterance>\\nAssistant:",
       {"<end_of_utterance>"}, "<image>", RenderSmolVlm},
      {"qwen2", "Qwen2 / Qwen2-VL ChatML with the default system turn",
       {"<|im_start|>", "You are a helpful assistant"},
       "<|vision_start|><|image_pad|><|vision_end|>", RenderQwen2},
      {"chatml", "ChatML (SmolLM2, Qwen2): <|im_start|>role\\ncontent<|im_end|>\\n",
       {"<|im_start|>"}, "<image>", RenderChatMl},
      {"vicuna", "Vicuna v1.1 / LLaVA-1.5: USER: <image>\\n... ASSISTANT:",
       {"USER", "ASSISTANT"}, "<image>\n", RenderVicuna},
  };
  return table;
}

std::string ChatTemplateNames() {
  std::string out;
  for (const ChatTemplate& t : ChatTemplates()) {
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

StatusOr<const ChatTemplate*> FindChatTemplate(std::string_view name) {
  for (const ChatTemplate& t : ChatTemplates()) {
    if (name == t.name) return &t;
  }
  return NotFoundError(fmt::format("chat template '{}' is not built in; known: {}", name,
                                   ChatTemplateNames()));
}

const ChatTemplate& DetectChatTemplate(std::string_view gguf_template, bool* recognised) {
  for (const ChatTemplate& t : ChatTemplates()) {
    bool all = !gguf_template.empty();
    for (std::string_view s : t.signature) all = all && gguf_template.find(s) != std::string_view::npos;
    if (all) {
      if (recognised != nullptr) *recognised = true;
      return t;
    }
  }
  if (recognised != nullptr) *recognised = false;
  return **FindChatTemplate("chatml");
}

std::string ApplyChatTemplate(const ChatTemplate& chat_template,
                              const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt) {
  return chat_template.render(messages, add_generation_prompt, chat_template);
}

// Renders with every text part replaced by a sentinel "S<index>S", then puts the parts back
// and records where. S is U+E000 repeated once more than its longest run in any part or
// role, so it cannot come from the messages; the built-in templates' text has none.
ChatPrompt RenderChatPrompt(const ChatTemplate& chat_template,
                            const std::vector<ChatMessage>& messages,
                            bool add_generation_prompt) {
  constexpr std::string_view kPrivateUse = "\xEE\x80\x80";  // U+E000
  size_t longest = 0;
  auto scan = [&](std::string_view s) {
    size_t run = 0;
    for (size_t i = 0; i < s.size();) {
      if (s.substr(i, kPrivateUse.size()) == kPrivateUse) {
        longest = std::max(longest, ++run);
        i += kPrivateUse.size();
      } else {
        run = 0;
        ++i;
      }
    }
  };
  std::vector<std::string_view> originals;  // the text parts, in order
  for (const ChatMessage& m : messages) {
    scan(m.role);
    for (const ChatPart& p : m.parts) {
      if (p.kind != ChatPart::Kind::kText) continue;
      scan(p.text);
      originals.push_back(p.text);
    }
  }
  std::string sentinel;
  for (size_t i = 0; i <= longest; ++i) sentinel += kPrivateUse;
  std::vector<ChatMessage> marked = messages;
  size_t index = 0;
  for (ChatMessage& m : marked) {
    for (ChatPart& p : m.parts) {
      if (p.kind == ChatPart::Kind::kText) p.text = sentinel + std::to_string(index++) + sentinel;
    }
  }
  const std::string rendered = chat_template.render(marked, add_generation_prompt, chat_template);
  ChatPrompt out;
  out.text.reserve(rendered.size());
  for (size_t pos = 0;;) {
    const size_t at = rendered.find(sentinel, pos);
    if (at == std::string::npos) {
      out.text.append(rendered, pos);
      break;
    }
    out.text.append(rendered, pos, at - pos);
    const size_t digits = at + sentinel.size();
    const size_t close = rendered.find(sentinel, digits);
    const std::string_view part = originals[std::stoul(rendered.substr(digits, close - digits))];
    out.content.emplace_back(out.text.size(), out.text.size() + part.size());
    out.text.append(part);
    pos = close + sentinel.size();
  }
  return out;
}

}  // namespace vlserve::models
