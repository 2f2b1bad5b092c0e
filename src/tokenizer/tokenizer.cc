#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>

#include "base/log.h"
#include "tokenizer/unicode.h"

namespace vlserve::tokenizer {
namespace {

constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// Token texts that end a turn (llama.cpp's EOG list, the part relevant to our models).
constexpr std::string_view kEndOfGenerationTexts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "<|eom_id|>",
    "<end_of_utterance>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81"
    "of\xE2\x96\x81"
    "sentence\xEF\xBD\x9C>",  // DeepSeek
};

// "<0xAB>" -> 0xAB, or -1.
int ParseByteToken(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int v = 0;
  for (const char c : text.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else
      return -1;
  }
  return v;
}

std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    out.append(s.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos));
    if (hit == std::string_view::npos) return out;
    out.append(to);
    pos = hit + from.size();
  }
}

// Byte-level alphabet -> raw bytes; characters outside the alphabet pass through.
std::string DecodeByteLevel(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const int b = UnicodeToByte(DecodeUtf8(text, &pos));
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      out.append(text.substr(start, pos - start));
    }
  }
  return out;
}

// Byte-level BPE input is cut into chunks of about this size so the pre-tokenizer's
// scratch (code points, flags, offsets: ~9 bytes per input byte) stays cache-sized.
constexpr size_t kChunkBytes = size_t{1} << 16;

// A cut before position p (p >= 1) gives the same words as no cut, for every supported
// pre-tokenizer, when text[p-1] is a printable non-space ASCII character, text[p] is a
// space and text[p+1] an ASCII letter: no pattern matches across a non-space -> space
// transition, and " X" starts a word (` ?\p{L}+`, `[^\r\n\p{L}\p{N}]?\p{L}+`,
// `\s?\p{L}+`) whatever came before. Except where words span single spaces between
// letters (exaone-moe): there text[p-1] must not be a letter either. Returns npos if there
// is no such p at or after `from`.
size_t FindSafeCut(std::string_view text, size_t from, bool words_span_spaces) {
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  for (size_t p = std::max<size_t>(from, 1); p + 1 < text.size(); ++p) {
    if (text[p] == ' ' && alpha(text[p + 1]) && text[p - 1] > ' ' && text[p - 1] < 0x7F &&
        !(words_span_spaces && alpha(text[p - 1]))) {
      return p;
    }
  }
  return std::string_view::npos;
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(TokenizerConfig config) {
  std::unique_ptr<Tokenizer> t(new Tokenizer(std::move(config)));
  RETURN_IF_ERROR(t->Init());
  return t;
}

Status Tokenizer::Init() {
  TokenizerConfig& c = config_;
  if (c.model == "gpt2") {
    kind_ = ModelKind::kBpe;
  } else if (c.model == "llama") {
    kind_ = ModelKind::kSpm;
  } else {
    return UnimplementedError("tokenizer model '" + c.model +
                              "' (tokenizer.ggml.model) is not supported; supported: gpt2 "
                              "(byte-level BPE), llama (SentencePiece)");
  }
  if (c.tokens.empty()) return InvalidArgumentError("tokenizer has an empty vocabulary");
  const size_t n = c.tokens.size();
  if (!c.token_types.empty() && c.token_types.size() != n) {
    return InvalidArgumentError("tokenizer has " + std::to_string(c.token_types.size()) +
                                " token types for " + std::to_string(n) + " tokens");
  }
  if (!c.scores.empty() && c.scores.size() != n) {
    return InvalidArgumentError("tokenizer has " + std::to_string(c.scores.size()) +
                                " scores for " + std::to_string(n) + " tokens");
  }
  if (c.token_types.empty()) c.token_types.assign(n, TokenType::kNormal);
  for (int32_t* id : {&c.bos_id, &c.eos_id, &c.eot_id, &c.eom_id, &c.unk_id, &c.pad_id}) {
    if (*id >= static_cast<int64_t>(n)) {
      LOG_WARN("special token id {} is outside the vocabulary ({} tokens); ignoring it", *id, n);
      *id = -1;
    }
  }
  RETURN_IF_ERROR(InitModel());
  text_to_id_.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) text_to_id_.emplace(c.tokens[i], static_cast<int32_t>(i));
  BuildPieces();
  BuildSpecialMatcher();
  for (int32_t id : {c.eos_id, c.eot_id, c.eom_id}) {
    if (id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) == eog_ids_.end()) {
      eog_ids_.push_back(id);
    }
  }
  for (std::string_view text : kEndOfGenerationTexts) {
    const int32_t id = FindToken(text);
    if (id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) == eog_ids_.end()) {
      eog_ids_.push_back(id);
    }
  }
  return OkStatus();
}

// The BPE or SentencePiece model and the per-model BOS / space-prefix defaults.
Status Tokenizer::InitModel() {
  TokenizerConfig& c = config_;
  if (kind_ == ModelKind::kBpe) {
    if (c.pre.empty()) c.pre = "default";
    ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::Create(c.pre));
    pre_ = pre;
    ASSIGN_OR_RETURN(BpeModel bpe, BpeModel::Create(c.tokens, c.merges, pre.ignore_merges()));
    bpe_ = std::move(bpe);
    add_bos_ = c.add_bos.value_or(pre.add_bos_default());
    add_space_prefix_ = c.add_space_prefix.value_or(false);
  } else {
    spm_.emplace(c.tokens, c.scores, c.unk_id);
    add_bos_ = c.add_bos.value_or(true);
    add_space_prefix_ = c.add_space_prefix.value_or(true);
  }
  add_eos_ = c.add_eos.value_or(false);
  if (add_bos_ && c.bos_id < 0) {
    return InvalidArgumentError(
        "tokenizer.ggml.add_bos_token is true but there is no BOS "
        "token (tokenizer.ggml.bos_token_id)");
  }
  if (add_eos_ && c.eos_id < 0) {
    return InvalidArgumentError(
        "tokenizer.ggml.add_eos_token is true but there is no EOS "
        "token (tokenizer.ggml.eos_token_id)");
  }
  return OkStatus();
}

void Tokenizer::BuildPieces() {
  const size_t n = config_.tokens.size();
  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = config_.tokens[i];
    switch (config_.token_types[i]) {
      case TokenType::kControl:
      case TokenType::kUnknown:
      case TokenType::kUserDefined:
        pieces_[i] = text;
        break;
      case TokenType::kByte: {
        const int b = ParseByteToken(text);
        pieces_[i] = b >= 0 ? std::string(1, static_cast<char>(b)) : text;
        break;
      }
      case TokenType::kNormal:
        pieces_[i] =
            kind_ == ModelKind::kSpm ? ReplaceAll(text, kSpaceEscape, " ") : DecodeByteLevel(text);
        break;
      case TokenType::kUnused:
      case TokenType::kUndefined:
        break;  // llama.cpp renders these as nothing
    }
  }
}

void Tokenizer::BuildSpecialMatcher() {
  specials_by_byte_.assign(256, {});
  for (size_t i = 0; i < config_.tokens.size(); ++i) {
    const TokenType type = config_.token_types[i];
    const bool user = type == TokenType::kUserDefined;
    const bool control = type == TokenType::kControl || type == TokenType::kUnknown;
    const std::string& text = config_.tokens[i];
    if ((!user && !control) || text.empty()) continue;
    specials_by_byte_[static_cast<uint8_t>(text[0])].push_back(
        {text, static_cast<int32_t>(i), control});
    has_user_defined_ |= user;
    has_control_ |= control;
  }
  for (auto& bucket : specials_by_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [](const Special& a, const Special& b) {
      return a.text.size() > b.text.size();
    });
  }
}

template <typename OnText, typename OnToken>
void Tokenizer::Partition(std::string_view text, bool parse_special, OnText on_text,
                          OnToken on_token) const {
  if (!has_user_defined_ && !(parse_special && has_control_)) {
    if (!text.empty()) on_text(text);
    return;
  }
  size_t run = 0;
  size_t i = 0;
  while (i < text.size()) {
    const Special* hit = nullptr;
    for (const Special& s : specials_by_byte_[static_cast<uint8_t>(text[i])]) {
      if ((parse_special || !s.control) && text.substr(i, s.text.size()) == s.text) {
        hit = &s;
        break;  // the bucket is sorted longest first
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    if (run < i) on_text(text.substr(run, i - run));
    on_token(hit->id);
    i += hit->text.size();
    run = i;
  }
  if (run < text.size()) on_text(text.substr(run));
}

void Tokenizer::EncodeText(std::string_view text, bool after_special,
                           std::vector<int32_t>* out) const {
  if (kind_ == ModelKind::kBpe) {
    thread_local std::vector<std::string_view> words;
    // superbpe splits only at numbers: its words span spaces, so nothing is a safe cut.
    const bool chunked = pre_->kind() != PreTokenizerKind::kSuperBpe;
    while (!text.empty()) {
      const size_t cut =
          chunked && text.size() > kChunkBytes
              ? FindSafeCut(text, kChunkBytes, pre_->kind() == PreTokenizerKind::kExaoneMoe)
              : std::string_view::npos;
      const std::string_view chunk = text.substr(0, cut);
      words.clear();
      pre_->Split(chunk, &words);
      for (std::string_view w : words) bpe_->EncodeWord(w, out);
      text.remove_prefix(chunk.size());
    }
    return;
  }
  // SentencePiece: a space in front of text that starts the input or follows a special
  // token (llama.cpp's is_prev_special rule), then every space becomes U+2581.
  std::string prefixed;
  if (add_space_prefix_ && after_special) prefixed = " ";
  prefixed.append(text);
  spm_->Encode(ReplaceAll(prefixed, " ", kSpaceEscape), out);
}

void Tokenizer::Encode(std::string_view text, const EncodeOptions& options,
                       std::vector<int32_t>* out) const {
  if (options.add_special && add_bos_) out->push_back(config_.bos_id);
  bool after_special = true;
  Partition(
      text, options.parse_special,
      [&](std::string_view run) {
        EncodeText(run, after_special, out);
        after_special = false;
      },
      [&](int32_t id) {
        out->push_back(id);
        after_special = true;
      });
  if (options.add_special && add_eos_) out->push_back(config_.eos_id);
}

void Tokenizer::EncodeSpans(std::span<const TextSpan> spans, const EncodeOptions& options,
                            std::vector<int32_t>* out) const {
  if (options.add_special && add_bos_) out->push_back(config_.bos_id);
  bool after_special = true;
  std::string run;  // text since the last special token, possibly from several spans
  auto flush = [&] {
    if (run.empty()) return;
    EncodeText(run, after_special, out);
    after_special = false;
    run.clear();
  };
  for (const TextSpan& span : spans) {
    Partition(
        span.text, span.parse_special, [&](std::string_view text) { run.append(text); },
        [&](int32_t id) {
          flush();
          out->push_back(id);
          after_special = true;
        });
  }
  flush();
  if (options.add_special && add_eos_) out->push_back(config_.eos_id);
}

std::vector<int32_t> Tokenizer::EncodeSpans(std::span<const TextSpan> spans,
                                            const EncodeOptions& options) const {
  std::vector<int32_t> out;
  EncodeSpans(spans, options, &out);
  return out;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  Encode(text, options, &out);
  return out;
}

std::string_view Tokenizer::Piece(int32_t id, bool render_special) const {
  if (id < 0 || id >= vocab_size()) return {};
  const TokenType type = config_.token_types[id];
  if (!render_special && (type == TokenType::kControl || type == TokenType::kUnknown)) {
    return {};
  }
  return pieces_[id];
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string out;
  bool strip = kind_ == ModelKind::kSpm && add_space_prefix_ && options.strip_space_prefix;
  for (const int32_t id : ids) {
    std::string_view piece = Piece(id, options.render_special);
    if (piece.empty()) continue;
    if (strip && piece.front() == ' ') piece.remove_prefix(1);
    strip = false;
    out.append(piece);
  }
  return out;
}

TokenType Tokenizer::token_type(int32_t id) const {
  return (id < 0 || id >= vocab_size()) ? TokenType::kUndefined : config_.token_types[id];
}

std::string_view Tokenizer::token_text(int32_t id) const {
  return (id < 0 || id >= vocab_size()) ? std::string_view() : config_.tokens[id];
}

int32_t Tokenizer::FindToken(std::string_view text) const {
  auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? -1 : it->second;
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

}  // namespace vlserve::tokenizer
