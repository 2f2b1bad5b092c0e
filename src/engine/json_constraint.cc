#include "engine/json_constraint.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/check.h"
#include "tokenizer/tokenizer.h"

namespace vlserve {
namespace {

using Kind = JsonGrammar::Kind;
using NodeId = JsonGrammar::NodeId;

bool IsBlank(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool IsDigit(uint8_t c) { return c >= '0' && c <= '9'; }
bool IsHex(uint8_t c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Phases of each frame kind (Frame::phase).
enum DocumentPhase : uint8_t { kDocBefore, kDocIn, kDocDone };
enum StringPhase : uint8_t { kStrOpen, kStrBody, kStrEscape, kStrUtf8, kStrHex };
// JSON number grammar: - ? (0 | [1-9] digit*) (. digit+)? ([eE] [+-]? digit+)?
enum NumberPhase : uint8_t {
  kNumStart,     // nothing yet
  kNumMinus,     // "-"
  kNumZero,      // "0" or "-0" (complete)
  kNumInt,       // integer digits (complete)
  kNumDot,       // "."
  kNumFrac,      // fraction digits (complete)
  kNumExp,       // "e"
  kNumExpSign,   // "e+" / "e-"
  kNumExpDigits  // exponent digits (complete)
};
// Objects (kObject and kFreeObject) and arrays.
enum ObjectPhase : uint8_t {
  kObjOpen, kObjFirst, kObjKey, kObjColon, kObjValueStart, kObjValue, kObjNext, kObjAfterComma
};
enum ArrayPhase : uint8_t { kArrOpen, kArrFirst, kArrNext, kArrAfterComma, kArrItem };

// Byte ranges a UTF-8 continuation byte may take after a lead byte (Unicode table 3-7:
// no overlong forms, no surrogates, nothing above U+10FFFF). 0 = not a lead byte.
int Utf8Length(uint8_t lead, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80, *hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (lead == 0xE0) *lo = 0xA0;
    if (lead == 0xED) *hi = 0x9F;
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (lead == 0xF0) *lo = 0x90;
    if (lead == 0xF4) *hi = 0x8F;
    return 4;
  }
  return 0;
}

// "text" with JSON's short escapes (as JSON writers emit them): the form a key must be
// generated in.
std::string KeyLiteral(std::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<uint8_t>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Grammar

NodeId JsonGrammarBuilder::Add(JsonGrammar::Node node) {
  if (!started_) {  // node 0: the document, filled in by Build
    started_ = true;
    g_.nodes_.push_back(JsonGrammar::Node{});
  }
  g_.nodes_.push_back(node);
  return static_cast<NodeId>(g_.nodes_.size() - 1);
}

NodeId JsonGrammarBuilder::String(int64_t min_length, int64_t max_length) {
  return Add({.kind = Kind::kString, .min = min_length, .max = max_length});
}
NodeId JsonGrammarBuilder::Number() { return Add({.kind = Kind::kNumber}); }
NodeId JsonGrammarBuilder::Integer() { return Add({.kind = Kind::kInteger}); }

NodeId JsonGrammarBuilder::Literals(std::vector<std::string> texts) {
  // Sorted, so the texts sharing a prefix are adjacent and the shortest comes first.
  std::sort(texts.begin(), texts.end());
  texts.erase(std::unique(texts.begin(), texts.end()), texts.end());
  const auto first = static_cast<uint32_t>(g_.literals_.size());
  for (std::string& t : texts) g_.literals_.push_back(std::move(t));
  return Add({.kind = Kind::kLiterals, .first = first, .count = static_cast<uint32_t>(texts.size())});
}

NodeId JsonGrammarBuilder::Array(NodeId item, int64_t min_items, int64_t max_items) {
  return Add({.kind = Kind::kArray, .item = item, .min = min_items, .max = max_items});
}

NodeId JsonGrammarBuilder::Object(const std::vector<PropertySpec>& properties) {
  const auto first = static_cast<uint32_t>(g_.properties_.size());
  const auto count = static_cast<uint32_t>(properties.size());
  for (const PropertySpec& p : properties) {
    g_.properties_.push_back({KeyLiteral(p.name), p.value, p.required, 0});
  }
  // After property i the next key is one of i.. up to and including the next required one.
  uint32_t next_required = count == 0 ? 0 : count - 1;
  for (uint32_t i = count; i-- > 0;) {
    JsonGrammar::Property& p = g_.properties_[first + i];
    if (p.required) next_required = i;
    p.last_candidate = next_required;
  }
  return Add({.kind = Kind::kObject, .first = first, .count = count});
}

NodeId JsonGrammarBuilder::AnyOf(const std::vector<NodeId>& alternatives) {
  const auto first = static_cast<uint32_t>(g_.children_.size());
  g_.children_.insert(g_.children_.end(), alternatives.begin(), alternatives.end());
  return Add(
      {.kind = Kind::kAnyOf, .first = first, .count = static_cast<uint32_t>(alternatives.size())});
}

NodeId JsonGrammarBuilder::AnyValueNode() {
  if (any_value_ != 0) return any_value_;
  // anyOf(object, array, string, number, literal): its first byte decides the branch. The
  // object and array refer back to it, so it is reserved before they exist.
  any_value_ = Add({.kind = Kind::kAnyOf});
  const NodeId str = String();
  const NodeId alternatives[] = {
      Add({.kind = Kind::kFreeObject, .item = any_value_, .key = str}),
      Array(any_value_, 0, -1), str, Number(), Literals({"false", "null", "true"})};
  JsonGrammar::Node& any = g_.nodes_[any_value_];
  any.first = static_cast<uint32_t>(g_.children_.size());
  any.count = std::size(alternatives);
  g_.children_.insert(g_.children_.end(), std::begin(alternatives), std::end(alternatives));
  return any_value_;
}

NodeId JsonGrammarBuilder::AnyValue() { return AnyValueNode(); }

NodeId JsonGrammarBuilder::AnyObject() {
  const NodeId any = AnyValueNode();
  return Add({.kind = Kind::kFreeObject, .item = any, .key = String()});
}

NodeId JsonGrammarBuilder::AnyArray() { return Array(AnyValueNode(), 0, -1); }

std::shared_ptr<const JsonGrammar> JsonGrammarBuilder::Build(NodeId root) {
  CHECK(started_ && root != 0 && root < g_.nodes_.size());
  g_.nodes_[0] = JsonGrammar::Node{.kind = Kind::kDocument, .item = root};
  g_.document_ = 0;
  auto out = std::make_shared<JsonGrammar>(std::move(g_));
  g_ = JsonGrammar{};
  started_ = false;
  any_value_ = 0;
  return out;
}

std::shared_ptr<const JsonGrammar> JsonGrammar::AnyObject() {
  JsonGrammarBuilder b;
  return b.Build(b.AnyObject());
}

// ---------------------------------------------------------------------------------------
// Vocabulary

ConstraintVocab::ConstraintVocab(const std::vector<std::string>& pieces,
                                 std::vector<int32_t> end_ids)
    : pieces_(pieces), end_ids_(std::move(end_ids)) {
  for (int32_t id : end_ids_) {
    if (id >= 0 && id < size()) pieces_[id].clear();  // never part of the text
  }
  for (size_t i = 0; i < pieces_.size(); ++i) {
    if (pieces_[i].empty()) continue;
    ids_.push_back(static_cast<int32_t>(i));
    max_len_ = std::max(max_len_, pieces_[i].size());
  }
  std::sort(ids_.begin(), ids_.end(), [this](int32_t a, int32_t b) {
    return pieces_[a] < pieces_[b] || (pieces_[a] == pieces_[b] && a < b);
  });
  BuildNode(0, ids_.size(), 0);
}

// ids_[lo, hi) share their first `depth` bytes; the ones exactly that long come first.
uint32_t ConstraintVocab::BuildNode(size_t lo, size_t hi, size_t depth) {
  const auto id = static_cast<uint32_t>(nodes_.size());
  nodes_.emplace_back();
  size_t i = lo;
  while (i < hi && pieces_[ids_[i]].size() == depth) ++i;
  std::vector<std::pair<size_t, size_t>> groups;  // by the byte at `depth`
  for (size_t j = i; j < hi;) {
    const char b = pieces_[ids_[j]][depth];
    size_t k = j + 1;
    while (k < hi && pieces_[ids_[k]][depth] == b) ++k;
    groups.emplace_back(j, k);
    j = k;
  }
  const auto edge_begin = static_cast<uint32_t>(edges_.size());
  edges_.resize(edges_.size() + groups.size());
  nodes_[id] = TrieNode{edge_begin, static_cast<uint32_t>(groups.size()),
                        static_cast<uint32_t>(lo), static_cast<uint32_t>(i - lo)};
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto byte = static_cast<uint8_t>(pieces_[ids_[groups[g].first]][depth]);
    const uint32_t child = BuildNode(groups[g].first, groups[g].second, depth + 1);
    edges_[edge_begin + g] = Edge{byte, child};
  }
  return id;
}

bool ConstraintVocab::IsEnd(int32_t id) const {
  return std::find(end_ids_.begin(), end_ids_.end(), id) != end_ids_.end();
}

std::unique_ptr<ConstraintVocab> ConstraintVocab::FromTokenizer(
    const tokenizer::Tokenizer& tokenizer) {
  std::vector<std::string> pieces(tokenizer.vocab_size());
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const tokenizer::TokenType type = tokenizer.token_type(id);
    if (type == tokenizer::TokenType::kNormal || type == tokenizer::TokenType::kByte) {
      pieces[id] = std::string(tokenizer.Piece(id));
    }
  }
  return std::make_unique<ConstraintVocab>(pieces, tokenizer.end_of_generation_ids());
}

// ---------------------------------------------------------------------------------------
// Matcher

JsonMatcher::JsonMatcher(std::shared_ptr<const JsonGrammar> grammar)
    : grammar_(std::move(grammar)), g_(grammar_.get()) {
  CHECK(g_ != nullptr);
  state_.frames.push_back(Frame{g_->document(), 0, 0, 0, kDocBefore});
  state_.alts.push_back(Alternative{0, 1, 0});
}

bool JsonMatcher::Completable(const Frame& f) const {
  const JsonGrammar::Node& n = g_->node(f.node);
  switch (n.kind) {
    case Kind::kNumber:
    case Kind::kInteger:
      return f.phase == kNumZero || f.phase == kNumInt || f.phase == kNumFrac ||
             f.phase == kNumExpDigits;
    case Kind::kLiterals:
      return f.b == g_->literal(n.first + f.a).size();
    default:
      return false;
  }
}

void JsonMatcher::ChildDone(Frame& parent) const {
  switch (g_->node(parent.node).kind) {
    case Kind::kDocument:
      parent.phase = kDocDone;
      break;
    case Kind::kObject:
      ++parent.a;
      parent.phase = kObjNext;
      break;
    case Kind::kFreeObject:
      parent.phase = parent.phase == kObjKey ? kObjColon : kObjNext;
      break;
    case Kind::kArray:
      ++parent.a;
      parent.phase = kArrNext;
      break;
    default:
      CHECK(false) << "a scalar frame has no children";
  }
}

JsonMatcher::Action JsonMatcher::Handle(Frame& f, uint8_t c, NodeId* child) const {
  const JsonGrammar::Node& n = g_->node(f.node);
  const bool blank = IsBlank(c);
  switch (n.kind) {
    case Kind::kDocument:
      if (f.phase != kDocBefore) return Action::kReject;  // nothing after the value
      if (blank) return Action::kBlank;
      f.phase = kDocIn;
      *child = n.item;
      return Action::kStartChild;

    case Kind::kString:
      switch (f.phase) {
        case kStrOpen:
          if (c != '"') return Action::kReject;
          f.phase = kStrBody;
          return Action::kConsumed;
        case kStrBody: {
          if (c == '"') return f.a >= n.min ? Action::kDone : Action::kReject;
          if (c < 0x20) return Action::kReject;  // raw control characters are invalid JSON
          if (n.max >= 0 && f.a >= n.max) return Action::kReject;
          if (c == '\\') {
            f.phase = kStrEscape;
            return Action::kConsumed;
          }
          ++f.a;  // a character, counted at its first byte
          if (c < 0x80) return Action::kConsumed;
          uint8_t lo, hi;
          const int len = Utf8Length(c, &lo, &hi);
          if (len == 0) return Action::kReject;
          f.phase = kStrUtf8;
          f.b = len - 1;
          f.c = static_cast<uint16_t>(lo | (hi << 8));
          return Action::kConsumed;
        }
        case kStrUtf8:
          if (c < (f.c & 0xFF) || c > (f.c >> 8)) return Action::kReject;
          f.c = 0x80 | (0xBF << 8);
          if (--f.b == 0) f.phase = kStrBody;
          return Action::kConsumed;
        case kStrEscape:
          if (c == 'u') {
            f.phase = kStrHex;
            f.b = 0;  // hex digits seen
            f.c = 0;
            return Action::kConsumed;
          }
          if (std::strchr("\"\\/bfnrt", c) == nullptr || c == 0) return Action::kReject;
          ++f.a;
          f.phase = kStrBody;
          return Action::kConsumed;
        case kStrHex:
          if (!IsHex(c)) return Action::kReject;
          // No \uD800-\uDFFF: a lone surrogate is rejected by strict parsers (text outside
          // the BMP comes as UTF-8 instead of a surrogate pair).
          if (f.b == 0 && (c == 'd' || c == 'D')) f.c = 1;
          if (f.b == 1 && f.c == 1 && !(c >= '0' && c <= '7')) return Action::kReject;
          if (++f.b == 4) {
            ++f.a;
            f.phase = kStrBody;
          }
          return Action::kConsumed;
      }
      return Action::kReject;

    case Kind::kNumber:
    case Kind::kInteger: {
      const bool real = n.kind == Kind::kNumber;
      const bool digit = IsDigit(c);
      auto to = [&f](uint8_t phase, uint32_t digits) {
        f.phase = phase;
        f.a = digits;
        return Action::kConsumed;
      };
      switch (f.phase) {
        case kNumStart:
          if (c == '-') return to(kNumMinus, 0);
          [[fallthrough]];
        case kNumMinus:
          if (c == '0') return to(kNumZero, 1);
          if (digit) return to(kNumInt, 1);
          return Action::kReject;
        case kNumZero:
        case kNumInt:
          if (f.phase == kNumInt && digit && f.a < kMaxIntegerDigits) return to(kNumInt, f.a + 1);
          if (real && c == '.') return to(kNumDot, 0);
          if (real && (c == 'e' || c == 'E')) return to(kNumExp, 0);
          return Action::kPopRetry;
        case kNumDot:
          return digit ? to(kNumFrac, 1) : Action::kReject;
        case kNumFrac:
          if (digit && f.a < kMaxFractionDigits) return to(kNumFrac, f.a + 1);
          if (c == 'e' || c == 'E') return to(kNumExp, 0);
          return Action::kPopRetry;
        case kNumExp:
          if (c == '+' || c == '-') return to(kNumExpSign, 0);
          [[fallthrough]];
        case kNumExpSign:
          return digit ? to(kNumExpDigits, 1) : Action::kReject;
        case kNumExpDigits:
          if (digit && f.a < kMaxExponentDigits) return to(kNumExpDigits, f.a + 1);
          return Action::kPopRetry;
      }
      return Action::kReject;
    }

    case Kind::kLiterals: {
      // Invariant: f.a is the first literal (in sorted order) that starts with the text
      // of this value so far, f.b bytes long.
      if (n.count == 0) return Action::kReject;
      const std::string& lit = g_->literal(n.first + f.a);
      const size_t pos = f.b;
      if (pos < lit.size() && static_cast<uint8_t>(lit[pos]) == c) {
        ++f.b;
      } else {
        bool found = false;
        for (uint32_t j = f.a + 1; j < n.count; ++j) {
          const std::string& other = g_->literal(n.first + j);
          if (other.compare(0, pos, lit, 0, pos) != 0) break;  // past the block of the prefix
          if (other.size() > pos && static_cast<uint8_t>(other[pos]) == c) {
            f.a = j;
            ++f.b;
            found = true;
            break;
          }
        }
        if (!found) return pos == lit.size() ? Action::kPopRetry : Action::kReject;
      }
      const std::string& now = g_->literal(n.first + f.a);
      const bool extendable =
          f.a + 1 < n.count && g_->literal(n.first + f.a + 1).starts_with(now);
      return f.b == now.size() && !extendable ? Action::kDone : Action::kConsumed;
    }

    case Kind::kObject:
    case Kind::kFreeObject: {
      const bool free = n.kind == Kind::kFreeObject;
      // Schema objects may close once no required property is left.
      auto can_close = [&]() {
        if (free || f.a >= n.count) return true;
        const JsonGrammar::Property& p = g_->property(n.first + f.a);
        return !g_->property(n.first + p.last_candidate).required;
      };
      switch (f.phase) {
        case kObjOpen:
          if (c != '{') return Action::kReject;
          f.phase = kObjFirst;
          return Action::kConsumed;
        case kObjFirst:
        case kObjAfterComma:
          if (blank) return Action::kBlank;
          if (c == '}' && f.phase == kObjFirst && can_close()) return Action::kDone;
          if (c != '"') return Action::kReject;
          if (free) {
            f.phase = kObjKey;
            *child = n.key;
            return Action::kStartChild;
          }
          if (f.a >= n.count) return Action::kReject;
          f.phase = kObjKey;
          f.b = f.a;  // candidate property
          f.c = 1;    // bytes of its key matched (the opening quote)
          return Action::kConsumed;
        case kObjKey: {
          // Candidates: properties a .. last_candidate(a), in schema order; f.b is the
          // first one whose key starts with the f.c bytes written so far.
          const std::string& key = g_->property(n.first + f.b).key;
          const size_t pos = f.c;
          if (!(pos < key.size() && static_cast<uint8_t>(key[pos]) == c)) {
            const uint32_t last = g_->property(n.first + f.a).last_candidate;
            bool found = false;
            for (uint32_t j = f.b + 1; j <= last; ++j) {
              const std::string& other = g_->property(n.first + j).key;
              if (other.size() > pos && static_cast<uint8_t>(other[pos]) == c &&
                  other.compare(0, pos, key, 0, pos) == 0) {
                f.b = j;
                found = true;
                break;
              }
            }
            if (!found) return Action::kReject;
          }
          ++f.c;
          // Quoted keys are prefix-free: the closing quote ends exactly one of them.
          if (f.c == g_->property(n.first + f.b).key.size()) {
            f.a = f.b;
            f.phase = kObjColon;
          }
          return Action::kConsumed;
        }
        case kObjColon:
          if (blank) return Action::kBlank;
          if (c != ':') return Action::kReject;
          f.phase = kObjValueStart;
          return Action::kConsumed;
        case kObjValueStart:
          if (blank) return Action::kBlank;
          f.phase = kObjValue;
          *child = free ? n.item : g_->property(n.first + f.a).value;
          return Action::kStartChild;
        case kObjNext:
          if (blank) return Action::kBlank;
          if (c == ',' && (free || f.a < n.count)) {
            f.phase = kObjAfterComma;
            return Action::kConsumed;
          }
          if (c == '}' && can_close()) return Action::kDone;
          return Action::kReject;
      }
      return Action::kReject;
    }

    case Kind::kArray:
      switch (f.phase) {
        case kArrOpen:
          if (c != '[') return Action::kReject;
          f.phase = kArrFirst;
          return Action::kConsumed;
        case kArrFirst:
        case kArrAfterComma:
          if (blank) return Action::kBlank;
          if (c == ']' && f.phase == kArrFirst && n.min <= 0) return Action::kDone;
          if (n.max == 0) return Action::kReject;
          f.phase = kArrItem;
          *child = n.item;
          return Action::kStartChild;
        case kArrNext:
          if (blank) return Action::kBlank;
          if (c == ',' && (n.max < 0 || f.a < n.max)) {
            f.phase = kArrAfterComma;
            return Action::kConsumed;
          }
          if (c == ']' && f.a >= n.min) return Action::kDone;
          return Action::kReject;
      }
      return Action::kReject;

    case Kind::kAnyOf:
      break;
  }
  CHECK(false) << "anyOf never becomes a frame";
  return Action::kReject;
}

void JsonMatcher::Emit(const Frame* work, int depth, int blanks, State* out) const {
  for (const Alternative& alt : out->alts) {
    if (alt.depth == depth && alt.blanks == blanks &&
        std::memcmp(out->frames.data() + alt.begin, work, depth * sizeof(Frame)) == 0) {
      return;  // two branches reached the same state
    }
  }
  // Past the cap a branch is dropped: fewer texts are allowed, never an invalid one.
  if (out->alts.size() >= static_cast<size_t>(kMaxAlternatives)) return;
  out->alts.push_back(Alternative{static_cast<uint32_t>(out->frames.size()),
                                  static_cast<uint16_t>(depth), static_cast<uint16_t>(blanks)});
  out->frames.insert(out->frames.end(), work, work + depth);
}

void JsonMatcher::StartValue(NodeId node, Frame* work, int depth, uint8_t c, State* out) const {
  const JsonGrammar::Node& n = g_->node(node);
  if (n.kind == Kind::kAnyOf) {
    for (uint32_t i = 0; i < n.count; ++i) {
      Frame copy[kMaxDepth + 1];
      std::memcpy(copy, work, depth * sizeof(Frame));
      StartValue(g_->child(n.first + i), copy, depth, c, out);
    }
    return;
  }
  if (depth >= kMaxDepth) return;
  work[depth] = Frame{node, 0, 0, 0, 0};
  StepAlt(work, depth + 1, 0, c, out);
}

void JsonMatcher::StepAlt(Frame* work, int depth, int blanks, uint8_t c, State* out) const {
  while (depth > 0) {
    NodeId child = 0;
    switch (Handle(work[depth - 1], c, &child)) {
      case Action::kReject:
        return;
      case Action::kConsumed:
        Emit(work, depth, 0, out);
        return;
      case Action::kBlank: {
        // A run holds at most one line break: indentation, not empty lines.
        const int flag = c == '\n' ? kRunHasNewline : c == '\r' ? kRunHasReturn : 0;
        if ((blanks & kRunLengthMask) >= kMaxWhitespaceRun || (blanks & flag) != 0) return;
        Emit(work, depth, (blanks + 1) | flag, out);
        return;
      }
      case Action::kDone:  // the value ended with this byte
        --depth;
        ChildDone(work[depth - 1]);
        Emit(work, depth, 0, out);
        return;
      case Action::kPopRetry:  // the value ended before this byte: the parent takes it
        --depth;
        ChildDone(work[depth - 1]);
        continue;
      case Action::kStartChild:
        StartValue(child, work, depth, c, out);
        return;
    }
  }
}

bool JsonMatcher::Step(const State& in, uint8_t c, State* out) const {
  out->frames.clear();
  out->alts.clear();
  Frame work[kMaxDepth + 1];
  for (const Alternative& alt : in.alts) {
    std::memcpy(work, in.frames.data() + alt.begin, alt.depth * sizeof(Frame));
    StepAlt(work, alt.depth, alt.blanks, c, out);
  }
  return !out->empty();
}

bool JsonMatcher::CanAdvance(std::string_view bytes) const {
  if (bytes.empty()) return false;
  const State* cur = &state_;
  State* bufs[2] = {&scratch_a_, &scratch_b_};
  for (size_t i = 0; i < bytes.size(); ++i) {
    State* next = bufs[i & 1];
    if (!Step(*cur, static_cast<uint8_t>(bytes[i]), next)) return false;
    cur = next;
  }
  return true;
}

bool JsonMatcher::Advance(std::string_view bytes) {
  if (!CanAdvance(bytes)) return false;
  std::swap(state_, (bytes.size() & 1) != 0 ? scratch_a_ : scratch_b_);
  return true;
}

bool JsonMatcher::AltDone(const State& s, const Alternative& alt) const {
  return alt.depth == 1 && s.frames[alt.begin].phase == kDocDone;
}

bool JsonMatcher::AltCanEnd(const State& s, const Alternative& alt) const {
  return AltDone(s, alt) || (alt.depth == 2 && Completable(s.frames[alt.begin + 1]));
}

bool JsonMatcher::CanEnd() const {
  return std::any_of(state_.alts.begin(), state_.alts.end(),
                     [this](const Alternative& a) { return AltCanEnd(state_, a); });
}

bool JsonMatcher::Done() const {
  return !state_.alts.empty() &&
         std::all_of(state_.alts.begin(), state_.alts.end(),
                     [this](const Alternative& a) { return AltDone(state_, a); });
}

bool JsonMatcher::Allows(const ConstraintVocab& vocab, int32_t token) const {
  if (token < 0 || token >= vocab.size()) return false;
  if (vocab.IsEnd(token)) return CanEnd();
  return CanAdvance(vocab.piece(token));
}

bool JsonMatcher::Accept(const ConstraintVocab& vocab, int32_t token) {
  if (token < 0 || token >= vocab.size()) return false;
  if (vocab.IsEnd(token)) return CanEnd();
  return Advance(vocab.piece(token));
}

void JsonMatcher::Walk(const ConstraintVocab& vocab, uint32_t node, size_t depth,
                       std::vector<uint8_t>* allowed) const {
  const ConstraintVocab::TrieNode& t = vocab.nodes()[node];
  for (uint32_t i = 0; i < t.token_count; ++i) (*allowed)[vocab.ids()[t.token_begin + i]] = 1;
  for (uint32_t e = 0; e < t.edge_count; ++e) {
    const ConstraintVocab::Edge& edge = vocab.edges()[t.edge_begin + e];
    if (Step(walk_[depth], edge.byte, &walk_[depth + 1])) Walk(vocab, edge.node, depth + 1, allowed);
  }
}

void JsonMatcher::AllowedTokens(const ConstraintVocab& vocab, std::vector<uint8_t>* allowed) const {
  allowed->assign(vocab.size(), 0);
  if (walk_.size() < vocab.max_piece_length() + 1) walk_.resize(vocab.max_piece_length() + 1);
  walk_[0] = state_;
  bool any = false;
  if (!vocab.nodes().empty()) {
    Walk(vocab, 0, 0, allowed);
    any = std::find(allowed->begin(), allowed->end(), 1) != allowed->end();
  }
  if (CanEnd() || !any) {
    for (int32_t id : vocab.end_ids()) {
      if (id >= 0 && id < vocab.size()) (*allowed)[id] = 1;
    }
  }
}

}  // namespace vlserve
