// Incremental parser of a text/event-stream body (the subset OpenAI streams use): bytes
// arrive in arbitrary pieces (a network read may end mid-line or mid-record); complete
// events come out in order.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vlserve::bench_serve {

class SseParser {
 public:
  // Appends the `data` payload of every event completed by `bytes` to `events`. An event
  // ends at an empty line; several `data:` lines of one event are joined with '\n'; lines
  // may end in "\n" or "\r\n"; comment lines (":...") and other fields (event:, id:,
  // retry:) are skipped; an event without data lines yields nothing.
  void Feed(std::string_view bytes, std::vector<std::string>* events);

  // Bytes of an unfinished line or event held back (0 after a clean stream end).
  size_t pending_bytes() const { return line_.size() + data_.size() + (has_data_ ? 1 : 0); }

 private:
  void EndLine(std::vector<std::string>* events);

  std::string line_;  // the current line, without its terminator
  std::string data_;  // the current event's data so far
  bool has_data_ = false;
};

}  // namespace vlserve::bench_serve
