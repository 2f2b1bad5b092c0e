// vlserve generate: run one prompt through a text model and stream the continuation.
// Timings go to stderr so stdout carries only the generated text.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/thread_pool.h"
#include "command.h"
#include "engine/sampling.h"
#include "models/registry.h"
#include "models/text_model.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::app {
namespace {

// One user turn in the family's chat format, chosen by what the GGUF's template contains.
// A stop-gap until the models layer renders tokenizer.chat_template itself.
std::string ChatPrompt(const std::string& chat_template, const std::string& user) {
  if (chat_template.find("<end_of_utterance>") != std::string::npos) {  // SmolVLM
    return "<|im_start|>User: " + user + "<end_of_utterance>\nAssistant:";
  }
  if (chat_template.find("<|im_start|>") != std::string::npos) {  // ChatML (Qwen2, SmolLM2)
    return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
  }
  return "USER: " + user + " ASSISTANT:";  // Vicuna v1.1 (LLaVA-1.5)
}

int Fail(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  return 1;
}

int RunGenerate(int argc, char** argv) {
  CLI::App cli("Generate text from a prompt (greedy with --temp 0).", "vlserve generate");
  std::string model_path, prompt, logits_out;
  bool chat = false;
  float temp = 0.8f;
  int n_predict = 64, threads = 0;
  uint64_t seed = 0;
  cli.add_option("-m,--model", model_path, "text model GGUF")->required();
  cli.add_option("-p,--prompt", prompt, "prompt text")->required();
  cli.add_flag("--chat", chat, "wrap the prompt as one user turn of the model's chat format");
  cli.add_option("--temp", temp, "temperature; 0 = greedy")->capture_default_str();
  cli.add_option("-n,--n-predict", n_predict, "tokens to generate")->capture_default_str();
  cli.add_option("--seed", seed, "sampling seed")->capture_default_str();
  cli.add_option("-t,--threads", threads, "threads (default: VLSERVE_THREADS or all cores)");
  cli.add_option("--logits-out", logits_out,
                 "write the prompt's logits ([prompt_tokens, vocab] float32) to FILE");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (threads > 0) SetDefaultThreads(threads);

  Stopwatch load_timer;
  auto model_or = models::LoadTextModel(model_path);
  if (!model_or.ok()) return Fail(model_or.status());
  const models::TextModel& model = **model_or;
  auto config_or = tokenizer::TokenizerConfigFromGguf(model.file());
  if (!config_or.ok()) return Fail(config_or.status());
  const std::string chat_template = config_or->chat_template;
  auto tok_or = tokenizer::Tokenizer::Create(std::move(*config_or));
  if (!tok_or.ok()) return Fail(tok_or.status());
  const tokenizer::Tokenizer& tok = **tok_or;
  const double load_ms = load_timer.ElapsedMs();

  const std::string text = chat ? ChatPrompt(chat_template, prompt) : prompt;
  const std::vector<int32_t> ids = tok.Encode(text, {.add_special = true, .parse_special = chat});
  const int64_t vocab = model.config().vocab;
  const int64_t total = static_cast<int64_t>(ids.size()) + n_predict;
  if (ids.empty()) return Fail(InvalidArgumentError("the prompt encodes to no tokens"));
  if (total > model.config().context_length) {
    return Fail(OutOfRangeError(
        fmt::format("prompt ({} tokens) + -n {} exceed the context length {}; shorten the "
                    "prompt or lower -n",
                    ids.size(), n_predict, model.config().context_length)));
  }
  models::KvBuffer kv(model.config(), (total + models::kKvBlockSize - 1) / models::kKvBlockSize);
  std::vector<int32_t> blocks(kv.num_blocks());
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
  models::ForwardScratch scratch;
  const bool all = !logits_out.empty();
  std::vector<float> logits((all ? ids.size() : 1) * vocab);

  Stopwatch prompt_timer;
  models::BatchItem item{blocks.data(), kv.num_blocks(), 0, ids, nullptr, all};
  if (Status s = model.Forward({item}, kv, scratch, logits.data()); !s.ok()) return Fail(s);
  const double prompt_s = prompt_timer.ElapsedSeconds();
  if (all) {
    FILE* f = std::fopen(logits_out.c_str(), "wb");
    if (f == nullptr || std::fwrite(logits.data(), sizeof(float), logits.size(), f) !=
                            logits.size()) {
      return Fail(InvalidArgumentError("cannot write --logits-out " + logits_out));
    }
    std::fclose(f);
  }

  SamplingParams params;
  params.temperature = temp;
  params.seed = seed;
  Sampler sampler(params);
  sampler.AcceptPrompt(ids);
  tokenizer::StreamingDetokenizer detok(tok);
  float* last = logits.data() + (logits.size() - vocab);
  int64_t pos = static_cast<int64_t>(ids.size());
  int generated = 0;
  Stopwatch gen_timer;
  for (; generated < n_predict; ++generated) {
    const int32_t next = sampler.Sample(last, vocab);
    if (tok.IsEndOfGeneration(next)) break;
    std::fputs(detok.Push(next).c_str(), stdout);
    std::fflush(stdout);
    if (generated + 1 == n_predict) {
      ++generated;
      break;
    }
    const int32_t one[1] = {next};
    models::BatchItem step{blocks.data(), kv.num_blocks(), pos++, one, nullptr, false};
    if (Status s = model.Forward({step}, kv, scratch, last); !s.ok()) return Fail(s);
  }
  std::fputs(detok.Flush().c_str(), stdout);
  std::fputs("\n", stdout);
  const double gen_s = gen_timer.ElapsedSeconds();
  std::fprintf(stderr,
               "load %.1f ms | prompt %zu tokens, %.1f tok/s | generated %d tokens, %.1f tok/s\n",
               load_ms, ids.size(), ids.size() / prompt_s, generated,
               generated > 0 ? generated / gen_s : 0.0);
  return 0;
}

}  // namespace

VLSERVE_COMMAND("generate", "generate text from a prompt with a text model", RunGenerate);

}  // namespace vlserve::app
