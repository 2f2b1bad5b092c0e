// vlserve generate: run one prompt through a text model and stream the continuation.
// With --mmproj and --image, the images are decoded, preprocessed and encoded by the vision
// tower, and their embeddings take the place of the image tokens in the chat prompt.
// Timings go to stderr so stdout carries only the generated text.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/thread_pool.h"
#include "command.h"
#include "engine/sampling.h"
#include "media/image.h"
#include "models/chat_template.h"
#include "models/image_prompt.h"
#include "models/registry.h"
#include "models/text_model.h"
#include "models/vision_model.h"
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
  if (chat_template.find("[gMASK]<sop>") != std::string::npos) {  // GLM-4, GLM-4.1V
    return "[gMASK]<sop><|user|>\n" + user + "<|assistant|>\n";
  }
  return "USER: " + user + " ASSISTANT:";  // Vicuna v1.1 (LLaVA-1.5)
}

int Fail(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  return 1;
}

// Everything the images contribute to the prompt: embeddings and each image's layout.
struct EncodedImages {
  std::vector<models::ImageLayout> layouts;
  std::vector<std::vector<float>> embeddings;  // per image [tiles * tokens, hidden]
  double read_ms = 0, decode_ms = 0, preprocess_ms = 0, encode_ms = 0;
  int64_t tiles = 0;
};

StatusOr<EncodedImages> EncodeImages(const models::VisionModel& vision,
                                     const std::vector<std::string>& paths) {
  EncodedImages out;
  media::BufferPool pool;
  media::PreprocessScratch scratch;
  models::VisionScratch vscratch;
  for (const std::string& path : paths) {
    Stopwatch read_timer;
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError(fmt::format("cannot open --image {}", path));
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    out.read_ms += read_timer.ElapsedMs();
    Stopwatch decode_timer;
    media::DecodeOptions options;
    options.target_long_edge = vision.DecodeHint();
    auto image = media::Decode(bytes, options);
    if (!image.ok()) return image.status().WithContext(path);
    out.decode_ms += decode_timer.ElapsedMs();
    Stopwatch pre_timer;
    ASSIGN_OR_RETURN(models::ImageLayout layout, vision.Plan(image->width, image->height));
    media::PixelTiles tiles = vision.Preprocess(layout, *image, &pool, &scratch);
    out.preprocess_ms += pre_timer.ElapsedMs();
    Stopwatch encode_timer;
    std::vector<float> embd(layout.tokens * vision.output_width());
    vision.EncodeImage(tiles.Tile(0), layout, embd.data(), vscratch);
    out.encode_ms += encode_timer.ElapsedMs();
    out.tiles += layout.num_tiles;
    out.layouts.push_back(layout);
    out.embeddings.push_back(std::move(embd));
  }
  return out;
}

// The user turn: text and image parts split at "<image>" markers in -p; without markers
// the images come first (as llama.cpp's mtmd does).
std::vector<models::ChatPart> UserParts(const std::string& prompt, size_t num_images) {
  std::vector<models::ChatPart> parts;
  const std::string marker = "<image>";
  if (num_images > 0 && prompt.find(marker) == std::string::npos) {
    for (size_t i = 0; i < num_images; ++i) parts.push_back({models::ChatPart::Kind::kImage, ""});
    parts.push_back({models::ChatPart::Kind::kText, prompt});
    return parts;
  }
  size_t pos = 0;
  for (size_t at; (at = prompt.find(marker, pos)) != std::string::npos; pos = at + marker.size()) {
    if (at > pos) parts.push_back({models::ChatPart::Kind::kText, prompt.substr(pos, at - pos)});
    parts.push_back({models::ChatPart::Kind::kImage, ""});
  }
  if (pos < prompt.size()) parts.push_back({models::ChatPart::Kind::kText, prompt.substr(pos)});
  return parts;
}

// The prompt's token ids, with image embeddings (negative ids = rows of `embd`).
struct PreparedPrompt {
  std::vector<int32_t> ids;
  std::vector<float> embd;  // [ids.size(), embedding_width] when there are images, else empty
  std::vector<int32_t> rope_positions;  // [ids.size(), 4] for M-RoPE image prompts
  int64_t next_rope_position = 0;
};

StatusOr<PreparedPrompt> PreparePrompt(const tokenizer::Tokenizer& tok,
                                       const std::string& chat_template, const std::string& prompt,
                                       bool chat, const models::VisionModel* vision,
                                       const EncodedImages* images,
                                       const models::TextConfig& text_config) {
  const int64_t hidden = text_config.embedding_width();  // > hidden with deepstack
  PreparedPrompt out;
  if (vision == nullptr) {
    const std::string text = chat ? ChatPrompt(chat_template, prompt) : prompt;
    out.ids = tok.Encode(text, {.add_special = true, .parse_special = chat});
    return out;
  }
  bool recognised = false;
  const models::ChatTemplate& tmpl = models::DetectChatTemplate(chat_template, &recognised);
  const std::string text = models::ApplyChatTemplate(
      tmpl, {{"user", UserParts(prompt, images->layouts.size())}}, true);
  models::ImagePromptOptions po;
  po.marker = tmpl.image_marker;
  ASSIGN_OR_RETURN(models::ExpandedPrompt expanded,
                   models::ExpandImagePrompt(tok, *vision, text_config, text, images->layouts, po));
  out.rope_positions = std::move(expanded.rope_positions);
  out.next_rope_position = expanded.next_rope_position;
  out.ids = std::move(expanded.tokens);
  out.embd.assign(out.ids.size() * hidden, 0.0f);
  for (const models::PromptImageSpan& span : expanded.spans) {
    const std::vector<float>& rows = images->embeddings[span.image];
    for (int64_t i = 0; i < span.num_tokens; ++i) {
      out.ids[span.position + i] = -1;
      std::copy_n(rows.data() + (span.first_row + i) * hidden, hidden,
                  out.embd.data() + (span.position + i) * hidden);
    }
  }
  return out;
}

int RunGenerate(int argc, char** argv) {
  CLI::App cli("Generate text from a prompt (greedy with --temp 0), optionally about images.",
               "vlserve generate");
  std::string model_path, mmproj_path, prompt, logits_out, vision_compute = "f32";
  std::string kv_type = "f16";
  std::vector<std::string> image_paths;
  bool chat = false;
  float temp = 0.8f;
  int n_predict = 64, threads = 0;
  uint64_t seed = 0;
  cli.add_option("-m,--model", model_path, "text model GGUF")->required();
  cli.add_option("--mmproj", mmproj_path, "vision projector GGUF (clip) for --image");
  cli.add_option("--kv-type", kv_type, "KV cache storage: f16, bf16 or f32 (as serve)")
      ->capture_default_str();
  cli.add_option("--vision-compute", vision_compute,
                 "vision tower matmul arithmetic: f32 or bf16 (faster; docs/vision.md)")
      ->capture_default_str();
  cli.add_option("--image", image_paths,
                 "image file (JPEG/PNG/WebP/BMP); repeat for several. Placed at each <image> in "
                 "-p, else before the text. Implies --chat");
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
  if (!image_paths.empty() && mmproj_path.empty()) {
    return Fail(InvalidArgumentError("--image needs --mmproj (the model's vision projector)"));
  }
  auto kv_dtype = models::ParseKvType(kv_type);
  if (!kv_dtype.ok()) return Fail(kv_dtype.status());

  Stopwatch load_timer;
  auto model_or = models::LoadTextModel(model_path);
  if (!model_or.ok()) return Fail(model_or.status());
  const models::TextModel& model = **model_or;
  std::unique_ptr<models::VisionModel> vision;
  if (!mmproj_path.empty()) {
    auto compute = models::ParseVisionComputeType(vision_compute);
    if (!compute.ok()) return Fail(compute.status());
    auto v = models::VisionModel::Load(mmproj_path, models::VisionLoadOptions{*compute});
    if (!v.ok()) return Fail(v.status());
    vision = std::move(*v);
    if (Status s = vision->CheckCompatible(model.config()); !s.ok()) return Fail(s);
  }
  auto config_or = tokenizer::TokenizerConfigFromGguf(model.file());
  if (!config_or.ok()) return Fail(config_or.status());
  const std::string chat_template = config_or->chat_template;
  auto tok_or = tokenizer::Tokenizer::Create(std::move(*config_or));
  if (!tok_or.ok()) return Fail(tok_or.status());
  const tokenizer::Tokenizer& tok = **tok_or;
  const double load_ms = load_timer.ElapsedMs();

  Stopwatch ttft_timer;  // from here: image work + prefill + first sample
  EncodedImages images;
  if (vision != nullptr) {
    auto enc = EncodeImages(*vision, image_paths);
    if (!enc.ok()) return Fail(enc.status());
    images = std::move(*enc);
  }
  auto prepared = PreparePrompt(tok, chat_template, prompt, chat, vision.get(), &images,
                                model.config());
  if (!prepared.ok()) return Fail(prepared.status());
  const std::vector<int32_t>& ids = prepared->ids;
  const int64_t vocab = model.config().vocab;
  const int64_t total = static_cast<int64_t>(ids.size()) + n_predict;
  if (ids.empty()) return Fail(InvalidArgumentError("the prompt encodes to no tokens"));
  if (total > model.config().context_length) {
    return Fail(OutOfRangeError(
        fmt::format("prompt ({} tokens) + -n {} exceed the context length {}; shorten the "
                    "prompt or lower -n",
                    ids.size(), n_predict, model.config().context_length)));
  }
  models::KvBuffer kv(model.config(), (total + models::kKvBlockSize - 1) / models::kKvBlockSize,
                      *kv_dtype);
  std::vector<int32_t> blocks(kv.num_blocks());
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
  models::ForwardScratch scratch;
  const bool all = !logits_out.empty();
  std::vector<float> logits((all ? ids.size() : 1) * vocab);

  Stopwatch prompt_timer;
  models::BatchItem item{blocks.data(), kv.num_blocks(), 0, ids,
                         prepared->embd.empty() ? nullptr : prepared->embd.data(), all,
                         prepared->rope_positions.empty() ? nullptr
                                                          : prepared->rope_positions.data()};
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
  double ttft_ms = -1;
  Stopwatch gen_timer;
  for (; generated < n_predict; ++generated) {
    const int32_t next = sampler.Sample(last, vocab);
    if (ttft_ms < 0) {
      ttft_ms = ttft_timer.ElapsedMs();
      gen_timer.Reset();
    }
    if (tok.IsEndOfGeneration(next)) break;
    std::fputs(detok.Push(next).c_str(), stdout);
    std::fflush(stdout);
    if (generated + 1 == n_predict) {
      ++generated;
      break;
    }
    const int32_t one[1] = {next};
    // M-RoPE prompts: generated tokens continue from the prompt's next position.
    const auto rp = static_cast<int32_t>(pos - static_cast<int64_t>(ids.size()) +
                                         prepared->next_rope_position);
    const int32_t rope[4] = {rp, rp, rp, 0};
    models::BatchItem step{blocks.data(), kv.num_blocks(), pos++, one, nullptr, false,
                           prepared->rope_positions.empty() ? nullptr : rope};
    if (Status s = model.Forward({step}, kv, scratch, last); !s.ok()) return Fail(s);
  }
  std::fputs(detok.Flush().c_str(), stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  const double gen_s = gen_timer.ElapsedSeconds();
  if (vision != nullptr) {
    std::fprintf(stderr,
                 "images %zu: read %.1f ms | decode %.1f ms | preprocess %.1f ms | encode %lld "
                 "tiles %.1f ms (%.1f ms/tile)\n",
                 image_paths.size(), images.read_ms, images.decode_ms, images.preprocess_ms,
                 static_cast<long long>(images.tiles), images.encode_ms,
                 images.tiles > 0 ? images.encode_ms / images.tiles : 0.0);
  }
  // The first token is sampled from the prefill's logits; the rest are decode steps.
  const int decode_steps = generated > 1 ? generated - 1 : 0;
  std::fprintf(stderr,
               "load %.1f ms | prefill %zu tokens %.1f ms, %.1f tok/s | time to first token "
               "%.1f ms | generated %d tokens, %.1f tok/s\n",
               load_ms, ids.size(), prompt_s * 1e3, ids.size() / prompt_s, ttft_ms, generated,
               decode_steps > 0 ? decode_steps / gen_s : 0.0);
  return 0;
}

}  // namespace

VLSERVE_COMMAND("generate", "generate text from a prompt (and images) with a model", RunGenerate);

}  // namespace vlserve::app
