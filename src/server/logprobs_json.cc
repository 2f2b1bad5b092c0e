#include "server/logprobs_json.h"

#include <fmt/format.h>

#include <cmath>

#include "tokenizer/detokenizer.h"

namespace vlserve::server {
namespace json = boost::json;
namespace {

// What OpenAI and vLLM send for log(0).
constexpr double kLogZero = -9999.0;

double JsonLogprob(float lp) { return std::isfinite(lp) ? static_cast<double>(lp) : kLogZero; }

// A token's text as a JSON string: control tokens as their text; a piece that is only part
// of a UTF-8 character (byte-level tokens of emoji or CJK) gets its bytes as \xNN escapes,
// as OpenAI writes them (the exact bytes are in "bytes").
std::string TokenText(std::string_view piece) {
  if (tokenizer::SanitizeUtf8(piece) == piece) return std::string(piece);
  std::string out;
  for (const char c : piece) {
    const auto b = static_cast<uint8_t>(c);
    out += b < 0x80 ? std::string(1, c) : fmt::format("\\x{:02x}", b);
  }
  return out;
}

json::array Bytes(std::string_view piece) {
  json::array bytes;
  for (const char c : piece) bytes.push_back(static_cast<uint8_t>(c));
  return bytes;
}

json::object Entry(int32_t token, float logprob, const tokenizer::Tokenizer& tok) {
  const std::string_view piece = tok.Piece(token, /*render_special=*/true);
  json::object o;
  o["token"] = TokenText(piece);
  o["logprob"] = JsonLogprob(logprob);
  o["bytes"] = Bytes(piece);
  return o;
}

}  // namespace

int64_t CountCodePoints(std::string_view text) {
  int64_t n = 0;
  for (const char c : text) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

json::object ChatLogprobsJson(std::span<const engine::TokenLogprob> logprobs,
                              const tokenizer::Tokenizer& tok) {
  json::array content;
  for (const engine::TokenLogprob& lp : logprobs) {
    if (tok.IsEndOfGeneration(lp.token)) continue;
    json::object o = Entry(lp.token, lp.logprob, tok);
    json::array top;
    for (const engine::TopLogprob& t : lp.top) top.push_back(Entry(t.token, t.logprob, tok));
    o["top_logprobs"] = std::move(top);
    content.push_back(std::move(o));
  }
  json::object out;
  out["content"] = std::move(content);
  return out;
}

json::object CompletionLogprobsJson(std::span<const engine::TokenLogprob> logprobs,
                                    const tokenizer::Tokenizer& tok, int64_t* text_offset) {
  json::array tokens, token_logprobs, top_logprobs, offsets;
  for (const engine::TokenLogprob& lp : logprobs) {
    if (tok.IsEndOfGeneration(lp.token)) continue;
    const std::string_view piece = tok.Piece(lp.token, /*render_special=*/true);
    tokens.push_back(json::string(TokenText(piece)));
    token_logprobs.push_back(JsonLogprob(lp.logprob));
    json::object top;  // token text -> logprob; two ids with one text keep the likelier
    for (const engine::TopLogprob& t : lp.top) {
      const std::string text = TokenText(tok.Piece(t.token, true));
      if (!top.contains(text)) top[text] = JsonLogprob(t.logprob);
    }
    top_logprobs.push_back(std::move(top));
    offsets.push_back(*text_offset);
    *text_offset += CountCodePoints(piece);
  }
  json::object out;
  out["tokens"] = std::move(tokens);
  out["token_logprobs"] = std::move(token_logprobs);
  out["top_logprobs"] = std::move(top_logprobs);
  out["text_offset"] = std::move(offsets);
  return out;
}

}  // namespace vlserve::server
