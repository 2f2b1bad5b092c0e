#include "bench_serve/record.h"

#include <boost/json.hpp>

namespace vlserve::bench_serve {
namespace {

namespace json = boost::json;

int IntOr(const json::object& o, std::string_view key, int fallback) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  if (v->is_int64()) return static_cast<int>(v->as_int64());
  if (v->is_uint64()) return static_cast<int>(v->as_uint64());
  if (v->is_double()) return static_cast<int>(v->as_double());
  return fallback;
}

void ReadUsage(const json::object& usage, RequestRecord* r) {
  r->prompt_tokens = IntOr(usage, "prompt_tokens", r->prompt_tokens);
  r->output_tokens = IntOr(usage, "completion_tokens", r->output_tokens);
  if (const json::value* d = usage.if_contains("prompt_tokens_details"); d && d->is_object()) {
    r->cached_tokens = IntOr(d->as_object(), "cached_tokens", r->cached_tokens);
  }
  r->cached_tokens = IntOr(usage, "cached_tokens", r->cached_tokens);
}

void ReadTimings(const json::object& timings, RequestRecord* r) {
  for (const auto& [key, value] : timings) {
    if (value.is_number()) r->timings[std::string(key)] = value.to_number<double>();
    if (key == "encode_cached" && value.is_bool()) r->encode_cached = value.as_bool() ? 1 : 0;
  }
}

// One parsed data event; returns false on a malformed or error event (sets r->error).
bool ReadEvent(const json::object& o, double t_ms, double* last_chunk_ms, RequestRecord* r) {
  if (const json::value* e = o.if_contains("error")) {
    const json::value* m = e->is_object() ? e->as_object().if_contains("message") : nullptr;
    r->error =
        "error event: " + (m && m->is_string() ? std::string(m->as_string()) : json::serialize(*e));
    return false;
  }
  if (const json::value* u = o.if_contains("usage"); u && u->is_object()) {
    ReadUsage(u->as_object(), r);
  }
  if (const json::value* t = o.if_contains("timings"); t && t->is_object()) {
    ReadTimings(t->as_object(), r);
  }
  const json::value* choices = o.if_contains("choices");
  if (choices == nullptr || !choices->is_array() || choices->as_array().empty()) return true;
  const json::value& c = choices->as_array()[0];
  if (!c.is_object()) return true;
  if (const json::value* f = c.as_object().if_contains("finish_reason"); f && f->is_string()) {
    r->finish_reason = std::string(f->as_string());
  }
  const json::value* delta = c.as_object().if_contains("delta");
  const json::value* content =
      delta && delta->is_object() ? delta->as_object().if_contains("content") : nullptr;
  if (content == nullptr || !content->is_string() || content->as_string().empty()) return true;
  r->answer += std::string(content->as_string());
  ++r->content_chunks;
  if (r->ttft_ms < 0) {
    r->ttft_ms = t_ms;
  } else {
    r->itl_ms.push_back(t_ms - *last_chunk_ms);
  }
  *last_chunk_ms = t_ms;
  return true;
}

// Length of the well-formed UTF-8 sequence at the start of `s`, 0 if there is none.
size_t SequenceLength(std::string_view s) {
  const auto b = [&s](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = b(0);
  if (lead < 0x80) return 1;
  size_t n = lead >= 0xc2 && lead <= 0xdf   ? 2
             : lead >= 0xe0 && lead <= 0xef ? 3
             : lead >= 0xf0 && lead <= 0xf4 ? 4
                                            : 0;
  if (n == 0 || s.size() < n) return 0;
  // The second byte's range excludes overlong forms, surrogates and > U+10FFFF.
  const uint8_t lo = lead == 0xe0 ? 0xa0 : lead == 0xf0 ? 0x90 : 0x80;
  const uint8_t hi = lead == 0xed ? 0x9f : lead == 0xf4 ? 0x8f : 0xbf;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xbf) return 0;
  }
  return n;
}

}  // namespace

std::string SanitizeUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t n = SequenceLength(text);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, n));
      text.remove_prefix(n);
    }
  }
  return out;
}

void FillFromResponse(const HttpResult& response, RequestRecord* r) {
  r->status = response.status;
  r->x_cache = response.x_cache;
  r->e2e_ms = response.end_ms;
  if (response.status == 0) {
    r->error = response.transport_error;
    return;
  }
  if (response.status != 200) {
    r->error = SanitizeUtf8("HTTP " + std::to_string(response.status) + ": " +
                            response.body.substr(0, 300));
    return;
  }
  bool done = false, healthy = true;
  double last_chunk_ms = 0;
  for (const SseEvent& event : response.events) {
    if (event.data == "[DONE]") {
      done = true;
      r->e2e_ms = event.t_ms;
      continue;
    }
    boost::system::error_code ec;
    json::value v = json::parse(event.data, ec);
    if (ec || !v.is_object()) {
      // Boost.JSON, like Python's json, rejects invalid UTF-8 inside strings too.
      r->error =
          SanitizeUtf8("malformed event (bad JSON or invalid UTF-8): " + event.data.substr(0, 300));
      healthy = false;
      continue;
    }
    healthy = ReadEvent(v.as_object(), event.t_ms, &last_chunk_ms, r) && healthy;
  }
  if (r->output_tokens == 0) r->output_tokens = r->content_chunks;
  if (r->ttft_ms >= 0 && r->output_tokens >= 2) {
    r->tpot_ms = (r->e2e_ms - r->ttft_ms) / (r->output_tokens - 1);
  }
  if (healthy && !done) {
    r->error =
        response.transport_error.empty() ? "stream ended without [DONE]" : response.transport_error;
  }
  r->ok = healthy && done && r->error.empty();
}

std::string ErrorCategory(const RequestRecord& r) {
  if (r.ok) return "";
  if (r.error.starts_with("skipped")) return "skipped";
  if (r.status == 0) return "transport";
  if (r.status != 200) return std::to_string(r.status);
  return "stream";
}

}  // namespace vlserve::bench_serve
