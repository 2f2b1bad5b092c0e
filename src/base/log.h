// Minimal leveled logging to stderr. VLSERVE_LOG=debug|info|warn|error sets the level.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace vlserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

LogLevel CurrentLogLevel();
void SetLogLevel(LogLevel level);
void LogLine(LogLevel level, std::string_view message);

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
