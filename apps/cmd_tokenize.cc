// `vlserve tokenize -m FILE.gguf`: text on stdin -> token ids on stdout (and back with
// --detokenize). --cases runs llama.cpp's tokenizer test format.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "tokenizer/gguf_config.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::app {
namespace {

std::string ReadStream(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string JoinIds(const std::vector<int32_t>& ids, bool leading_space) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (leading_space || i > 0) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}

// llama.cpp's .inp format: cases separated by "\n__ggml_vocab_test__\n"; prints one line
// per case in the .out format (each id preceded by a space; no BOS/EOS; no special parsing).
int RunCases(const tokenizer::Tokenizer& tok, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "vlserve tokenize: cannot open cases file '%s'\n", path.c_str());
    return 1;
  }
  const std::string all = ReadStream(in);
  const std::string sep = "\n__ggml_vocab_test__\n";
  const tokenizer::EncodeOptions plain{.add_special = false, .parse_special = false};
  size_t pos = 0;
  for (size_t hit; (hit = all.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    const std::string line = JoinIds(tok.Encode(all.substr(pos, hit - pos), plain), true);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
  }
  return 0;
}

int RunDetokenize(const tokenizer::Tokenizer& tok, bool render_special) {
  std::vector<int32_t> ids;
  std::string word;
  while (std::cin >> word) {
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(word, &used);
      if (used != word.size()) id = -1;
    } catch (const std::exception&) {
      id = -1;
    }
    if (id < 0 || id >= tok.vocab_size()) {
      std::fprintf(stderr, "vlserve tokenize: '%s' is not a token id (vocabulary has %d)\n",
                   word.c_str(), tok.vocab_size());
      return 1;
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  const std::string text = tok.Decode(ids, {.render_special = render_special});
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);  // ends the line, as the ids of the other direction do
  return 0;
}

int RunTokenize(int argc, char** argv) {
  CLI::App app{
      "Tokenize stdin with the tokenizer of a GGUF file; prints ids separated by "
      "spaces (no trailing newline is stripped from the input)"};
  app.name("vlserve tokenize");
  std::string model, cases;
  bool no_bos = false, parse_special = false, detokenize = false, render_special = false;
  app.add_option("-m,--model", model, "GGUF file with tokenizer.ggml.* metadata")->required();
  app.add_flag("--no-bos", no_bos, "do not add BOS/EOS even if the model asks for them");
  app.add_flag("--parse-special", parse_special,
               "recognise control-token texts such as <|im_start|> in the input");
  app.add_option("--cases", cases,
                 "llama.cpp test file (X.gguf.inp): one line of ids per case, .out format");
  app.add_flag("--detokenize", detokenize, "read ids from stdin and print the text");
  app.add_flag("--render-special", render_special,
               "with --detokenize: print control tokens as their text");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok = tokenizer::LoadTokenizerFromGguf(model);
  if (!tok.ok()) {
    std::fprintf(stderr, "vlserve tokenize: %s\n", tok.status().ToString().c_str());
    return 1;
  }
  if (!cases.empty()) return RunCases(**tok, cases);
  if (detokenize) return RunDetokenize(**tok, render_special);
  const std::string text = ReadStream(std::cin);
  const std::vector<int32_t> ids =
      (*tok)->Encode(text, {.add_special = !no_bos, .parse_special = parse_special});
  const std::string line = JoinIds(ids, false);
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

VLSERVE_COMMAND("tokenize", "text <-> token ids with a GGUF model's tokenizer", RunTokenize);

}  // namespace vlserve::app
