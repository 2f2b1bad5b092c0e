#include "engine/stop.h"

#include <algorithm>
#include <utility>

namespace vlserve {
namespace {

// Length of the longest suffix of `text` that is a proper prefix of `stop`.
size_t LongestSuffixThatStartsStop(std::string_view text, std::string_view stop) {
  const size_t max_len = std::min(text.size(), stop.size() - 1);
  for (size_t len = max_len; len > 0; --len) {
    if (text.substr(text.size() - len) == stop.substr(0, len)) return len;
  }
  return 0;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) continue;
    stops_.push_back(std::move(stops[i]));
    stop_indices_.push_back(static_cast<int>(i));
  }
}

StopMatcher::Result StopMatcher::Feed(std::string_view piece) {
  Result result;
  if (stopped_) return result;
  pending_.append(piece);

  // Earliest match wins: text before it is what the model said before stopping. Among
  // stop strings starting at the same byte the first listed is reported.
  size_t match_pos = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = pending_.find(stops_[i]);
    if (pos < match_pos) {
      match_pos = pos;
      result.stop_index = stop_indices_[i];
    }
  }
  if (match_pos != std::string::npos) {
    result.text = pending_.substr(0, match_pos);
    result.stopped = stopped_ = true;
    pending_.clear();
    return result;
  }

  size_t hold = 0;
  for (const std::string& stop : stops_) {
    hold = std::max(hold, LongestSuffixThatStartsStop(pending_, stop));
  }
  result.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return result;
}

std::string StopMatcher::Flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  pending_.clear();
  return out;
}

}  // namespace vlserve
