// `vlserve bench-glyph`: Glyph's claim (arXiv 2510.17800: long text read as rendered pages
// costs 3-4x fewer input tokens and prefills ~4x faster) measured on a running server. For
// each document size, the same question about the same English prose is sent twice: with
// the document as text tokens, and as a `document` part the server renders into pages.
// Both are streamed chat completions with a fresh cache_salt (cold caches) and temperature
// 0; the table gives input tokens, time to first token by stage, KV bytes and decode speed
// at that depth. With --llama-mtmd-cli, the same pages (rendered here with the same
// preset, as PNGs) go through llama.cpp's llama-mtmd-cli for a time-to-first-token
// comparison. docs/glyph.md describes the method and the measured results.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_serve/glyph.h"
#include "bench_serve/http_client.h"
#include "bench_serve/record.h"
#include "command.h"
#include "gguf/gguf.h"
#include "render/png_write.h"
#include "render/presets.h"
#include "render/renderer.h"
#include "render/sample_text.h"
#include "tokenizer/gguf_config.h"

namespace vlserve::app {
namespace {

namespace json = boost::json;
using bench_serve::GlyphRequest;
using bench_serve::LlamaMtmdTimings;
using bench_serve::RequestRecord;

struct Options {
  std::string url = "http://127.0.0.1:8080";
  std::string model;   // the served text GGUF: its tokenizer and KV shape
  std::string mmproj;  // for llama-mtmd-cli
  std::string sizes = "4096,8192,16384";
  int max_tokens = 32;
  std::string question =
      "Based on the document above, which topics does it mention most often? Answer in one "
      "sentence.";
  std::string render_preset = "glyph";
  std::string font;  // for the PNGs given to llama.cpp; must match the server's --font
  std::string kv_type = "f16";
  std::string llama_cli;
  std::string llama_sizes = "8192";
  int llama_threads = 2;
  std::string work_dir = "bench-glyph";
  std::string out;
  std::string api_key;
  double timeout_s = 3600;
};

// The served model's KV bytes per token: 2 (K, V) x layers x kv_heads x head_dim x element.
StatusOr<int64_t> KvBytesPerToken(const std::string& path, const std::string& kv_type) {
  ASSIGN_OR_RETURN(auto file, gguf::File::Open(path));
  ASSIGN_OR_RETURN(std::string arch, file->GetString("general.architecture"));
  ASSIGN_OR_RETURN(int64_t layers, file->GetInt(arch + ".block_count"));
  ASSIGN_OR_RETURN(int64_t heads, file->GetInt(arch + ".attention.head_count"));
  ASSIGN_OR_RETURN(int64_t kv_heads, file->GetIntOr(arch + ".attention.head_count_kv", heads));
  ASSIGN_OR_RETURN(int64_t hidden, file->GetInt(arch + ".embedding_length"));
  ASSIGN_OR_RETURN(int64_t head_dim, file->GetIntOr(arch + ".attention.key_length", hidden / heads));
  const int64_t element = kv_type == "f32" ? 4 : 2;
  return 2 * layers * kv_heads * head_dim * element;
}

// English prose of `tokens` tokens under `tok` (the built-in sample text, cut at a token).
std::string Document(const tokenizer::Tokenizer& tok, int tokens) {
  std::string text = render::SampleEnglish(static_cast<size_t>(tokens) * 8 + 1024, 1);
  std::vector<int32_t> ids = tok.Encode(text);
  if (static_cast<int>(ids.size()) > tokens) ids.resize(static_cast<size_t>(tokens));
  return tok.Decode(ids);
}

std::string RandomSalt() {
  std::random_device rd;
  return fmt::format("bench-glyph-{:08x}{:08x}", rd(), rd());
}

StatusOr<RequestRecord> Send(bench_serve::HttpConnection& conn, const std::string& body,
                             const Options& o) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  bench_serve::HttpResult response = conn.Post(body, o.api_key, timeout);
  // 503 = still loading (or a full queue): wait as Retry-After asks, as a client would.
  while (response.status == 503 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    response = conn.Post(body, o.api_key, timeout);
  }
  RequestRecord r;
  bench_serve::FillFromResponse(response, &r);
  if (!r.ok) {
    return UnavailableError(fmt::format("request failed: HTTP {} {} {}", r.status, r.error,
                                        bench_serve::SanitizeUtf8(response.body.substr(0, 300))));
  }
  return r;
}

double Timing(const RequestRecord& r, const char* key) {
  auto it = r.timings.find(key);
  return it == r.timings.end() ? 0 : it->second;
}

struct SizeResult {
  int size = 0;
  RequestRecord text, pages;
  int pages_count = 0;
  size_t document_bytes = 0;
  std::optional<LlamaMtmdTimings> llama;
};

// Renders `document` as the server would (same preset; this process's fonts) into
// dir/page_NNNN.png and returns the paths.
StatusOr<std::vector<std::string>> WritePages(const std::string& document, const Options& o,
                                              const std::string& dir) {
  ASSIGN_OR_RETURN(render::RenderOptions options, render::RenderPreset(o.render_preset));
  if (!o.font.empty()) options.font_path = o.font;
  ASSIGN_OR_RETURN(auto renderer, render::Renderer::Create(options));
  std::filesystem::create_directories(dir);
  std::vector<std::string> paths;
  RETURN_IF_ERROR(renderer->RenderAll(
      document, render::PixelFormat::kGrey8, nullptr,
      [&](const render::PageLayout& page, const render::ImageView& image) {
        paths.push_back(fmt::format("{}/page_{:04d}.png", dir, page.index));
        return render::WritePng(paths.back(), image);
      }));
  return paths;
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

StatusOr<LlamaMtmdTimings> RunLlama(const std::vector<std::string>& pages, const Options& o,
                                    const std::string& log_path, int ctx) {
  std::string cmd = ShellQuote(o.llama_cli) + " -m " + ShellQuote(o.model) + " --mmproj " +
                    ShellQuote(o.mmproj);
  for (const std::string& p : pages) cmd += " --image " + ShellQuote(p);
  cmd += fmt::format(" -p {} -n 1 --temp 0 -t {} -c {} -v > {} 2>&1", ShellQuote(o.question),
                     o.llama_threads, ctx, ShellQuote(log_path));
  std::fprintf(stderr, "bench-glyph: llama.cpp on %zu pages ...\n", pages.size());
  if (std::system(cmd.c_str()) != 0) {
    return InternalError("llama-mtmd-cli failed; its log is " + log_path);
  }
  std::ifstream in(log_path);
  std::stringstream log;
  log << in.rdbuf();
  return bench_serve::ParseLlamaMtmdLog(log.str());
}

std::string Ms(double v) { return fmt::format("{:.0f}", v); }

void PrintTable(const std::vector<SizeResult>& results, int64_t kv_per_token) {
  std::printf(
      "\n| document | mode | input tokens | render | preprocess | encode | prefill | TTFT "
      "(ms) | KV MiB | decode tok/s |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const SizeResult& s : results) {
    for (const RequestRecord* r : {&s.text, &s.pages}) {
      const bool pages = r == &s.pages;
      std::printf("| %d | %s | %d | %s | %s | %s | %s | %s | %.0f | %.2f |\n", s.size,
                  pages ? fmt::format("{} pages", s.pages_count).c_str() : "text",
                  r->prompt_tokens, pages ? Ms(Timing(*r, "render")).c_str() : "-",
                  pages ? Ms(Timing(*r, "preprocess")).c_str() : "-",
                  pages ? Ms(Timing(*r, "encode")).c_str() : "-",
                  Ms(Timing(*r, "prefill")).c_str(), Ms(Timing(*r, "ttft")).c_str(),
                  static_cast<double>(r->prompt_tokens) * kv_per_token / 1048576.0,
                  Timing(*r, "decode_tokens_per_s"));
    }
  }
  std::printf("\n| document | bytes / text token | text tokens | image tokens | compression | "
              "TTFT text / pages | llama.cpp pages TTFT (ms) | llama.cpp / vlserve |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (const SizeResult& s : results) {
    const double text_tokens = Timing(s.pages, "document_text_tokens");
    const double image_tokens = Timing(s.pages, "document_image_tokens");
    const double ttft_pages = Timing(s.pages, "ttft");
    std::printf("| %d | %.2f | %.0f | %.0f | %.2fx | %.2fx | %s | %s |\n", s.size,
                text_tokens > 0 ? s.document_bytes / text_tokens : 0, text_tokens,
                image_tokens, image_tokens > 0 ? text_tokens / image_tokens : 0,
                ttft_pages > 0 ? Timing(s.text, "ttft") / ttft_pages : 0,
                s.llama ? Ms(s.llama->ttft_ms).c_str() : "-",
                s.llama ? fmt::format("{:.2f}x", s.llama->ttft_ms / ttft_pages).c_str() : "-");
  }
}

json::object RecordJson(const RequestRecord& r) {
  json::object timings;
  for (const auto& [k, v] : r.timings) timings[k] = v;
  return {{"prompt_tokens", r.prompt_tokens},
          {"output_tokens", r.output_tokens},
          {"client_ttft_ms", r.ttft_ms},
          {"e2e_ms", r.e2e_ms},
          {"timings", std::move(timings)}};
}

int RunBenchGlyph(int argc, char** argv) {
  Options o;
  CLI::App app{"Glyph's claim on a running server: one question about one document, as text "
               "tokens and as rendered pages, per document size",
               "vlserve bench-glyph"};
  app.add_option("--url", o.url, "server base URL (http://)")->capture_default_str();
  app.add_option("-m,--model", o.model, "the served text GGUF (tokenizer, KV shape)")->required();
  app.add_option("--mmproj", o.mmproj, "the served mmproj (for --llama-mtmd-cli)");
  app.add_option("--sizes", o.sizes, "document sizes in text tokens")->capture_default_str();
  app.add_option("--max-tokens", o.max_tokens, "tokens decoded per request")->capture_default_str();
  app.add_option("--question", o.question, "the question after the document");
  app.add_option("--render-preset", o.render_preset, "the document part's render preset")
      ->capture_default_str();
  app.add_option("--font", o.font, "font of the PNGs for llama.cpp (give the server's --font)");
  app.add_option("--kv-type", o.kv_type, "the server's --kv-type, for the KV bytes column")
      ->capture_default_str();
  app.add_option("--llama-mtmd-cli", o.llama_cli,
                 "also run llama.cpp's llama-mtmd-cli on the same pages (needs --mmproj)");
  app.add_option("--llama-sizes", o.llama_sizes, "sizes to run llama.cpp on")
      ->capture_default_str();
  app.add_option("--llama-threads", o.llama_threads, "llama.cpp -t")->capture_default_str();
  app.add_option("--work-dir", o.work_dir, "page PNGs and llama.cpp logs go here")
      ->capture_default_str();
  app.add_option("--out", o.out, "write the results as JSON here");
  app.add_option("--api-key", o.api_key, "sent as 'Authorization: Bearer KEY'");
  app.add_option("--timeout", o.timeout_s, "seconds one request may take")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "bench-glyph: %s\n", s.message().c_str());
    return 1;
  };
  auto sizes = bench_serve::ParseSizes(o.sizes);
  if (!sizes.ok()) return fail(sizes.status());
  auto llama_sizes = bench_serve::ParseSizes(o.llama_sizes);
  if (!llama_sizes.ok()) return fail(llama_sizes.status());
  if (!o.llama_cli.empty() && o.mmproj.empty()) {
    return fail(InvalidArgumentError("--llama-mtmd-cli needs --mmproj"));
  }
  auto tok = tokenizer::LoadTokenizerFromGguf(o.model);
  if (!tok.ok()) return fail(tok.status());
  auto kv_per_token = KvBytesPerToken(o.model, o.kv_type);
  if (!kv_per_token.ok()) return fail(kv_per_token.status());
  auto endpoint = bench_serve::ParseUrl(o.url);
  if (!endpoint.ok()) return fail(endpoint.status());
  bench_serve::HttpConnection conn(*endpoint);

  GlyphRequest base;
  base.question = o.question;
  base.max_tokens = o.max_tokens;
  base.render_preset = o.render_preset;
  base.banned_ids = (*tok)->end_of_generation_ids();
  // One short request first, so no size pays a first-request cost.
  base.document = Document(**tok, 64);
  base.cache_salt = RandomSalt();
  if (auto w = Send(conn, bench_serve::GlyphPagesBody(base), o); !w.ok()) return fail(w.status());

  std::vector<SizeResult> results;
  for (const int size : *sizes) {
    SizeResult s;
    s.size = size;
    GlyphRequest r = base;
    r.document = Document(**tok, size);
    s.document_bytes = r.document.size();
    std::fprintf(stderr, "bench-glyph: %d tokens as text ...\n", size);
    r.cache_salt = RandomSalt();
    auto text = Send(conn, bench_serve::GlyphTextBody(r), o);
    if (!text.ok()) return fail(text.status());
    s.text = *text;
    std::fprintf(stderr, "bench-glyph: %d tokens as pages ...\n", size);
    r.cache_salt = RandomSalt();
    auto pages = Send(conn, bench_serve::GlyphPagesBody(r), o);
    if (!pages.ok()) return fail(pages.status());
    s.pages = *pages;
    s.pages_count = static_cast<int>(Timing(s.pages, "images"));
    if (!o.llama_cli.empty() &&
        std::find(llama_sizes->begin(), llama_sizes->end(), size) != llama_sizes->end()) {
      const std::string dir = fmt::format("{}/{}", o.work_dir, size);
      auto paths = WritePages(r.document, o, dir);
      if (!paths.ok()) return fail(paths.status());
      auto llama = RunLlama(*paths, o, dir + "/llama-mtmd-cli.log",
                            s.pages.prompt_tokens * 2 + 1024);
      if (!llama.ok()) return fail(llama.status());
      s.llama = *llama;
    }
    results.push_back(std::move(s));
  }
  PrintTable(results, *kv_per_token);
  if (!o.out.empty()) {
    json::array rows;
    for (const SizeResult& s : results) {
      json::object row{{"size", s.size},
                       {"document_bytes", s.document_bytes},
                       {"kv_bytes_per_token", *kv_per_token},
                       {"text", RecordJson(s.text)},
                       {"pages", RecordJson(s.pages)}};
      if (s.llama) {
        row["llama_mtmd_cli"] = json::object{{"ttft_ms", s.llama->ttft_ms},
                                             {"images", s.llama->images},
                                             {"encode_ms", s.llama->encode_ms},
                                             {"image_decode_ms", s.llama->image_decode_ms},
                                             {"prompt_tokens", s.llama->prompt_tokens},
                                             {"prompt_eval_ms", s.llama->prompt_eval_ms}};
      }
      rows.push_back(std::move(row));
    }
    std::ofstream(o.out) << json::serialize(json::object{{"results", std::move(rows)}}) << "\n";
    std::printf("wrote %s\n", o.out.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace vlserve::app

VLSERVE_COMMAND("bench-glyph",
                "Glyph's claim: one document as text tokens vs as rendered pages, TTFT by stage",
                vlserve::app::RunBenchGlyph);
