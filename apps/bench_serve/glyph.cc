#include "bench_serve/glyph.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <charconv>
#include <cstdlib>
#include <optional>

namespace vlserve::bench_serve {
namespace {

namespace json = boost::json;

json::object BaseBody(const GlyphRequest& r, json::array content) {
  json::object message{{"role", "user"}, {"content", std::move(content)}};
  json::object body;
  body["messages"] = json::array{std::move(message)};
  body["max_tokens"] = r.max_tokens;
  body["temperature"] = 0;
  body["stream"] = true;
  body["stream_options"] = json::object{{"include_usage", true}};
  if (!r.cache_salt.empty()) body["cache_salt"] = r.cache_salt;
  if (!r.banned_ids.empty()) {
    json::object bias;
    for (const int32_t id : r.banned_ids) bias[std::to_string(id)] = -100;
    body["logit_bias"] = std::move(bias);
  }
  return body;
}

// "12.34" at the start of `s` (after spaces); nullopt when there is no number.
std::optional<double> LeadingNumber(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr == s.data()) return std::nullopt;
  return v;
}

// The number after `key` in `line`, or nullopt.
std::optional<double> NumberAfter(std::string_view line, std::string_view key) {
  const size_t at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  return LeadingNumber(line.substr(at + key.size()));
}

// llama.cpp's log prefix "M.SS.mmm.uuu " (common/log.cpp: minutes, seconds, milliseconds,
// microseconds since the logger started) in milliseconds; nullopt for lines without one.
std::optional<double> LogTimestampMs(std::string_view line) {
  int parts[4] = {0, 0, 0, 0};
  const char* p = line.data();
  const char* end = line.data() + line.size();
  for (int i = 0; i < 4; ++i) {
    auto [next, ec] = std::from_chars(p, end, parts[i]);
    if (ec != std::errc() || next == p) return std::nullopt;
    p = next;
    if (i < 3) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
  }
  if (p == end || *p != ' ') return std::nullopt;
  return parts[0] * 60000.0 + parts[1] * 1000.0 + parts[2] + parts[3] / 1000.0;
}

}  // namespace

std::string GlyphTextBody(const GlyphRequest& r) {
  json::array content{json::object{{"type", "text"}, {"text", r.document + "\n\n" + r.question}}};
  return json::serialize(BaseBody(r, std::move(content)));
}

std::string GlyphPagesBody(const GlyphRequest& r) {
  json::array content{
      json::object{{"type", "document"},
                   {"text", r.document},
                   {"render", json::object{{"preset", r.render_preset}}}},
      json::object{{"type", "text"}, {"text", r.question}}};
  return json::serialize(BaseBody(r, std::move(content)));
}

StatusOr<LlamaMtmdTimings> ParseLlamaMtmdLog(std::string_view log) {
  LlamaMtmdTimings t;
  std::optional<double> start_ms, end_ms;
  bool have_prompt = false, have_eval = false;
  while (!log.empty()) {
    const size_t nl = log.find('\n');
    const std::string_view line = log.substr(0, nl);
    log = nl == std::string_view::npos ? std::string_view() : log.substr(nl + 1);
    const std::optional<double> ts = LogTimestampMs(line);
    if (line.find("This is an experimental CLI") != std::string_view::npos && ts) {
      start_ms = ts;
    } else if (auto v = NumberAfter(line, "mtmd batch encoding done in ")) {
      t.encode_ms += *v;
      ++t.images;
    } else if (line.find("image decoded (batch") != std::string_view::npos) {
      if (auto v = NumberAfter(line, ") in ")) t.image_decode_ms += *v;
    } else if (line.find("llama_perf_context_print:") != std::string_view::npos) {
      if (!end_ms && ts) end_ms = ts;
      if (auto v = NumberAfter(line, "prompt eval time = ")) {
        t.prompt_eval_ms = *v;
        have_prompt = true;
        if (auto n = NumberAfter(line, " / ")) t.prompt_tokens = static_cast<int>(*n);
      } else if (auto e = NumberAfter(line, " eval time = ")) {
        t.eval_ms = *e;
        have_eval = true;
      }
    }
  }
  if (!start_ms || !end_ms || !have_prompt || !have_eval) {
    return InvalidArgumentError(
        "the llama-mtmd-cli log lacks the start-up warning, or its llama_perf_context_print "
        "prompt eval / eval lines (run it with -v so lines carry timestamps)");
  }
  t.ttft_ms = *end_ms - *start_ms - t.eval_ms;
  return t;
}

StatusOr<std::vector<int>> ParseSizes(std::string_view list) {
  std::vector<int> sizes;
  bool more = !list.empty();
  while (more) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    more = comma != std::string_view::npos;
    list = more ? list.substr(comma + 1) : std::string_view();
    int v = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || ptr != item.data() + item.size() || v <= 0) {
      return InvalidArgumentError(
          fmt::format("bad size '{}': expected positive token counts, e.g. 4096,8192", item));
    }
    sizes.push_back(v);
  }
  if (sizes.empty()) return InvalidArgumentError("no document sizes given");
  return sizes;
}

}  // namespace vlserve::bench_serve
