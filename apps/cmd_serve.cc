// vlserve serve: the OpenAI-compatible HTTP server (src/server). Flags come from the one
// table in server/config.h; this file only parses them and waits for SIGINT/SIGTERM.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>

#include "base/log.h"
#include "command.h"
#include "server/config.h"
#include "server/server.h"

namespace vlserve::app {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
void OnStopSignal(int sig) { g_stop_signal = sig; }

int RunServe(int argc, char** argv) {
  server::ServerConfig config;
  CLI::App cli("Serve a model over an OpenAI-compatible HTTP API (docs/serve.md, docs/api.md).",
               "vlserve serve");
  server::ForEachServeFlag(config, [&cli](const char* names, auto& field, const char* help) {
    if constexpr (std::is_same_v<std::decay_t<decltype(field)>, bool>) {
      // "--x,!--no-x": on by default, --no-x turns it off. Two flags, so that --help does
      // not print CLI11's "--x,--no-x{false}" (which reads as "off by default").
      const std::string_view all(names);
      const size_t negated = all.find(",!");
      if (negated == std::string_view::npos) {
        cli.add_flag(names, field, help);
      } else {
        cli.add_flag(std::string(all.substr(0, negated)), field,
                     std::string(help) + (field ? " (default: on)" : " (default: off)"));
        cli.add_flag_callback(
            std::string(all.substr(negated + 2)), [&field] { field = false; },
            fmt::format("turn {} off", all.substr(0, negated)));
      }
    } else {
      cli.add_option(names, field, help)->capture_default_str();
    }
  });
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  // A flag, polled below: threads may exist before this point (thread pools), so masking
  // and sigwait() would not catch every delivery.
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGPIPE, SIG_IGN);

  auto server = server::Server::Start(config);  // logs "listening on ..."
  if (!server.ok()) {
    LOG_ERROR("error: {}", server.status().ToString());
    return 1;
  }
  if (Status s = (*server)->WaitLoaded(); !s.ok()) {
    LOG_ERROR("error: {}", s.ToString());
    return 1;
  }
  while (g_stop_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  LOG_INFO("signal {}, shutting down", static_cast<int>(g_stop_signal));
  (*server)->Stop();
  return 0;
}

}  // namespace

VLSERVE_COMMAND("serve", "serve a model over an OpenAI-compatible HTTP API", RunServe);

}  // namespace vlserve::app
