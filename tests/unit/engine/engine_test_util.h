// Helpers shared by the engine tests: the test model's tokenizer (and model), events.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "engine/engine.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "gguf/gguf.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::engine::testing {

// The byte-level BPE tokenizer of `make-test-model` (built in memory from its GGUF).
inline std::shared_ptr<const tokenizer::Tokenizer> TestTokenizer() {
  models::TestModelOptions options;
  options.hidden = 16;
  options.layers = 1;
  options.heads = 2;
  options.kv_heads = 1;
  options.ffn = 16;
  auto writer = models::BuildTestModel(options);
  EXPECT_TRUE(writer.ok()) << writer.status().ToString();
  if (!writer.ok()) return nullptr;
  auto file = gguf::File::FromBytes(writer->WriteToString(), "test");
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return nullptr;
  auto config = tokenizer::TokenizerConfigFromGguf(**file);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  if (!config.ok()) return nullptr;
  auto tok = tokenizer::Tokenizer::Create(std::move(*config));
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  if (!tok.ok()) return nullptr;
  return std::shared_ptr<const tokenizer::Tokenizer>(std::move(*tok));
}

// Everything a stream delivered, checked for the stream contract on the way: exactly one
// terminal event, last.
struct Collected {
  std::vector<Event> events;
  std::string text;
  std::vector<int32_t> tokens;
  bool ended = false;
  const Event* terminal() const { return ended ? &events.back() : nullptr; }
};

inline void Drain(RequestStream& stream, Collected* c) {
  std::vector<Event> events;
  stream.Poll(&events);
  for (Event& e : events) {
    EXPECT_FALSE(c->ended) << "event after the terminal event";
    c->text += e.text;
    c->tokens.insert(c->tokens.end(), e.tokens.begin(), e.tokens.end());
    if (e.kind != Event::Kind::kDelta) c->ended = true;
    c->events.push_back(std::move(e));
  }
}

// The default `make-test-model` text model (llama, hidden 64, 2 layers, context 2048)
// written to a fresh temp directory named after `tag` and this process, then loaded.
struct TestModelFiles {
  std::string dir;
  std::shared_ptr<const models::TextModel> model;
  std::shared_ptr<const tokenizer::Tokenizer> tok;
};
inline Status WriteAndLoadTestModel(const std::string& tag, TestModelFiles* out) {
  out->dir = (std::filesystem::temp_directory_path() /
              ("vlserve_" + tag + "_" + std::to_string(getpid())))
                 .string();
  RETURN_IF_ERROR(models::WriteTestModel(models::TestModelOptions{}, out->dir));
  ASSIGN_OR_RETURN(auto model, models::LoadTextModel(out->dir + "/text.gguf"));
  out->model = std::shared_ptr<const models::TextModel>(std::move(model));
  ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizerFromGguf(out->dir + "/text.gguf"));
  out->tok = std::shared_ptr<const tokenizer::Tokenizer>(std::move(tok));
  return OkStatus();
}

// Submits `r` and collects its stream until the terminal event (50 s at most).
inline Collected RunToEnd(Engine& engine, Request r) {
  Collected c;
  auto s = engine.Submit(std::move(r));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return c;
  const auto give_up = SteadyClock::now() + std::chrono::seconds(50);
  while (!c.ended && SteadyClock::now() < give_up) {
    Event e;
    if (!(*s)->WaitNext(&e, std::chrono::milliseconds(100))) continue;
    c.text += e.text;
    c.tokens.insert(c.tokens.end(), e.tokens.begin(), e.tokens.end());
    if (e.kind != Event::Kind::kDelta) c.ended = true;
    c.events.push_back(std::move(e));
  }
  EXPECT_TRUE(c.ended);
  return c;
}

}  // namespace vlserve::engine::testing
