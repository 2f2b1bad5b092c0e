// Starting an in-process server for the server tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "server/server.h"

namespace vlserve::server::testing {

// Starts `config` on an ephemeral port and waits (up to 60 s) until the model is loaded;
// nullptr (with a test failure) when it does not start.
inline std::unique_ptr<Server> StartTestServer(ServerConfig config) {
  config.http.port = 0;
  auto s = Server::Start(std::move(config));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return nullptr;
  EXPECT_TRUE((*s)->WaitReady(std::chrono::seconds(60))) << (*s)->load_status().ToString();
  return std::move(*s);
}

}  // namespace vlserve::server::testing
