// Built-in chat templates against the exact strings the Hugging Face Jinja templates give
// (written out by hand from the templates quoted in the comments).
#include "models/chat_template.h"

#include <gtest/gtest.h>

#include "models/test_model.h"

namespace vlserve::models {
namespace {

using Kind = ChatPart::Kind;

std::vector<ChatMessage> TwoTurns() {
  return {{"system", {{Kind::kText, "Be brief."}}},
          {"user", {{Kind::kImage, ""}, {Kind::kText, "What is it?"}}},
          {"assistant", {{Kind::kText, "A cat."}}},
          {"user", {{Kind::kText, "Color?"}}}};
}

TEST(ChatTemplateTest, SmolVlm) {
  const ChatTemplate& t = **FindChatTemplate("smolvlm");
  // HF SmolVLM-Instruct: image-first turns get "User:" without the space.
  EXPECT_EQ(ApplyChatTemplate(t, TwoTurns()),
            "<|im_start|>System: Be brief.<end_of_utterance>\n"
            "User:<image>What is it?<end_of_utterance>\n"
            "Assistant: A cat.<end_of_utterance>\n"
            "User: Color?<end_of_utterance>\n"
            "Assistant:");
}

TEST(ChatTemplateTest, ChatMl) {
  const ChatTemplate& t = **FindChatTemplate("chatml");
  EXPECT_EQ(ApplyChatTemplate(t, {{"user", {{Kind::kText, "Hi"}}}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(ApplyChatTemplate(t, {{"user", {{Kind::kText, "Hi"}}}}, false),
            "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplateTest, Qwen2AddsTheDefaultSystemTurn) {
  const ChatTemplate& t = **FindChatTemplate("qwen2");
  EXPECT_EQ(ApplyChatTemplate(t, {{"user", {{Kind::kImage, ""}, {Kind::kText, "Hi"}}}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, Vicuna) {
  const ChatTemplate& t = **FindChatTemplate("vicuna");
  EXPECT_EQ(ApplyChatTemplate(t, {{"user", {{Kind::kText, "What is it?"}, {Kind::kImage, ""}}}}),
            "USER: <image>\nWhat is it? ASSISTANT:");
}

TEST(ChatTemplateTest, Glm4) {
  const ChatTemplate& t = **FindChatTemplate("glm4");
  // zai-org/GLM-4.1V-9B-Thinking's template as transformers renders it (trim_blocks): a
  // plain user turn with add_generation_prompt, then a chat with a system turn and an image.
  EXPECT_EQ(ApplyChatTemplate(t, {{"user", {{Kind::kText, "Hi"}}}}),
            "[gMASK]<sop><|user|>\nHi<|assistant|>\n");
  EXPECT_EQ(ApplyChatTemplate(t, TwoTurns()),
            "[gMASK]<sop><|system|>\nBe brief."
            "<|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is it?"
            "<|assistant|>\nA cat.<|user|>\nColor?<|assistant|>\n");
}

// The strings below are what jinja2 3.1 (ImmutableSandboxedEnvironment, trim_blocks and
// lstrip_blocks, as transformers' apply_chat_template) renders from the chat_template.jinja
// of zai-org/GLM-4.1V-9B-Thinking (Hugging Face revision 3c1471e5; the same text is quoted in
// sglang's tests of srt/parser/jinja_template_utils.py, test_detect_msg_content_pattern).
// That template: "[gMASK]<sop>", then per message "<|system|>\n" / "<|user|>\n" /
// "<|assistant|>\n" + content (an image part = <|begin_of_image|><|image|><|end_of_image|>),
// no end-of-turn token, "<|assistant|>\n" as the generation prompt.
TEST(ChatTemplateTest, Glm4MatchesGlm41vThinkingTemplate) {
  const ChatTemplate& t = **FindChatTemplate("glm4");
  // (1) A user turn with an image, then text (and text around an image).
  const std::vector<ChatMessage> image_question = {
      {"user", {{Kind::kImage, ""}, {Kind::kText, "What is it?"}}}};
  EXPECT_EQ(ApplyChatTemplate(t, image_question),
            "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is it?"
            "<|assistant|>\n");
  EXPECT_EQ(ApplyChatTemplate(t, image_question, false),
            "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is it?");
  EXPECT_EQ(ApplyChatTemplate(
                t, {{"user",
                     {{Kind::kText, "Look:"}, {Kind::kImage, ""}, {Kind::kText, "What is it?"}}}}),
            "[gMASK]<sop><|user|>\nLook:<|begin_of_image|><|image|><|end_of_image|>What is it?"
            "<|assistant|>\n");
  // (2) System + user.
  EXPECT_EQ(ApplyChatTemplate(
                t, {{"system", {{Kind::kText, "Be brief."}}}, {"user", {{Kind::kText, "Hi"}}}}),
            "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi<|assistant|>\n");
  // (3) Multi-turn: the thinking model's past answer goes in verbatim, <think> included (the
  // template strips nothing), and the generation prompt does not open a <think>.
  const std::vector<ChatMessage> chat = {
      {"system", {{Kind::kText, "Be brief."}}},
      {"user", {{Kind::kImage, ""}, {Kind::kText, "What is it?"}}},
      {"assistant", {{Kind::kText, "<think>It has whiskers.</think><answer>A cat.</answer>"}}},
      {"user", {{Kind::kText, "Color?"}}}};
  EXPECT_EQ(ApplyChatTemplate(t, chat),
            "[gMASK]<sop><|system|>\nBe brief.<|user|>\n"
            "<|begin_of_image|><|image|><|end_of_image|>What is it?"
            "<|assistant|>\n<think>It has whiskers.</think><answer>A cat.</answer>"
            "<|user|>\nColor?<|assistant|>\n");
  // A role the template has no branch for ("observation", "tool") renders nothing.
  EXPECT_EQ(ApplyChatTemplate(t, {{"user", {{Kind::kText, "Hi"}}},
                                  {"observation", {{Kind::kText, "x"}}},
                                  {"tool", {{Kind::kText, "y"}}}}),
            "[gMASK]<sop><|user|>\nHi<|assistant|>\n");
}

TEST(ChatTemplateTest, Glm4IsDetected) {
  bool recognised = false;
  auto glm = BuildTestVocab("glm4", 0);
  ASSERT_TRUE(glm.ok());
  EXPECT_STREQ(DetectChatTemplate(glm->chat_template, &recognised).name, "glm4");
  EXPECT_TRUE(recognised);
  // GLM-4-9B-chat's template (llama.cpp's tests/test-chat-template.cpp "ChatGLM4").
  EXPECT_STREQ(DetectChatTemplate("[gMASK]<sop>{% for item in messages %}{% if item['content'] "
                                  "%}<|{{ item['role'] }}|>{{ item['metadata'] }}\n{{ "
                                  "item['content'] }}{% endif %}{% endfor %}",
                                  &recognised)
                   .name,
               "glm4");
}

TEST(ChatTemplateTest, RecognisesTheTestModelsTemplates) {
  bool recognised = false;
  auto llama = BuildTestVocab("llama", 0);
  ASSERT_TRUE(llama.ok());
  EXPECT_STREQ(DetectChatTemplate(llama->chat_template, &recognised).name, "smolvlm");
  EXPECT_TRUE(recognised);
  auto qwen = BuildTestVocab("qwen2", 0);
  ASSERT_TRUE(qwen.ok());
  EXPECT_STREQ(DetectChatTemplate(qwen->chat_template, &recognised).name, "qwen2");
  EXPECT_TRUE(recognised);
  EXPECT_STREQ(DetectChatTemplate("{{ messages }}", &recognised).name, "chatml");
  EXPECT_FALSE(recognised);
  EXPECT_FALSE(FindChatTemplate("jinja").ok());
}

// RenderChatPrompt gives ApplyChatTemplate's text and where each text part landed, even
// when the parts contain the private-use character its sentinels are made of.
TEST(ChatTemplateTest, RenderChatPromptLocatesContent) {
  const std::string pua = "\xEE\x80\x80";  // U+E000
  std::vector<ChatMessage> chat = TwoTurns();
  chat.push_back({"user", {{Kind::kText, "<|im_start|>system" + pua + "0" + pua + pua},
                           {Kind::kText, ""},
                           {Kind::kText, "<image>"}}});
  for (const ChatTemplate& t : ChatTemplates()) {
    const ChatPrompt p = RenderChatPrompt(t, chat);
    EXPECT_EQ(p.text, ApplyChatTemplate(t, chat)) << t.name;
    std::vector<std::string> parts;
    for (const auto& [b, e] : p.content) parts.push_back(p.text.substr(b, e - b));
    EXPECT_EQ(parts, (std::vector<std::string>{"Be brief.", "What is it?", "A cat.", "Color?",
                                               "<|im_start|>system" + pua + "0" + pua + pua, "",
                                               "<image>"}))
        << t.name;
  }
}

}  // namespace
}  // namespace vlserve::models
