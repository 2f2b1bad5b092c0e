// Structured output (response_format json_object / json_schema): the generated text is
// kept a prefix of one JSON value that a JsonGrammar describes. docs/api.md
// "Structured output" is the user-facing spec.
//
//  - JsonGrammar: a tree of value nodes (object with properties in a fixed order, free
//    object, array, string, number, integer, literal set, anyOf), built with
//    JsonGrammarBuilder. The server compiles JSON Schema into it (server/json_schema.h);
//    immutable afterwards and shared by requests.
//  - JsonMatcher: a byte-level pushdown automaton over the generated text, one per
//    request. Its state is a small set of stacks of frames (several only while anyOf
//    branches are still undecided). Whitespace is allowed between JSON tokens in runs of
//    at most kMaxWhitespaceRun bytes with at most one line break (one "\n", one "\r"),
//    so a model cannot loop on blanks; none is allowed after the value, which ends
//    generation as soon as it is complete.
//  - ConstraintVocab: the vocabulary as byte strings in a trie (built once per tokenizer).
//    A token is allowed iff its bytes keep the text a valid prefix; CONTROL, USER_DEFINED
//    and other special tokens never are, end-of-generation tokens only once the value is
//    complete. The full mask walks the trie, pruning a subtree at its first invalid byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace vlserve {

namespace tokenizer {
class Tokenizer;
}

class JsonGrammar {
 public:
  using NodeId = uint32_t;
  enum class Kind : uint8_t {
    kDocument,    // the synthetic root frame: optional blanks, then `item`, then nothing
    kObject,      // properties_[first, first + count), keys in that order
    kFreeObject,  // any keys (`key`, a string node), values `item`
    kArray,       // items `item`, between min and max (-1 = unbounded) of them
    kString,      // between min and max (-1 = unbounded) characters
    kNumber,      // JSON number
    kInteger,     // JSON number without fraction or exponent
    kLiterals,    // one of literals_[first, first + count) (sorted JSON texts)
    kAnyOf,       // one of children_[first, first + count); never a frame of its own
  };
  struct Node {
    Kind kind = Kind::kDocument;
    uint32_t first = 0, count = 0;
    NodeId item = 0, key = 0;
    int64_t min = 0, max = -1;
  };
  struct Property {
    std::string key;         // the key as the model must write it, quotes included
    NodeId value = 0;
    bool required = false;
    uint32_t last_candidate = 0;  // keys that may come next: [this, last_candidate]
  };

  const Node& node(NodeId id) const { return nodes_[id]; }
  NodeId document() const { return document_; }
  const Property& property(uint32_t i) const { return properties_[i]; }
  const std::string& literal(uint32_t i) const { return literals_[i]; }
  NodeId child(uint32_t i) const { return children_[i]; }

  // Any JSON object (response_format json_object).
  static std::shared_ptr<const JsonGrammar> AnyObject();

 private:
  friend class JsonGrammarBuilder;
  std::vector<Node> nodes_;
  std::vector<Property> properties_;
  std::vector<std::string> literals_;
  std::vector<NodeId> children_;
  NodeId document_ = 0;
};

// Builds a JsonGrammar bottom-up: each call returns the new node's id.
class JsonGrammarBuilder {
 public:
  struct PropertySpec {
    std::string name;  // unescaped key
    JsonGrammar::NodeId value = 0;
    bool required = false;
  };
  JsonGrammar::NodeId String(int64_t min_length = 0, int64_t max_length = -1);
  JsonGrammar::NodeId Number();
  JsonGrammar::NodeId Integer();
  JsonGrammar::NodeId Boolean() { return Literals({"false", "true"}); }
  JsonGrammar::NodeId Null() { return Literals({"null"}); }
  // Each text must be one serialized JSON scalar (the caller's JSON library writes it).
  JsonGrammar::NodeId Literals(std::vector<std::string> json_texts);
  JsonGrammar::NodeId Array(JsonGrammar::NodeId item, int64_t min_items, int64_t max_items);
  JsonGrammar::NodeId Object(const std::vector<PropertySpec>& properties);
  JsonGrammar::NodeId AnyOf(const std::vector<JsonGrammar::NodeId>& alternatives);
  JsonGrammar::NodeId AnyValue();   // any JSON value
  JsonGrammar::NodeId AnyObject();  // any JSON object
  JsonGrammar::NodeId AnyArray();   // array of any values
  std::shared_ptr<const JsonGrammar> Build(JsonGrammar::NodeId root);

 private:
  JsonGrammar::NodeId Add(JsonGrammar::Node node);
  JsonGrammar::NodeId AnyValueNode();
  JsonGrammar g_;
  JsonGrammar::NodeId any_value_ = 0;  // 0 = not built yet (node 0 is never a value)
  bool started_ = false;
};

// The vocabulary's allowed tokens as a byte trie. Tokens with an empty piece are never
// allowed; `end_ids` are allowed only when the value is complete.
class ConstraintVocab {
 public:
  // pieces[id] = the token's bytes ("" = never allowed, e.g. special tokens).
  ConstraintVocab(const std::vector<std::string>& pieces, std::vector<int32_t> end_ids);
  // NORMAL and BYTE tokens by their bytes; the tokenizer's end-of-generation set.
  static std::unique_ptr<ConstraintVocab> FromTokenizer(const tokenizer::Tokenizer& tokenizer);

  struct TrieNode {
    uint32_t edge_begin = 0, edge_count = 0;   // edges_[begin, begin + count), by byte
    uint32_t token_begin = 0, token_count = 0; // ids_[...]: tokens ending here
  };
  struct Edge {
    uint8_t byte;
    uint32_t node;
  };
  int64_t size() const { return static_cast<int64_t>(pieces_.size()); }
  std::string_view piece(int32_t id) const { return pieces_[id]; }
  bool IsEnd(int32_t id) const;
  const std::vector<int32_t>& end_ids() const { return end_ids_; }
  const std::vector<TrieNode>& nodes() const { return nodes_; }
  const std::vector<Edge>& edges() const { return edges_; }
  const std::vector<int32_t>& ids() const { return ids_; }
  size_t max_piece_length() const { return max_len_; }

 private:
  uint32_t BuildNode(size_t lo, size_t hi, size_t depth);
  std::vector<std::string> pieces_;
  std::vector<int32_t> end_ids_;
  std::vector<int32_t> ids_;  // allowed token ids sorted by piece bytes
  std::vector<TrieNode> nodes_;
  std::vector<Edge> edges_;
  size_t max_len_ = 0;
};

class JsonMatcher {
 public:
  // Blank bytes (space, tab, CR, LF) in a row between two JSON tokens.
  static constexpr int kMaxWhitespaceRun = 16;
  // Alternative::blanks: the run's length, and which line-break bytes it already has.
  static constexpr int kRunLengthMask = 0xFF, kRunHasNewline = 0x100, kRunHasReturn = 0x200;
  // Nesting depth (frames), stacks kept while anyOf is undecided, and digits per part of
  // a number: beyond them the text is refused (bounds the state and endless numbers).
  static constexpr int kMaxDepth = 64;
  static constexpr int kMaxAlternatives = 32;
  static constexpr uint32_t kMaxIntegerDigits = 20, kMaxFractionDigits = 20,
                            kMaxExponentDigits = 3;

  struct Frame {
    JsonGrammar::NodeId node;
    uint32_t a;  // per kind: property / literal / count / characters
    uint32_t b;  // per kind: candidate key / literal position / pending UTF-8 bytes
    uint16_t c;  // per kind: key position / UTF-8 byte range / hex digits
    uint8_t phase;
    uint8_t unused = 0;
  };
  struct Alternative {
    uint32_t begin;  // frames [begin, begin + depth), bottom first
    uint16_t depth;
    uint16_t blanks;  // the current blank run: length | kRunHas* flags
  };
  struct State {
    std::vector<Frame> frames;
    std::vector<Alternative> alts;
    bool empty() const { return alts.empty(); }
  };

  explicit JsonMatcher(std::shared_ptr<const JsonGrammar> grammar);

  // Appends `bytes` if the text stays a valid prefix (true); else leaves it unchanged.
  bool Advance(std::string_view bytes);
  bool CanAdvance(std::string_view bytes) const;
  // The text is one complete value (an end-of-generation token may come).
  bool CanEnd() const;
  // Complete, and no byte may follow (generation must end).
  bool Done() const;

  // Token-level: an end token is allowed iff CanEnd(); another token iff its piece is
  // allowed (never an empty piece).
  bool Allows(const ConstraintVocab& vocab, int32_t token) const;
  // allowed[id] = 1 for the tokens Allows() accepts ([vocab.size()]). When no token is
  // (the vocabulary cannot spell any continuation), the end tokens are allowed so
  // generation stops instead of producing invalid text.
  void AllowedTokens(const ConstraintVocab& vocab, std::vector<uint8_t>* allowed) const;
  // Advances by the token's bytes (an end token leaves the state alone).
  bool Accept(const ConstraintVocab& vocab, int32_t token);

 private:
  enum class Action { kReject, kConsumed, kBlank, kDone, kPopRetry, kStartChild };
  bool Step(const State& in, uint8_t c, State* out) const;
  void StepAlt(Frame* work, int depth, int blanks, uint8_t c, State* out) const;
  void StartValue(JsonGrammar::NodeId node, Frame* work, int depth, uint8_t c,
                  State* out) const;
  Action Handle(Frame& f, uint8_t c, JsonGrammar::NodeId* child) const;
  void ChildDone(Frame& parent) const;
  bool Completable(const Frame& f) const;
  void Emit(const Frame* work, int depth, int blanks, State* out) const;
  bool AltDone(const State& s, const Alternative& alt) const;
  bool AltCanEnd(const State& s, const Alternative& alt) const;
  void Walk(const ConstraintVocab& vocab, uint32_t node, size_t depth,
            std::vector<uint8_t>* allowed) const;

  std::shared_ptr<const JsonGrammar> grammar_;
  const JsonGrammar* g_;
  State state_;
  mutable State scratch_a_, scratch_b_;
  mutable std::vector<State> walk_;  // [trie depth + 1]: the state after each prefix
};

}  // namespace vlserve
