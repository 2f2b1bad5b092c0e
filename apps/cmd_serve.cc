// vlserve serve: the OpenAI-compatible HTTP server (src/server). Flags come from the one
// table in server/config.h; this file only parses them and waits for SIGINT/SIGTERM.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "command.h"
#include "server/config.h"
#include "server/server.h"

namespace vlserve::app {
namespace {

int RunServe(int argc, char** argv) {
  server::ServerConfig config;
  CLI::App cli("Serve a model over an OpenAI-compatible HTTP API (docs/serve.md, docs/api.md).",
               "vlserve serve");
  server::ForEachServeFlag(config, [&cli](const char* names, auto& field, const char* help) {
    cli.add_option(names, field, help)->capture_default_str();
  });
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  // Block the stop signals in every thread (the server's threads inherit the mask) and
  // take them synchronously below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

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
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "vlserve: signal %d, shutting down\n", sig);
  (*server)->Stop();
  return 0;
}

}  // namespace

VLSERVE_COMMAND("serve", "serve a model over an OpenAI-compatible HTTP API", RunServe);

}  // namespace vlserve::app
