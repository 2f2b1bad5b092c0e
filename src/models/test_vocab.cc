// The byte-level BPE vocabulary of test models (see test_model.h). Merges are learned by
// plain frequent-pair BPE over a built-in English text, ties broken by the pair's text, so
// the vocabulary is the same everywhere. A few fixed merges follow the learned ones (see
// kFixedMerges), and the family's special tokens fill the vocabulary to 512.
#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <utility>

#include "models/test_model.h"

namespace vlserve::models {
namespace {

constexpr std::string_view kTrainingText =
    "The quick brown fox jumps over the lazy dog. A small model reads a page of text and "
    "answers a question about it. When the image arrives, the server decodes it, resizes "
    "it, and splits it into tiles; the vision tower turns every tile into a sequence of "
    "embeddings, and the language model reads them together with the question. This is "
    "the whole pipeline, and every stage is timed. The weather was warm and the river was "
    "calm, so the children walked along the shore and counted the boats that were sailing "
    "towards the harbour. There were seven of them, then eight, then there were too many "
    "to count. In the evening the lights of the town came on one by one, and the people "
    "went home to eat their dinner and to talk about the day. What is the capital of "
    "France? The capital of France is Paris. What is two plus three? It is five. Please "
    "describe the picture in one sentence. The picture shows a cat sitting on a table "
    "next to a cup of coffee and a newspaper. Then the reader turned the page, and the "
    "story went on: the ship had left the port at night, carrying wool, wine and letters "
    "for the island, where nobody had seen a stranger for many years. The captain was "
    "an old woman who knew every rock and every current of the sea. She said that the "
    "weather would change before the morning, and she was right, as she always was. ";

// GPT-2's byte-to-unicode map: printable bytes map to themselves, the rest to U+0100...
// Returns the byte values in GPT-2 vocabulary order and each byte's code point.
void ByteToUnicode(std::vector<int>* order, std::vector<int>* code_point) {
  order->clear();
  code_point->assign(256, 0);
  std::vector<bool> printable(256, false);
  for (int b = 0; b < 256; ++b) {
    printable[b] = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    if (printable[b]) {
      order->push_back(b);
      (*code_point)[b] = b;
    }
  }
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    if (!printable[b]) {
      order->push_back(b);
      (*code_point)[b] = 256 + extra++;
    }
  }
}

std::string Utf8(int cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {  // all our code points are < 0x800
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Splits like the GPT-2 pre-tokenizer does for plain ASCII: " word", "word", digits one
// by one, runs of punctuation with an optional leading space.
std::vector<std::string> PreTokenize(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    if (text[j] == ' ' && j + 1 < text.size() && text[j + 1] != ' ') ++j;
    if (IsLetter(text[j])) {
      while (j < text.size() && IsLetter(text[j])) ++j;
    } else if (text[j] >= '0' && text[j] <= '9') {
      ++j;
    } else {
      const bool space = text[j] == ' ';
      ++j;
      while (!space && j < text.size() && !IsLetter(text[j]) && text[j] != ' ') ++j;
    }
    words.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}

// Learns up to `num_merges` merges; symbols are byte-level token strings.
std::vector<std::pair<std::string, std::string>> LearnMerges(int64_t num_merges,
                                                             const std::vector<int>& cp) {
  std::map<std::vector<std::string>, int64_t> words;
  for (const std::string& w : PreTokenize(kTrainingText)) {
    std::vector<std::string> symbols;
    for (unsigned char c : w) symbols.push_back(Utf8(cp[c]));
    ++words[symbols];
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int64_t>(merges.size()) < num_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [symbols, count] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += count;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();  // highest count; the map order breaks ties
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    const auto pair = best->first;
    merges.push_back(pair);
    std::map<std::vector<std::string>, int64_t> merged;
    for (const auto& [symbols, count] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == pair.first && symbols[i + 1] == pair.second) {
          out.push_back(pair.first + pair.second);
          ++i;
        } else {
          out.push_back(symbols[i]);
        }
      }
      merged[out] += count;
    }
    words = std::move(merged);
  }
  return merges;
}

// Merges appended after the learned ones, in GPT-2 byte-level form ("\u010a" is "\n"):
// the built-in text has no newlines, but SmolLM2's and Qwen2's vocabularies have "\n\n" as
// one token, and llama.cpp's mtmd looks it up as one token (a vocabulary without it makes
// the Idefics3 image prompt "\n\n<fake_token_around_image><global-img>" start with token
// -1). No learned merge involves "\n", so their rank does not change any other split.
constexpr std::pair<std::string_view, std::string_view> kFixedMerges[] = {
    {"\xC4\x8A", "\xC4\x8A"},
};

constexpr std::string_view kSmolVlmTemplate =
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}"
    "{% endif %}";

constexpr std::string_view kQwen2Template =
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}";

// Qwen2-VL-*-Instruct's chat_template, verbatim: a default system turn when the chat does
// not start with one, images as <|vision_start|><|image_pad|><|vision_end|>.
constexpr std::string_view kQwen2VlTemplate =
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

// A GLM-4.1V-style template: [gMASK]<sop>, then <|role|>\n and the content per turn,
// images as <|begin_of_image|><|image|><|end_of_image|>, <|assistant|>\n to answer.
// (Rendered by the built-in "glm4" chat template; llama.cpp detects it as chatglm4.)
constexpr std::string_view kGlm4Template =
    "[gMASK]<sop>{%- for msg in messages %}{%- if msg.role == 'system' %}<|system|>\n"
    "{{ msg.content }}{%- elif msg.role == 'user' %}<|user|>{{ '\\n' }}"
    "{%- if msg.content is string %}"
    "{{ msg.content }}{%- else %}{%- for item in msg.content %}"
    "{%- if item.type == 'image' or 'image' in item %}"
    "<|begin_of_image|><|image|><|end_of_image|>{%- elif item.type == 'text' %}{{ item.text }}"
    "{%- endif %}{%- endfor %}{%- endif %}{%- elif msg.role == 'assistant' %}<|assistant|>\n"
    "{{ msg.content }}{%- endif %}{%- endfor %}{% if add_generation_prompt %}<|assistant|>\n"
    "{% endif %}";

std::vector<std::string> SpecialTokens(std::string_view arch) {
  if (arch == "glm4") {
    // GLM-4's added tokens in their id order (151329...: <|endoftext|>, [MASK], [gMASK],
    // ...), as far as the chat and image prompts use them.
    return {"<|endoftext|>",      "[MASK]",           "[gMASK]",          "[sMASK]",
            "<sop>",              "<eop>",            "<|system|>",       "<|user|>",
            "<|assistant|>",      "<|observation|>",  "<|begin_of_image|>", "<|end_of_image|>",
            "<|begin_of_video|>", "<|end_of_video|>", "<|image|>",        "<|video|>"};
  }
  if (arch == "qwen2" || arch == "qwen2vl" || arch == "qwen3vl") {
    // Qwen2-VL's (and Qwen3-VL's) added tokens in their id order, then InternVL's image markers (InternVL3
    // runs on a qwen2 text model; llama.cpp's mtmd wraps its images in <img>...</img>).
    return {"<|endoftext|>",  "<|im_start|>",   "<|im_end|>",    "<|vision_start|>",
            "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
            "<img>",          "</img>",         "<IMG_CONTEXT>"};
  }
  std::vector<std::string> s = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                "<fake_token_around_image>", "<image>", "<global-img>",
                                "<end_of_utterance>"};
  for (int r = 1; r <= 6; ++r) {
    for (int c = 1; c <= 6; ++c) s.push_back(fmt::format("<row_{}_col_{}>", r, c));
  }
  return s;
}

Status CheckTestArch(std::string_view arch) {
  if (arch != "llama" && arch != "qwen2" && arch != "qwen2vl" && arch != "glm4" &&
      arch != "qwen3vl") {
    return InvalidArgumentError(fmt::format(
        "test models exist for architectures llama, qwen2, qwen2vl, glm4, qwen3vl, not '{}'",
        arch));
  }
  return OkStatus();
}

// Pads `v` with dummies to `vocab_size`, then names the family's special ids and template.
StatusOr<TestVocab> FinishTestVocab(std::string_view arch, int64_t vocab_size, TestVocab v) {
  if (vocab_size != 0 && vocab_size < static_cast<int64_t>(v.tokens.size())) {
    return InvalidArgumentError(fmt::format(
        "vocab={} is smaller than the test vocabulary ({} tokens); use 0 or more", vocab_size,
        v.tokens.size()));
  }
  for (int64_t i = static_cast<int64_t>(v.tokens.size()); i < vocab_size; ++i) {
    v.tokens.push_back(fmt::format("<dummy_{}>", i));
    v.token_types.push_back(1);
  }
  auto id = [&v](std::string_view token) {
    return static_cast<int32_t>(std::find(v.tokens.begin(), v.tokens.end(), token) -
                                v.tokens.begin());
  };
  const std::string base_pre = v.pre;
  if (arch == "glm4") {
    // llama.cpp's Glm4Model.set_vocab: bos = eos = <|endoftext|>, eot = <|user|>.
    v.pre = base_pre.empty() ? "glm4" : base_pre;
    v.bos = id("<|endoftext|>");
    v.eos = id("<|endoftext|>");
    v.eot = id("<|user|>");
    v.pad = id("<|endoftext|>");
    v.chat_template = kGlm4Template;
  } else if (arch == "qwen2" || arch == "qwen2vl" || arch == "qwen3vl") {
    // Qwen3-VL: Qwen2's BPE pre-tokenizer and ChatML with the same vision tokens.
    v.pre = base_pre.empty() ? "qwen2" : base_pre;
    v.bos = id("<|endoftext|>");
    v.eos = id("<|im_end|>");
    v.pad = id("<|endoftext|>");
    v.chat_template = arch == "qwen2" ? kQwen2Template : kQwen2VlTemplate;
  } else {
    v.pre = base_pre.empty() ? "smollm" : base_pre;
    v.bos = id("<|im_start|>");
    v.eos = id("<end_of_utterance>");
    v.pad = id("<|im_end|>");
    v.chat_template = kSmolVlmTemplate;
  }
  return v;
}

}  // namespace

StatusOr<TestVocab> BuildTestVocab(std::string_view arch, int64_t vocab_size) {
  RETURN_IF_ERROR(CheckTestArch(arch));
  // The built-in text supports about this many merges; the default vocabulary is ~512.
  constexpr int64_t kDefaultVocab = 512;
  const std::vector<std::string> specials = SpecialTokens(arch);
  const auto num_fixed = static_cast<int64_t>(std::size(kFixedMerges));
  const int64_t num_merges =
      kDefaultVocab - 256 - static_cast<int64_t>(specials.size()) - num_fixed;
  std::vector<int> order, cp;
  ByteToUnicode(&order, &cp);
  TestVocab v;
  auto add = [&v](const std::string& token, int32_t type) {
    v.tokens.push_back(token);
    v.token_types.push_back(type);
  };
  // SmolLM2 puts the special tokens first; Qwen2 puts them after the BPE tokens.
  const bool specials_first = arch == "llama";
  if (specials_first) for (const std::string& s : specials) add(s, 3);
  for (int b : order) add(Utf8(cp[b]), 1);
  for (const auto& [l, r] : LearnMerges(num_merges, cp)) {
    v.merges.push_back(l + " " + r);
    add(l + r, 1);
  }
  for (const auto& [l, r] : kFixedMerges) {
    v.merges.push_back(fmt::format("{} {}", l, r));
    add(fmt::format("{}{}", l, r), 1);
  }
  if (!specials_first) for (const std::string& s : specials) add(s, 3);
  return FinishTestVocab(arch, vocab_size, std::move(v));
}

StatusOr<TestVocab> BuildTestVocab(std::string_view arch, int64_t vocab_size,
                                   const tokenizer::TokenizerConfig& base) {
  RETURN_IF_ERROR(CheckTestArch(arch));
  if (base.model != "gpt2" || base.merges.empty()) {
    return InvalidArgumentError(fmt::format(
        "a test model's vocabulary must be a byte-level BPE (tokenizer.ggml.model gpt2 with "
        "merges), not '{}'",
        base.model));
  }
  TestVocab v;
  v.tokens = base.tokens;
  v.merges = base.merges;
  v.pre = base.pre.empty() ? "default" : base.pre;
  v.token_types.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    v.token_types.push_back(i < base.token_types.size()
                                ? static_cast<int32_t>(base.token_types[i])
                                : 1);
  }
  // The family's chat and image markers after the file's tokens (as Qwen2 and GLM-4 place
  // their added tokens); one the file already has (GPT-2's <|endoftext|>) keeps its id.
  for (const std::string& s : SpecialTokens(arch)) {
    if (std::find(v.tokens.begin(), v.tokens.end(), s) == v.tokens.end()) {
      v.tokens.push_back(s);
      v.token_types.push_back(3);
    }
  }
  return FinishTestVocab(arch, vocab_size, std::move(v));
}

}  // namespace vlserve::models
