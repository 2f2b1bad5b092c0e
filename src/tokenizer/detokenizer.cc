#include "tokenizer/detokenizer.h"

#include "tokenizer/unicode.h"

namespace vlserve::tokenizer {

std::string SanitizeUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t start = pos;
    const uint32_t cp = DecodeUtf8(bytes, &pos);
    const size_t len = pos - start;
    // DecodeUtf8 is lenient (the pre-tokenizers need that); output must be strictly valid
    // UTF-8 for JSON: overlong forms, surrogates and code points past U+10FFFF become
    // U+FFFD for their lead byte, and decoding resumes at the next byte. A real U+FFFD in
    // the input is three bytes long and is copied as is.
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                          (len == 4 && cp < 0x10000);
    const bool invalid = (cp == 0xFFFD && len == 1) || overlong ||
                         (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF;
    if (invalid) {
      AppendUtf8(0xFFFD, &out);
      pos = start + 1;
    } else {
      out.append(bytes.substr(start, pos - start));
    }
  }
  return out;
}

std::string StreamingDetokenizer::Push(int32_t id) {
  std::string_view piece = tokenizer_.Piece(id, options_.render_special);
  if (piece.empty()) return {};
  if (!started_) {
    started_ = true;
    if (tokenizer_.kind() == ModelKind::kSpm && tokenizer_.add_space_prefix() &&
        options_.strip_space_prefix && piece.front() == ' ') {
      piece.remove_prefix(1);
    }
  }
  pending_.append(piece);
  const size_t complete = CompleteUtf8Prefix(pending_);
  std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, complete));
  pending_.erase(0, complete);
  return out;
}

std::string StreamingDetokenizer::Flush() {
  // pending_ only ever holds the start of one character that never completed.
  std::string out;
  if (!pending_.empty()) AppendUtf8(0xFFFD, &out);
  pending_.clear();
  started_ = false;
  return out;
}

}  // namespace vlserve::tokenizer
