// Minimal leveled logging to stderr. VLSERVE_LOG=debug|info|warn|error sets the level.
//
// Every line starts with its time (ISO 8601, UTC, milliseconds) and level:
//   2026-12-06T18:55:49.123Z I model 'x' loaded in 40 ms
// With SetLogFormat(kJson) (`serve --log-format json`) every line is one JSON object
// instead: {"time":"2026-12-06T18:55:49.123Z","level":"info","msg":"model 'x' loaded ..."}.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace vlserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kText = 0, kJson = 1 };

LogLevel CurrentLogLevel();
void SetLogLevel(LogLevel level);
LogFormat CurrentLogFormat();
void SetLogFormat(LogFormat format);

// "2026-12-06T18:55:49.123Z".
std::string FormatLogTime(std::chrono::system_clock::time_point time);
// `s` as a JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD.
std::string JsonQuote(std::string_view s);

void LogLine(LogLevel level, std::string_view message);
// A line with fields (the access log): text format "<time> <L> <message> <text_fields>";
// JSON format {"time":..,"level":..,"msg":<message>,<json_fields>}, where `json_fields`
// are already-encoded object members (`"status":200,"route":"/health"`).
void LogFields(LogLevel level, std::string_view message, std::string_view text_fields,
               std::string_view json_fields);

// Where finished lines go (each without its newline); empty = stderr. For tests.
void SetLogSink(std::function<void(std::string_view line)> sink);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < CurrentLogLevel()) return;
  LogLine(level, fmt::format(format, std::forward<Args>(args)...));
}

#define LOG_DEBUG(...) ::vlserve::Log(::vlserve::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) ::vlserve::Log(::vlserve::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) ::vlserve::Log(::vlserve::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) ::vlserve::Log(::vlserve::LogLevel::kError, __VA_ARGS__)

}  // namespace vlserve
