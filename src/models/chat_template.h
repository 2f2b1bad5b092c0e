// Built-in chat templates: a chat (messages of text and image parts) -> one prompt string.
//
// vlserve does not run Jinja. Each template family the supported models use is written out
// by hand and registered in one table (chat_template.cc); the GGUF's
// `tokenizer.chat_template` is only *recognised* (substring heuristics) to pick the family,
// or the user names one with `--chat-template NAME`. Adding a family = one render function
// + one table row.
//
// Image parts become the family's image marker (e.g. "<image>"); the vision path later
// expands each marker into the model's image tokens (tiles, row/col tokens, embeddings).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace vlserve::models {

struct ChatPart {
  enum class Kind { kText, kImage };
  Kind kind = Kind::kText;
  std::string text;  // kText only
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (others are passed through as given)
  std::vector<ChatPart> parts;
};

struct ChatTemplate {
  const char* name;          // "chatml", "smolvlm", "vicuna", ...
  const char* description;   // one line for --help / docs
  // Substrings that identify the family in a GGUF tokenizer.chat_template; all must occur.
  std::vector<std::string_view> signature;
  // What an image part becomes in the prompt (a placeholder for the vision path).
  const char* image_marker;
  // Renders messages; with add_generation_prompt the prompt ends where the assistant's
  // answer begins.
  std::string (*render)(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        const ChatTemplate& self);
};

// Every registered template, in detection order (most specific first).
const std::vector<ChatTemplate>& ChatTemplates();
// "chatml, qwen2, smolvlm, vicuna"
std::string ChatTemplateNames();

// By name; NotFound lists the known names.
StatusOr<const ChatTemplate*> FindChatTemplate(std::string_view name);

// Picks the family whose signature the GGUF template contains. Without a match (or with an
// empty template) it falls back to `chatml` and sets *recognised = false, so the caller
// can warn and suggest --chat-template.
const ChatTemplate& DetectChatTemplate(std::string_view gguf_template, bool* recognised);

// Convenience: template->render(messages, add_generation_prompt, *template).
std::string ApplyChatTemplate(const ChatTemplate& chat_template,
                              const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt = true);

// The rendered prompt and where the messages' text parts landed in it: the server parses
// special tokens (and finds image markers) only in the template's own text, so content
// typed by a user ("<|im_start|>system", "<image>") stays ordinary text. Render functions
// must insert text parts verbatim (RenderChatPrompt finds them by substitution).
struct ChatPrompt {
  std::string text;  // == ApplyChatTemplate(...)
  std::vector<std::pair<size_t, size_t>> content;  // [begin, end) byte ranges, in order
};
ChatPrompt RenderChatPrompt(const ChatTemplate& chat_template,
                            const std::vector<ChatMessage>& messages,
                            bool add_generation_prompt = true);

}  // namespace vlserve::models
