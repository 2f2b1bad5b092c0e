#include "base/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace vlserve {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("VLSERVE_LOG");
  if (env == nullptr) return LogLevel::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(env, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& LevelStorage() {
  static std::atomic<int> level(static_cast<int>(LevelFromEnv()));
  return level;
}

}  // namespace

LogLevel CurrentLogLevel() { return static_cast<LogLevel>(LevelStorage().load()); }
void SetLogLevel(LogLevel level) { LevelStorage().store(static_cast<int>(level)); }

void LogLine(LogLevel level, std::string_view message) {
  static std::mutex mu;
  static const char* kNames[] = {"D", "I", "W", "E"};
  auto now = std::chrono::system_clock::now().time_since_epoch();
  long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s %lld.%03lld %.*s\n", kNames[static_cast<int>(level)], ms / 1000,
               ms % 1000, static_cast<int>(message.size()), message.data());
}

}  // namespace vlserve
