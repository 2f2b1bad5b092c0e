// Request identity and the access log: one line per finished request (docs/serve.md
// "Logs"), the request id (the client's X-Request-Id when it is sane, else ours) and the
// W3C trace context (https://www.w3.org/TR/trace-context/): an incoming `traceparent`
// keeps its trace id, our response names a new span of it, so a proxy's logs and ours join.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/request.h"

namespace vlserve::server {

struct TraceParent {
  std::string version;    // 2 lowercase hex digits, not "ff"
  std::string trace_id;   // 32 lowercase hex digits, not all zero
  std::string parent_id;  // 16 lowercase hex digits, not all zero
  std::string flags;      // 2 lowercase hex digits (bit 0: sampled)
};

// Nullopt when `header` is not a valid traceparent (version 00: exactly 55 characters;
// a later version may append "-..." fields, which are ignored).
std::optional<TraceParent> ParseTraceParent(std::string_view header);

// `id` when it is usable as a request id (1..128 printable ASCII characters, no spaces),
// else "".
std::string SaneRequestId(std::string_view id);

// `bytes` random bytes as lowercase hex (never all zero).
std::string RandomHex(int bytes);

// What one access log line says. Numbers < 0 are unknown ("-" / null).
struct AccessRecord {
  std::string request_id;
  bool client_request_id = false;  // request_id came from X-Request-Id
  std::string trace_id, span_id, trace_flags = "00";
  std::string method = "-", route = "-";  // route: the target's path (no query string)
  std::string client = "-";               // peer ip:port
  int status = 0;
  int64_t prompt_tokens = -1, completion_tokens = -1, cached_tokens = -1;
  double ttft_ms = -1, total_ms = -1;

  // Fills the token counts and TTFT from a generation's terminal event.
  void SetGeneration(const engine::Usage& usage, const engine::RequestTimings& timings);
  // The headers every response to this request carries: X-Request-Id and traceparent.
  std::vector<std::pair<std::string, std::string>> ResponseHeaders() const;
};

// A record for a request with these header values ("" = absent): the client's request id
// when sane (else a new "req-..."), the incoming trace id (else a new trace) and a new span.
AccessRecord BeginAccessRecord(std::string_view method, std::string_view target,
                               std::string_view x_request_id, std::string_view traceparent,
                               std::string client);

// The line's fields without time and level, as text (`key=value ...`) and as JSON object
// members (`"key":value,...`); the same keys in the same order.
std::string AccessTextFields(const AccessRecord& r);
std::string AccessJsonFields(const AccessRecord& r);

// Logs the record (base/log.h's format): info, or debug for successful /health and
// /metrics (probes and scrapes would drown the rest).
void LogAccess(const AccessRecord& r);

}  // namespace vlserve::server
