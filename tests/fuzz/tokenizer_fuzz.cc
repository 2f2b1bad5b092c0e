// libFuzzer target for the tokenizer on arbitrary bytes (src/tokenizer/): a hand-built
// byte-level BPE and SentencePiece vocabulary with control and user-defined tokens, plus
// the real GPT-2 and LLaMA SentencePiece vocabularies from ../shared/vocab when present.
// Properties, for every text:
//  - byte-level BPE: Decode(Encode(text)) == text, with or without special-token parsing
//    (parsed control tokens are rendered back with render_special);
//  - SentencePiece: the same when no special token splits the text and the text has no
//    U+2581 (the space marker itself; the encoder maps ' ' to it);
//  - the streaming detokenizer's output equals the one-shot Decode with invalid UTF-8
//    replaced (SanitizeUtf8), except that a character left incomplete at the end comes
//    out as one U+FFFD (Flush) where SanitizeUtf8 gives one per byte;
//  - the input read as raw token ids (any int32, out of range included) decodes without
//    error, one-shot and streamed.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/check.h"
#include "tokenizer/bpe.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

namespace tok = vlserve::tokenizer;
using tok::TokenType;

constexpr size_t kMaxTextBytes = 4096;

tok::TokenizerConfig HandBpe() {
  tok::TokenizerConfig c;
  c.model = "gpt2";
  c.pre = "qwen2";
  for (int b = 0; b < 256; ++b) c.tokens.push_back(tok::ByteToUnicode()[b]);
  const std::string space = tok::ByteToUnicode()[' '];
  for (const std::string& t : {std::string("he"), std::string("ll"), std::string("hell"),
                               std::string("hello"), space + "w", space + "wo", std::string("<|im_end|>"),
                               std::string("<tool>"), std::string("<tool><x>")}) {
    c.tokens.push_back(t);
  }
  c.merges = {"h e", "l l", "he ll", "hell o", space + " w", space + "w o"};
  c.token_types.assign(c.tokens.size(), TokenType::kNormal);
  c.token_types[262] = c.token_types[264] = TokenType::kControl;  // <|im_end|>, <tool><x>
  c.token_types[263] = TokenType::kUserDefined;                   // <tool>
  c.eos_id = 262;
  return c;
}

tok::TokenizerConfig HandSpm() {
  tok::TokenizerConfig c;
  c.model = "llama";
  c.tokens = {"<unk>", "<s>", "</s>"};
  c.token_types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    c.tokens.push_back(hex);
    c.token_types.push_back(TokenType::kByte);
  }
  const std::pair<const char*, float> extra[] = {
      {"\xE2\x96\x81", -1}, {"h", -2}, {"e", -2}, {"l", -2}, {"o", -2}, {"he", -3},
      {"ll", -3}, {"hell", -4}, {"hello", -5}, {"\xE2\x96\x81h", -4}, {"\xE4\xBD\xA0", -2},
      {"<tool>", 0}};
  for (const auto& [text, score] : extra) {
    c.tokens.push_back(text);
    c.token_types.push_back(TokenType::kNormal);
  }
  c.token_types.back() = TokenType::kUserDefined;
  c.scores.assign(c.tokens.size(), 0.0f);
  for (size_t i = 0; i < std::size(extra); ++i) c.scores[259 + i] = extra[i].second;
  c.unk_id = 0, c.bos_id = 1, c.eos_id = 2;
  return c;
}

std::vector<std::unique_ptr<tok::Tokenizer>> MakeTokenizers() {
  std::vector<std::unique_ptr<tok::Tokenizer>> all;
  for (tok::TokenizerConfig c : {HandBpe(), HandSpm()}) {
    auto t = tok::Tokenizer::Create(std::move(c));
    CHECK(t.ok()) << t.status().ToString();
    all.push_back(std::move(*t));
  }
  // Real vocabularies (tests that need ../shared skip without it; so does this part).
  const std::filesystem::path shared = std::filesystem::path(VLSERVE_SOURCE_DIR) / "../shared/vocab";
  for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf"}) {
    if (!std::filesystem::exists(shared / name)) continue;
    auto t = tok::LoadTokenizerFromGguf((shared / name).string());
    CHECK(t.ok()) << t.status().ToString();
    all.push_back(std::move(*t));
  }
  return all;
}

// What streaming `ids` must give: Decode, sanitised, with an unfinished tail as one U+FFFD.
std::string ExpectedStream(std::string_view decoded) {
  const size_t complete = tok::CompleteUtf8Prefix(decoded);
  std::string out = tok::SanitizeUtf8(decoded.substr(0, complete));
  if (complete < decoded.size()) out += "\xEF\xBF\xBD";
  return out;
}

bool HasSpecial(const tok::Tokenizer& t, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    const TokenType type = t.token_type(id);
    if (type == TokenType::kControl || type == TokenType::kUserDefined ||
        type == TokenType::kUnknown) {
      return true;
    }
  }
  return false;
}

std::string Streamed(const tok::Tokenizer& t, const std::vector<int32_t>& ids,
                     const tok::DecodeOptions& options) {
  tok::StreamingDetokenizer stream(t, options);
  std::string out;
  for (int32_t id : ids) out += stream.Push(id);
  out += stream.Flush();
  CHECK(stream.pending_bytes() == 0);
  return out;
}

void CheckText(const tok::Tokenizer& t, std::string_view text) {
  const bool bpe = t.kind() == tok::ModelKind::kBpe;
  for (bool parse_special : {false, true}) {
    const std::vector<int32_t> ids =
        t.Encode(text, {.add_special = false, .parse_special = parse_special});
    for (int32_t id : ids) CHECK(id >= 0 && id < t.vocab_size()) << id;
    const tok::DecodeOptions options{.render_special = parse_special};
    const std::string decoded = t.Decode(ids, options);
    const bool round_trips =
        bpe || (!HasSpecial(t, ids) && text.find("\xE2\x96\x81") == std::string_view::npos);
    if (round_trips) {
      CHECK(decoded == text) << (bpe ? "BPE" : "SPM") << " round trip of " << text.size()
                             << " bytes gave " << decoded.size() << " bytes";
    }
    CHECK(Streamed(t, ids, options) == ExpectedStream(decoded));
  }
  // With BOS/EOS as the model adds them: only that they are there and decode.
  const std::vector<int32_t> with_special = t.Encode(text, {.add_special = true});
  if (t.add_bos()) CHECK(!with_special.empty() && with_special.front() == t.bos_id());
  (void)t.Decode(with_special);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::unique_ptr<tok::Tokenizer>> tokenizers = MakeTokenizers();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.size() > kMaxTextBytes) text = text.substr(0, kMaxTextBytes);
  std::vector<int32_t> raw_ids(size / 4);
  if (!raw_ids.empty()) std::memcpy(raw_ids.data(), data, raw_ids.size() * 4);
  for (const auto& t : tokenizers) {
    CheckText(*t, text);
    for (bool render_special : {false, true}) {
      const tok::DecodeOptions options{.render_special = render_special};
      CHECK(Streamed(*t, raw_ids, options) == ExpectedStream(t->Decode(raw_ids, options)));
    }
  }
  return 0;
}
