// Synthetic request bodies for `vlserve bench-serve`, a pure function of (seed, index).
//
// A run is a sequence of conversations; each conversation is one request, except for the
// multi-turn dataset (3 turns, each a request that carries the earlier turns and the
// server's answers as history). Requests are OpenAI chat bodies with "stream": true and
// "stream_options": {"include_usage": true} (docs/api.md).
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace vlserve::bench_serve {

enum class DatasetKind {
  kText,         // a question about a generated paragraph, no media
  kRandomMm,     // a question + one random synthetic JPEG per request
  kRepeatImage,  // the same JPEG every request, a different question
  kMultiTurn,    // 3-turn chats about one image
  kDocument,     // a 3-6 KB generated text as a `document` part + a question
};

StatusOr<DatasetKind> ParseDatasetKind(std::string_view name);
std::string_view DatasetKindName(DatasetKind kind);
// "text|random-mm|repeat-image|multi-turn|document"
std::string DatasetKindNames();

struct DatasetOptions {
  DatasetKind kind = DatasetKind::kText;
  uint64_t seed = 0;
  int max_tokens = 128;
  std::string model;  // "" = leave "model" out (the server's own model)
  // A JSON object whose fields are added to every body (overriding ours), e.g.
  // {"temperature": 0} or {"logit_bias": {...}}; "" = none. Validated by the Dataset ctor.
  std::string extra_body;
};

// Everything a conversation needs, generated once per conversation.
struct Conversation {
  int index = 0;
  std::vector<std::string> questions;  // one per turn
  std::string context_text;            // text dataset: the paragraph asked about
  std::string image_url;               // "data:image/jpeg;base64,..." or ""
  int image_width = 0, image_height = 0;
  std::string document;  // document dataset: the document text
};

class Dataset {
 public:
  // Errors: extra_body that is not a JSON object.
  static StatusOr<Dataset> Create(DatasetOptions options);

  const DatasetOptions& options() const { return options_; }
  int turns_per_conversation() const;

  // Deterministic in (seed, index). Fails only if JPEG encoding fails.
  StatusOr<Conversation> MakeConversation(int index) const;

  // The request body of `turn` (0-based); `answers` holds the server's answers to the
  // turns before it (answers.size() >= turn; extra entries are ignored).
  std::string Body(const Conversation& conversation, int turn,
                   const std::vector<std::string>& answers) const;

 private:
  explicit Dataset(DatasetOptions options) : options_(std::move(options)) {}

  DatasetOptions options_;
  boost::json::object extra_;  // parsed extra_body
};

// Standard base64 (RFC 4648, with '=' padding).
std::string Base64Encode(std::string_view bytes);

// A synthetic picture: a two-colour gradient, a few random rectangles and discs, noise.
// RGB8 [height, width, 3]. Deterministic in the seed.
std::vector<uint8_t> SyntheticImage(uint64_t seed, int width, int height);

}  // namespace vlserve::bench_serve
