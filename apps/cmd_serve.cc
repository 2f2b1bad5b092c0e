// vlserve serve: the OpenAI-compatible HTTP server (src/server). Flags come from the one
// table in server/config.h; this file only parses them and waits for SIGINT/SIGTERM.
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>
#include <type_traits>

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
      cli.add_flag(names, field, help);  // "--x,!--no-x": on by default, --no-x turns it off
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

  auto server = server::Server::Start(config);
  if (!server.ok()) {
    std::fprintf(stderr, "error: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "vlserve: listening on http://%s:%d\n", config.http.host.c_str(),
               (*server)->port());
  if (Status s = (*server)->WaitLoaded(); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  }
  while (g_stop_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "vlserve: signal %d, shutting down\n", static_cast<int>(g_stop_signal));
  (*server)->Stop();
  return 0;
}

}  // namespace

VLSERVE_COMMAND("serve", "serve a model over an OpenAI-compatible HTTP API", RunServe);

}  // namespace vlserve::app
