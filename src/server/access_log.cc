#include "server/access_log.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <random>

#include "base/log.h"

namespace vlserve::server {
namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

// Printable ASCII without spaces, at most `max` characters (longer is cut and marked): the
// text format splits fields at spaces, and the bytes come from the client.
std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const char c = s[i];
    out += c > 0x20 && c < 0x7f ? c : '?';
  }
  if (s.size() > max) out += "...";
  return out.empty() ? "-" : out;
}

std::string Number(int64_t v, bool json) {
  return v >= 0 ? std::to_string(v) : json ? "null" : "-";
}

std::string Millis(double v, bool json) {
  return v >= 0 ? fmt::format("{:.1f}", v) : json ? "null" : "-";
}

}  // namespace

std::optional<TraceParent> ParseTraceParent(std::string_view h) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  constexpr size_t kLength = 55;
  if (h.size() < kLength || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  TraceParent t{std::string(h.substr(0, 2)), std::string(h.substr(3, 32)),
                std::string(h.substr(36, 16)), std::string(h.substr(53, 2))};
  if (!IsLowerHex(t.version) || t.version == "ff") return std::nullopt;
  // Version 00 is exactly 55 characters; a later version may add fields after a '-'.
  if (t.version == "00" ? h.size() != kLength : h.size() > kLength && h[kLength] != '-') {
    return std::nullopt;
  }
  if (!IsLowerHex(t.trace_id) || AllZero(t.trace_id)) return std::nullopt;
  if (!IsLowerHex(t.parent_id) || AllZero(t.parent_id)) return std::nullopt;
  if (!IsLowerHex(t.flags)) return std::nullopt;
  return t;
}

std::string SaneRequestId(std::string_view id) {
  constexpr size_t kMaxLength = 128;
  if (id.empty() || id.size() > kMaxLength) return "";
  for (char c : id) {
    if (c <= 0x20 || c >= 0x7f) return "";
  }
  return std::string(id);
}

std::string RandomHex(int bytes) {
  static std::mutex mu;
  static std::mt19937_64 rng{[] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  }()};
  std::string out;
  do {
    out.clear();
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < bytes; i += 8) {
      const uint64_t v = rng();
      out += fmt::format("{:016x}", v).substr(0, 2 * std::min(8, bytes - i));
    }
  } while (AllZero(out));
  return out;
}

void AccessRecord::SetGeneration(const engine::Usage& usage,
                                 const engine::RequestTimings& timings) {
  prompt_tokens = usage.prompt_tokens;
  completion_tokens = usage.completion_tokens;
  cached_tokens = usage.cached_tokens;
  ttft_ms = timings.ttft_ms;
}

std::vector<std::pair<std::string, std::string>> AccessRecord::ResponseHeaders() const {
  return {{"X-Request-Id", request_id},
          {"traceparent", fmt::format("00-{}-{}-{}", trace_id, span_id, trace_flags)}};
}

AccessRecord BeginAccessRecord(std::string_view method, std::string_view target,
                               std::string_view x_request_id, std::string_view traceparent,
                               std::string client) {
  AccessRecord r;
  r.request_id = SaneRequestId(x_request_id);
  r.client_request_id = !r.request_id.empty();
  if (r.request_id.empty()) r.request_id = "req-" + RandomHex(8);
  if (auto parent = ParseTraceParent(traceparent)) {
    r.trace_id = parent->trace_id;
    r.trace_flags = parent->flags;
  } else {
    r.trace_id = RandomHex(16);  // a malformed one is ignored, as the spec asks
  }
  r.span_id = RandomHex(8);
  if (!method.empty()) r.method = Printable(method, 32);
  if (!target.empty()) r.route = Printable(target.substr(0, target.find('?')), 256);
  r.client = std::move(client);
  return r;
}

std::string AccessTextFields(const AccessRecord& r) {
  return fmt::format(
      "request_id={} method={} route={} status={} prompt_tokens={} completion_tokens={} "
      "cached_tokens={} ttft_ms={} total_ms={} client={} trace_id={}",
      r.request_id, r.method, r.route, r.status, Number(r.prompt_tokens, false),
      Number(r.completion_tokens, false), Number(r.cached_tokens, false), Millis(r.ttft_ms, false),
      Millis(r.total_ms, false), r.client, r.trace_id);
}

std::string AccessJsonFields(const AccessRecord& r) {
  return fmt::format(
      R"("request_id":{},"method":{},"route":{},"status":{},"prompt_tokens":{},)"
      R"("completion_tokens":{},"cached_tokens":{},"ttft_ms":{},"total_ms":{},"client":{},)"
      R"("trace_id":{})",
      JsonQuote(r.request_id), JsonQuote(r.method), JsonQuote(r.route), r.status,
      Number(r.prompt_tokens, true), Number(r.completion_tokens, true),
      Number(r.cached_tokens, true), Millis(r.ttft_ms, true), Millis(r.total_ms, true),
      JsonQuote(r.client), JsonQuote(r.trace_id));
}

void LogAccess(const AccessRecord& r) {
  const bool probe = (r.route == "/health" || r.route == "/metrics") && r.status < 400;
  const LogLevel level = probe ? LogLevel::kDebug : LogLevel::kInfo;
  if (level < CurrentLogLevel()) return;
  LogFields(level, "request", AccessTextFields(r), AccessJsonFields(r));
}

}  // namespace vlserve::server
