#include "bench_serve/dataset.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <random>

#include "media/encode.h"
#include "media/image.h"

namespace vlserve::bench_serve {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, 5> kKindNames = {"text", "random-mm", "repeat-image",
                                                        "multi-turn", "document"};

// Seeds derived with SplitMix64 so neighbouring indices get unrelated streams.
uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Our own range mapping (not std::uniform_int_distribution, whose output differs between
// standard libraries) so a seed means the same bodies everywhere. The modulo bias is
// irrelevant for a load generator.
int Uniform(std::mt19937_64& rng, int lo, int hi) {
  return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

template <size_t N>
std::string_view Pick(std::mt19937_64& rng, const std::array<std::string_view, N>& items) {
  return items[rng() % N];
}

constexpr std::array<std::string_view, 48> kWords = {
    "system", "cache",  "image",  "token",   "model",    "request", "server",  "latency",
    "queue",  "memory", "vision", "encoder", "block",    "prefix",  "stream",  "client",
    "batch",  "layer",  "window", "river",   "mountain", "city",    "garden",  "market",
    "engine", "signal", "paper",  "record",  "summer",   "winter",  "north",   "south",
    "green",  "red",    "blue",   "small",   "large",    "quick",   "slow",    "bright",
    "quiet",  "early",  "late",   "simple",  "complex",  "shared",  "private", "stable"};

constexpr std::array<std::string_view, 8> kImageQuestions = {
    "What is in this image?",
    "Describe the picture in one sentence.",
    "Which colours dominate this image?",
    "How many shapes can you see?",
    "Is there a circle in the image?",
    "What is in the top left corner?",
    "Write a short caption for this image.",
    "Is the background light or dark?"};

constexpr std::array<std::string_view, 6> kFollowUps = {
    "Can you say more about that?",    "Why do you think so?",   "Give me a shorter answer.",
    "What would you change about it?", "Explain it to a child.", "List three details."};

constexpr std::array<std::string_view, 5> kBackReferences = {
    "Going back to the image: what colour is the largest shape?",
    "Looking at the picture again, is anything in the bottom right corner?",
    "In the image from my first message, how many edges do the shapes have?",
    "Back to the image: would it look different in black and white?",
    "Check the image once more: is the gradient horizontal or vertical?"};

constexpr std::array<std::string_view, 6> kTextQuestions = {
    "Summarise this paragraph.",
    "What is the main topic of the text above?",
    "Which word appears most often above?",
    "Rewrite the text as a single sentence.",
    "Is the text above about the weather?",
    "Give the paragraph a title."};

constexpr std::array<std::string_view, 5> kDocumentQuestions = {
    "Summarise the document in three sentences.", "What is section 2 about?",
    "List the headings of the document.", "Which section is the longest?",
    "What does the document say about the cache?"};

std::string Sentence(std::mt19937_64& rng) {
  std::string s;
  const int words = Uniform(rng, 6, 14);
  for (int i = 0; i < words; ++i) {
    std::string_view w = Pick(rng, kWords);
    if (i == 0) {
      s += static_cast<char>(w[0] - 'a' + 'A');
      s += w.substr(1);
    } else {
      s += ' ';
      s += w;
    }
  }
  return s + ". ";
}

// Paragraphs of sentences under "Section k" headings until `bytes` is reached.
std::string Document(std::mt19937_64& rng, size_t bytes) {
  std::string doc;
  for (int section = 1; doc.size() < bytes; ++section) {
    doc += "Section " + std::to_string(section) + "\n\n";
    const int sentences = Uniform(rng, 4, 9);
    for (int i = 0; i < sentences && doc.size() < bytes; ++i) doc += Sentence(rng);
    doc += "\n\n";
  }
  return doc;
}

bool HasImage(DatasetKind kind) {
  return kind == DatasetKind::kRandomMm || kind == DatasetKind::kRepeatImage ||
         kind == DatasetKind::kMultiTurn;
}

StatusOr<std::string> JpegDataUrl(uint64_t seed, int width, int height) {
  media::Image image = media::MakeImage(width, height);
  image.pixels = SyntheticImage(seed, width, height);
  ASSIGN_OR_RETURN(std::vector<uint8_t> jpeg, media::EncodeJpeg(image, 85));
  return "data:image/jpeg;base64," +
         Base64Encode(std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
}

json::object TextPart(std::string_view text) {
  return json::object{{"type", "text"}, {"text", text}};
}

}  // namespace

StatusOr<DatasetKind> ParseDatasetKind(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (kKindNames[i] == name) return static_cast<DatasetKind>(i);
  }
  return InvalidArgumentError("unknown dataset '" + std::string(name) +
                              "'; use one of: " + DatasetKindNames());
}

std::string_view DatasetKindName(DatasetKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

std::string DatasetKindNames() {
  std::string s;
  for (std::string_view n : kKindNames) s += (s.empty() ? "" : "|") + std::string(n);
  return s;
}

StatusOr<Dataset> Dataset::Create(DatasetOptions options) {
  Dataset d(std::move(options));
  if (d.options_.extra_body.empty()) return d;
  boost::system::error_code ec;
  json::value extra = json::parse(d.options_.extra_body, ec);
  if (ec || !extra.is_object()) {
    return InvalidArgumentError(
        "--extra-body must be a JSON object, e.g. "
        "'{\"temperature\": 0}'; got: " +
        d.options_.extra_body);
  }
  d.extra_ = std::move(extra.as_object());
  return d;
}

int Dataset::turns_per_conversation() const {
  return options_.kind == DatasetKind::kMultiTurn ? 3 : 1;
}

StatusOr<Conversation> Dataset::MakeConversation(int index) const {
  std::mt19937_64 rng(SplitMix64(options_.seed ^ SplitMix64(static_cast<uint64_t>(index))));
  Conversation c;
  c.index = index;
  switch (options_.kind) {
    case DatasetKind::kText:
      for (int i = Uniform(rng, 3, 8); i > 0; --i) c.context_text += Sentence(rng);
      c.questions.emplace_back(Pick(rng, kTextQuestions));
      break;
    case DatasetKind::kRandomMm:
    case DatasetKind::kRepeatImage:
      c.questions.emplace_back(Pick(rng, kImageQuestions));
      break;
    case DatasetKind::kMultiTurn:
      c.questions.emplace_back(Pick(rng, kImageQuestions));
      c.questions.emplace_back(Pick(rng, kFollowUps));
      c.questions.emplace_back(Pick(rng, kBackReferences));
      break;
    case DatasetKind::kDocument:
      c.document = Document(rng, static_cast<size_t>(Uniform(rng, 3072, 6144)));
      c.questions.emplace_back(Pick(rng, kDocumentQuestions));
      break;
  }
  if (HasImage(options_.kind)) {
    // repeat-image: one picture for the whole run, from the seed alone.
    const bool repeat = options_.kind == DatasetKind::kRepeatImage;
    std::mt19937_64 image_rng(repeat ? SplitMix64(options_.seed) : rng());
    c.image_width = Uniform(image_rng, 64, 640);
    c.image_height = Uniform(image_rng, 64, 480);
    ASSIGN_OR_RETURN(c.image_url, JpegDataUrl(image_rng(), c.image_width, c.image_height));
  }
  return c;
}

std::string Dataset::Body(const Conversation& c, int turn,
                          const std::vector<std::string>& answers) const {
  json::array messages;
  for (int t = 0; t <= turn; ++t) {
    json::value content;
    if (t > 0) {
      messages.push_back(json::object{{"role", "assistant"}, {"content", answers[t - 1]}});
    }
    if (t == 0 && !c.image_url.empty()) {
      json::object image{{"type", "image_url"}, {"image_url", json::object{{"url", c.image_url}}}};
      // Image first, as SmolVLM's examples put it: a new question about the same image
      // then shares the image's KV blocks (prefix reuse).
      content = json::array{std::move(image), TextPart(c.questions[0])};
    } else if (t == 0 && !c.document.empty()) {
      json::object doc{{"type", "document"}, {"text", c.document}};
      content = json::array{std::move(doc), TextPart(c.questions[0])};
    } else if (t == 0 && !c.context_text.empty()) {
      content = c.context_text + "\n\n" + c.questions[0];
    } else {
      content = c.questions[t];
    }
    messages.push_back(json::object{{"role", "user"}, {"content", std::move(content)}});
  }
  json::object body;
  if (!options_.model.empty()) body["model"] = options_.model;
  body["messages"] = std::move(messages);
  body["max_tokens"] = options_.max_tokens;
  body["stream"] = true;
  body["stream_options"] = json::object{{"include_usage", true}};
  // A fixed sampling seed per request makes a rerun against the same server repeat itself.
  body["seed"] = static_cast<int64_t>(
      SplitMix64(options_.seed + static_cast<uint64_t>(c.index) * 3 + turn) >> 33);
  for (const auto& [key, value] : extra_) body[key] = value;
  return json::serialize(body);
}

std::string Base64Encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v =
        (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) v |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::vector<uint8_t> SyntheticImage(uint64_t seed, int width, int height) {
  std::mt19937_64 rng(SplitMix64(seed));
  std::vector<uint8_t> px(static_cast<size_t>(width) * height * 3);
  uint8_t c0[3], c1[3];
  for (int k = 0; k < 3; ++k) c0[k] = rng() & 255, c1[k] = rng() & 255;
  const bool vertical = rng() & 1;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const float t = vertical ? float(y) / height : float(x) / width;
      for (int k = 0; k < 3; ++k) {
        const int noise = Uniform(rng, -8, 8);
        const int v = static_cast<int>(c0[k] + (c1[k] - c0[k]) * t) + noise;
        px[(static_cast<size_t>(y) * width + x) * 3 + k] = uint8_t(std::clamp(v, 0, 255));
      }
    }
  }
  for (int shapes = Uniform(rng, 3, 8); shapes > 0; --shapes) {
    const int cx = Uniform(rng, 0, width - 1), cy = Uniform(rng, 0, height - 1);
    const int r = Uniform(rng, 4, std::max(5, std::min(width, height) / 3));
    const bool disc = rng() & 1;
    const uint8_t color[3] = {uint8_t(rng()), uint8_t(rng()), uint8_t(rng())};
    for (int y = std::max(0, cy - r); y < std::min(height, cy + r); ++y) {
      for (int x = std::max(0, cx - r); x < std::min(width, cx + r); ++x) {
        if (disc && (x - cx) * (x - cx) + (y - cy) * (y - cy) > r * r) continue;
        std::copy(color, color + 3, &px[(static_cast<size_t>(y) * width + x) * 3]);
      }
    }
  }
  return px;
}

}  // namespace vlserve::bench_serve
