// JSON Schema -> JsonGrammar (server/json_schema.h): refused keywords name themselves and
// their place; and random byte walks through compiled grammars always end in text that
// Boost.JSON parses and that a separate, hand-written validator of the subset accepts.
#include "server/json_schema.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace vlserve::server {
namespace {

namespace json = boost::json;

StatusOr<std::shared_ptr<const JsonGrammar>> Compile(std::string_view schema) {
  return CompileJsonSchema(json::parse(schema), "schema");
}

TEST(JsonSchemaTest, RefusesUnsupportedKeywordsByName) {
  struct Case {
    const char* schema;
    const char* must_mention;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"type": "string", "pattern": "^a"})", "'pattern'"},
           {R"({"type": "string", "format": "date"})", "'format'"},
           {R"({"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}})",
            "schema.properties.a: keyword 'minimum'"},
           {R"({"type": "array", "items": {"type": "number", "multipleOf": 2}})",
            "schema.items: keyword 'multipleOf'"},
           {R"({"$ref": "#/$defs/a", "$defs": {"a": {}}})", "inline"},
           {R"({"oneOf": [{"type": "string"}]})", "'oneOf'"},
           {R"({"allOf": [{"type": "string"}]})", "'allOf'"},
           {R"({"type": "object", "additionalProperties": {"type": "string"}})",
            "additionalProperties"},
           {R"({"type": "object", "patternProperties": {}})", "'patternProperties'"},
           {R"({"type": "array", "items": [{"type": "string"}]})", "tuple"},
           {R"({"type": "array", "prefixItems": [{"type": "string"}]})", "'prefixItems'"},
           {R"({"type": "object", "properties": {"a": {}}, "required": ["b"]})", "'b'"},
           {R"({"enum": [{"a": 1}]})", "enum/const values"},
           {R"({"enum": []})", "non-empty"},
           {R"({"type": "string", "enum": [1]})", "does not have the schema's 'type'"},
           {R"({"enum": ["a"], "maxLength": 3})", "'maxLength' cannot be combined"},
           {R"({"type": "string", "minLength": 5, "maxLength": 2})", "minLength"},
           {R"({"type": "array", "maxItems": -1})", "'maxItems' must be between"},
           {R"({"type": "integer", "maxLength": 3})", "'maxLength' applies to type 'string'"},
           {R"({"type": "decimal"})", "not a JSON Schema type"},
           {R"({"type": "string", "anyOf": [{"maxLength": 1}]})", "anyOf"},
           {R"({"anyOf": []})", "non-empty"},
           {R"(false)", "allows no value"},
           {R"("string")", "must be an object"},
           {R"({"not": {}})", "'not'"},
       }) {
    const auto g = Compile(c.schema);
    ASSERT_FALSE(g.ok()) << c.schema;
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << c.schema;
    EXPECT_NE(g.status().message().find(c.must_mention), std::string::npos)
        << c.schema << " -> " << g.status().message();
  }
}

TEST(JsonSchemaTest, RefusesSchemasTooDeep) {
  std::string schema = R"({"type": "string"})";
  for (int i = 0; i < 40; ++i) schema = R"({"type": "array", "items": )" + schema + "}";
  json::parse_options deep;  // Boost.JSON's own default limit (32) would refuse it first
  deep.max_depth = 100;
  boost::system::error_code ec;
  const json::value v = json::parse(schema, ec, {}, deep);
  ASSERT_FALSE(ec) << ec.message();
  const auto g = CompileJsonSchema(v, "schema");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("deeper"), std::string::npos) << g.status().message();
}

// --- an independent validator of the supported subset -----------------------------------

size_t CodePoints(json::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

bool HasType(const json::value& v, std::string_view t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_bool();
  if (t == "null") return v.is_null();
  if (t == "number") return v.is_number();
  if (t == "integer") {  // 20-digit integers parse as doubles: integral is what counts
    return v.is_int64() || v.is_uint64() ||
           (v.is_double() && v.as_double() == std::trunc(v.as_double()));
  }
  return false;
}

bool SameScalar(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) return a.to_number<double>() == b.to_number<double>();
  return a == b;
}

// Properties must appear in schema order (vlserve's documented behaviour).
bool Conforms(const json::value& v, const json::value& schema) {
  if (schema.is_bool()) return schema.as_bool();
  const json::object& s = schema.as_object();
  if (const json::value* any = s.if_contains("anyOf")) {
    for (const json::value& branch : any->as_array()) {
      if (Conforms(v, branch)) return true;
    }
    return false;
  }
  if (const json::value* c = s.if_contains("const")) return SameScalar(v, *c);
  if (const json::value* e = s.if_contains("enum")) {
    for (const json::value& x : e->as_array()) {
      if (SameScalar(v, x)) return true;
    }
    return false;
  }
  if (const json::value* t = s.if_contains("type")) {
    bool ok = false;
    if (t->is_string()) ok = HasType(v, t->as_string());
    if (t->is_array()) {
      for (const json::value& name : t->as_array()) ok = ok || HasType(v, name.as_string());
    }
    if (!ok) return false;
  }
  if (v.is_object() && s.contains("properties")) {
    const json::object& props = s.at("properties").as_object();
    size_t last_index = 0;
    for (const auto& [key, value] : v.as_object()) {
      auto it = props.find(key);
      if (it == props.end()) return false;  // vlserve never generates extra properties
      const size_t index = static_cast<size_t>(it - props.begin());
      if (index < last_index) return false;
      last_index = index + 1;
      if (!Conforms(value, it->value())) return false;
    }
    if (const json::value* r = s.if_contains("required")) {
      for (const json::value& name : r->as_array()) {
        if (!v.as_object().contains(name.as_string())) return false;
      }
    }
  }
  if (v.is_array()) {
    const json::array& a = v.as_array();
    if (s.contains("minItems") && a.size() < s.at("minItems").to_number<uint64_t>()) return false;
    if (s.contains("maxItems") && a.size() > s.at("maxItems").to_number<uint64_t>()) return false;
    if (const json::value* items = s.if_contains("items")) {
      for (const json::value& x : a) {
        if (!Conforms(x, *items)) return false;
      }
    }
  }
  if (v.is_string()) {
    const size_t n = CodePoints(v.as_string());
    if (s.contains("minLength") && n < s.at("minLength").to_number<uint64_t>()) return false;
    if (s.contains("maxLength") && n > s.at("maxLength").to_number<uint64_t>()) return false;
  }
  return true;
}

// Walks the automaton one random allowed byte at a time (closing bytes favoured so walks
// end), stopping at a complete value. "" if it did not end within the budget.
std::string RandomWalk(const std::shared_ptr<const JsonGrammar>& g, std::mt19937& rng) {
  JsonMatcher m(g);
  std::string text;
  for (int step = 0; step < 4000; ++step) {
    if (m.Done() || (m.CanEnd() && rng() % 4 == 0)) return text;
    std::vector<char> ok, closers;
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      if (!m.CanAdvance(std::string_view(&c, 1))) continue;
      ok.push_back(c);
      if (c == '"' || c == '}' || c == ']' || c == ',') closers.push_back(c);
    }
    if (ok.empty()) return "";  // a dead end would be a bug
    const std::vector<char>& from = !closers.empty() && rng() % 2 == 0 ? closers : ok;
    const char c = from[rng() % from.size()];
    EXPECT_TRUE(m.Advance(std::string_view(&c, 1)));
    text += c;
  }
  return "";
}

void CheckRandomWalks(const std::string& schema_text, int walks) {
  const json::value schema = json::parse(schema_text);
  const auto g = CompileJsonSchema(schema, "schema");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  std::mt19937 rng(12345);
  int finished = 0;
  for (int i = 0; i < walks; ++i) {
    const std::string text = RandomWalk(*g, rng);
    if (text.empty()) continue;
    ++finished;
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    ASSERT_FALSE(ec) << ec.message() << ": " << text;
    EXPECT_TRUE(Conforms(v, schema)) << text;
  }
  EXPECT_GT(finished, walks / 2);
}

TEST(JsonSchemaTest, RandomWalksAreValidAndConform) {
  CheckRandomWalks(R"({"type": "object", "properties": {
      "id": {"type": "integer"},
      "name": {"type": "string", "maxLength": 8, "description": "who"},
      "score": {"type": "number"},
      "flag": {"type": ["boolean", "null"]},
      "kind": {"enum": ["a", "b\"c", 1, 2.5, null, true]},
      "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 3},
               "minItems": 1, "maxItems": 3},
      "nested": {"type": "object", "properties": {
          "x": {"const": "y"},
          "z": {"anyOf": [{"type": "integer"},
                          {"type": "array", "items": {"type": "null"}, "maxItems": 2}]}},
        "required": ["x"], "additionalProperties": false},
      "any": {},
      "free": {"type": "object"}},
    "required": ["id", "name", "tags"], "additionalProperties": false})",
                   300);
}

TEST(JsonSchemaTest, RandomWalksOfJsonObjectAreObjects) {
  const auto g = JsonGrammar::AnyObject();
  std::mt19937 rng(99);
  int finished = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string text = RandomWalk(g, rng);
    if (text.empty()) continue;
    ++finished;
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    ASSERT_FALSE(ec) << ec.message() << ": " << text;
    EXPECT_TRUE(v.is_object()) << text;
  }
  EXPECT_GT(finished, 150);
}

// Valid documents written by Boost.JSON (another writer than the grammar) are accepted.
TEST(JsonSchemaTest, AcceptsDocumentsBoostWrites) {
  const auto g = Compile(R"({"type": "object", "properties": {
      "a": {"type": "string"}, "b": {"type": "number"}, "c": {"type": "array"},
      "d": {"anyOf": [{"type": "null"}, {"type": "object"}]}}, "required": ["a"]})");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (const json::value& doc : {
           json::value{{"a", "h\xC3\xA9 \"q\" \\ \n\x01"}},
           json::value{{"a", ""}, {"b", -1.25e-7}, {"c", json::array{1, "x", nullptr, true}}},
           json::value{{"a", "x"}, {"d", nullptr}},
           json::value{{"a", "x"}, {"b", 3}, {"d", json::object{{"k", json::array{}}}}},
       }) {
    const std::string text = json::serialize(doc);
    JsonMatcher m(*g);
    EXPECT_TRUE(m.Advance(text)) << text;
    EXPECT_TRUE(m.Done()) << text;
  }
}

}  // namespace
}  // namespace vlserve::server
