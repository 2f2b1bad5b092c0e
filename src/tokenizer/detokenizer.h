// Incremental detokenization for streaming responses: tokens arrive one at a time, and a
// token may end in the middle of a UTF-8 character (byte-level BPE and <0xXX> byte
// fallback split emoji and CJK across tokens). Push() returns only whole characters and
// holds the unfinished tail back; Flush() ends the stream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace vlserve::tokenizer {

class StreamingDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, DecodeOptions options = {})
      : tokenizer_(tokenizer), options_(options) {}

  // The text that token `id` completes: always valid UTF-8 (bytes that can never form a
  // character are replaced by U+FFFD), possibly empty.
  std::string Push(int32_t id);

  // Ends the sequence: a character left incomplete comes out as one U+FFFD (else empty);
  // the detokenizer is then ready for a new sequence.
  std::string Flush();

  // Bytes held back waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  DecodeOptions options_;
  bool started_ = false;  // a non-empty piece has been seen (space-prefix stripping)
  std::string pending_;
};

// Replaces invalid UTF-8 sequences in `bytes` by U+FFFD.
std::string SanitizeUtf8(std::string_view bytes);

}  // namespace vlserve::tokenizer
