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

}  // namespace
}  // namespace vlserve::models
