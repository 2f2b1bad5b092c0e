// The `logprobs` objects of OpenAI's responses, from the engine's TokenLogprob entries:
// chat completions ({"content": [{token, logprob, bytes, top_logprobs}]}) and the legacy
// completions form ({tokens, token_logprobs, top_logprobs, text_offset}). A token of
// probability 0 gets -9999 (as OpenAI and vLLM send it: JSON has no -infinity), and
// end-of-generation tokens are left out (their text is not part of the answer).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <boost/json.hpp>

#include "engine/logprobs.h"
#include "tokenizer/tokenizer.h"

namespace vlserve::server {

// {"content": [...]} for choices[i].logprobs of chat.completion(.chunk).
boost::json::object ChatLogprobsJson(std::span<const engine::TokenLogprob> logprobs,
                                     const tokenizer::Tokenizer& tok);

// {"tokens", "token_logprobs", "top_logprobs", "text_offset"} of text_completion.
// `*text_offset`: characters (Unicode code points) of the text before the first token;
// advanced past these tokens, so a stream's chunks continue the count.
boost::json::object CompletionLogprobsJson(std::span<const engine::TokenLogprob> logprobs,
                                           const tokenizer::Tokenizer& tok,
                                           int64_t* text_offset);

// Code points in UTF-8 `text` (bytes that do not continue a character).
int64_t CountCodePoints(std::string_view text);

}  // namespace vlserve::server
