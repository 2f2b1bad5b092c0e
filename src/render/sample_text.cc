#include "render/sample_text.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

namespace vlserve::render {
namespace {

// xorshift64*: small, fast, identical on every platform.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  int Uniform(int n) { return static_cast<int>((Next() >> 33) % static_cast<uint64_t>(n)); }
};

constexpr std::array<std::string_view, 120> kWords = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with",
    "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but",
    "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her",
    "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
    "model", "context", "window", "attention", "memory", "document", "page", "image",
    "language", "compression", "visual", "tokens", "reading", "characters", "research",
    "experiment", "result", "system", "between", "through", "however", "important",
    "understanding", "information", "different", "government", "development", "history",
    "question", "village", "river", "morning", "evening", "children", "teacher", "letter",
    "journey", "mountain", "harbour", "library", "century", "country", "problem", "answer",
    "measurement", "performance", "long", "small", "early", "quickly", "carefully", "often",
    "never", "always", "together", "himself", "herself", "something", "everything",
    "nothing", "because", "although", "whether", "several", "another", "without", "during",
    "before", "after", "against", "toward",
};

constexpr std::array<std::string_view, 48> kHanWords = {
    "我们", "研究", "模型", "上下文", "视觉", "压缩", "文本", "图像", "页面", "理解",
    "语言", "长度", "方法", "实验", "结果", "表明", "可以", "通过", "进行", "一个",
    "这个", "问题", "系统", "数据", "时间", "发展", "社会", "历史", "学生", "老师",
    "城市", "河流", "山上", "早晨", "晚上", "孩子", "书信", "旅行", "世纪", "国家",
    "答案", "测量", "性能", "重要", "信息", "不同", "已经", "非常",
};

}  // namespace

std::string SampleEnglish(size_t bytes, uint64_t seed, bool newlines) {
  Rng rng(seed);
  std::string out;
  out.reserve(bytes + 256);
  int sentences_left = 3 + rng.Uniform(5);
  while (out.size() < bytes) {
    const int words = 6 + rng.Uniform(15);
    for (int w = 0; w < words; ++w) {
      std::string_view word = kWords[rng.Uniform(static_cast<int>(kWords.size()))];
      const size_t start = out.size();
      out.append(word);
      if (w == 0) out[start] = static_cast<char>(std::toupper(out[start]));
      if (w + 1 < words) out.append(rng.Uniform(8) == 0 ? ", " : " ");
    }
    out.append(rng.Uniform(10) == 0 ? "?" : ".");
    if (--sentences_left == 0) {
      out.push_back(newlines ? '\n' : ' ');
      sentences_left = 3 + rng.Uniform(5);
    } else {
      out.push_back(' ');
    }
  }
  out.resize(bytes);
  // Never end inside a multi-byte sequence (all ASCII here) or with a dangling space.
  return out;
}

std::string SampleChinese(size_t bytes, uint64_t seed) {
  Rng rng(seed);
  std::string out;
  out.reserve(bytes + 64);
  int sentences_left = 3 + rng.Uniform(4);
  while (out.size() < bytes) {
    const int words = 6 + rng.Uniform(12);
    for (int w = 0; w < words; ++w) {
      out.append(kHanWords[rng.Uniform(static_cast<int>(kHanWords.size()))]);
      if (w + 1 < words && rng.Uniform(6) == 0) out.append("，");
    }
    out.append("。");
    if (--sentences_left == 0) {
      out.push_back('\n');
      sentences_left = 3 + rng.Uniform(4);
    }
  }
  // Cut at a character boundary.
  size_t cut = std::min(bytes, out.size());
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out;
}

}  // namespace vlserve::render
