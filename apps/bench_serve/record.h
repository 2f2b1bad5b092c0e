// One request of a bench-serve run, measured from the client side and from the server's
// own `timings` / `usage` chunks.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bench_serve/http_client.h"

namespace vlserve::bench_serve {

struct RequestRecord {
  int index = 0;  // position in the run (conversation * turns + turn)
  int conversation = 0;
  int turn = 0;
  double scheduled_s = 0;  // planned send time since the run started (--rate), else start_s
  double start_s = 0;      // actual send time since the run started

  int status = 0;       // HTTP status; 0 = no response
  bool ok = false;      // 200, no error event, the stream ended with [DONE]
  std::string error;    // why not ok ("" when ok)
  std::string x_cache;  // "hit" / "miss" / ""

  double ttft_ms = -1;         // send -> first non-empty content delta (-1: none)
  double e2e_ms = 0;           // send -> end of the response
  double tpot_ms = -1;         // (e2e - ttft) / (output_tokens - 1); -1 for < 2 tokens
  std::vector<double> itl_ms;  // gaps between successive content chunks
  int content_chunks = 0;
  int output_tokens = 0;   // usage.completion_tokens, else the content chunk count
  int prompt_tokens = -1;  // from usage (-1: no usage chunk)
  int cached_tokens = -1;  // usage.prompt_tokens_details.cached_tokens (-1: absent)
  int encode_cached = -1;  // timings.encode_cached: 1 / 0, -1 when absent
  std::string finish_reason;
  std::map<std::string, double> timings;  // the server's final-chunk `timings`, numbers only
  std::string answer;                     // concatenated delta.content (history for the next turn)
};

// Fills the response fields of `record` from one HTTP exchange: status, error, TTFT/ITL/
// TPOT from the event times, usage and timings from the chunks that carry them.
void FillFromResponse(const HttpResult& response, RequestRecord* record);

// `text` with every byte that is not part of a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, surrogates or code points above U+10FFFF) replaced by U+FFFD, so error
// texts quoting server bytes stay valid in the JSON report.
std::string SanitizeUtf8(std::string_view text);

// The "category" an error is counted under: the HTTP status ("503"), "transport" (no
// response), "stream" (200 but an error event or no [DONE]) or "skipped" (a multi-turn
// turn after a failed one).
std::string ErrorCategory(const RequestRecord& record);

}  // namespace vlserve::bench_serve
