// Stop strings across token boundaries.
//
// The detokenizer yields text pieces; a stop string may be split over any number of them.
// StopMatcher holds back the longest tail of the text seen so far that could still grow
// into a stop string, and releases it once it cannot. On a match, the text before the
// stop string is released and the stop string itself (and anything after it) is dropped,
// as OpenAI does.
//
// Works on bytes. With valid UTF-8 pieces and stop strings the held-back tail starts at
// a stop string's first byte, a character boundary, so released text is valid UTF-8.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vlserve {

class StopMatcher {
 public:
  struct Result {
    std::string text;  // safe to stream to the client now
    bool stopped = false;
    int stop_index = -1;  // index into the constructor's list of the matched stop string
  };

  // Empty strings in `stops` are ignored (ValidateSamplingParams rejects them).
  explicit StopMatcher(std::vector<std::string> stops);

  // Feeds the next piece (may be empty). After a result with stopped == true, further
  // calls return nothing.
  Result Feed(std::string_view piece);

  // Generation ended without a stop string (EOS, max_tokens): releases the held tail.
  std::string Flush();

  // Bytes currently held back.
  size_t held() const { return pending_.size(); }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::vector<int> stop_indices_;  // stops_[i] is the caller's stop string stop_indices_[i]
  std::string pending_;            // text not yet released; never contains a whole stop string
  bool stopped_ = false;
};

}  // namespace vlserve
