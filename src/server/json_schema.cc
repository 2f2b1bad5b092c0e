#include "server/json_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <string>
#include <vector>

namespace vlserve::server {
namespace {

namespace json = boost::json;
using NodeId = JsonGrammar::NodeId;

// Bounds that keep a hostile schema from costing memory or stack.
constexpr int kMaxSchemaDepth = 32;
constexpr int kMaxSchemaNodes = 4096;
constexpr size_t kMaxKeyBytes = 1024;
constexpr int64_t kMaxCount = 1'000'000;  // minItems, maxItems, minLength, maxLength

constexpr std::array<std::string_view, 10> kAnnotations = {
    "title", "description", "default", "examples", "$schema",
    "$id",   "$comment",    "deprecated", "readOnly", "writeOnly"};
constexpr std::string_view kSupported =
    "type, properties, required, additionalProperties, items, minItems, maxItems, "
    "minLength, maxLength, enum, const, anyOf (and annotations such as title, description)";

// Which type a keyword constrains ("" = not type-specific).
std::string_view KeywordType(std::string_view key) {
  if (key == "properties" || key == "required" || key == "additionalProperties") return "object";
  if (key == "items" || key == "minItems" || key == "maxItems") return "array";
  if (key == "minLength" || key == "maxLength") return "string";
  return "";
}

bool IsAnnotation(std::string_view key) {
  return std::find(kAnnotations.begin(), kAnnotations.end(), key) != kAnnotations.end();
}

bool IsTypeName(std::string_view t) {
  return t == "object" || t == "array" || t == "string" || t == "number" || t == "integer" ||
         t == "boolean" || t == "null";
}

// Whether scalar `v` is an instance of JSON Schema type `t`.
bool ValueHasType(const json::value& v, std::string_view t) {
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_bool();
  if (t == "null") return v.is_null();
  if (t == "integer") {
    return v.is_int64() || v.is_uint64() || (v.is_double() && v.as_double() == std::trunc(v.as_double()));
  }
  if (t == "number") return v.is_number();
  return false;
}

class SchemaCompiler {
 public:
  explicit SchemaCompiler(std::string_view field) : field_(field) {}

  StatusOr<NodeId> Compile(const json::value& v, const std::string& path, int depth);
  std::shared_ptr<const JsonGrammar> Build(NodeId root) { return b_.Build(root); }

 private:
  Status Error(const std::string& path, std::string_view message) const {
    return InvalidArgumentError(fmt::format("{}{}: {}", field_, path, message));
  }
  StatusOr<NodeId> CompileLiterals(const json::object& s, const std::string& path,
                                   const std::vector<std::string>& types);
  StatusOr<NodeId> CompileType(const json::object& s, std::string_view type,
                               const std::string& path, int depth);
  StatusOr<NodeId> CompileObject(const json::object& s, const std::string& path, int depth);
  StatusOr<NodeId> CompileArray(const json::object& s, const std::string& path, int depth);
  Status Count(const json::object& s, std::string_view key, const std::string& path,
               int64_t* out) const;

  std::string field_;
  JsonGrammarBuilder b_;
  int nodes_ = 0;
};

Status SchemaCompiler::Count(const json::object& s, std::string_view key, const std::string& path,
                             int64_t* out) const {
  const json::value* v = s.if_contains(key);
  if (v == nullptr) return OkStatus();
  if (v->is_double() && v->as_double() == std::trunc(v->as_double())) {
    *out = static_cast<int64_t>(std::clamp(v->as_double(), -1.0, 1e18));
  } else if (v->is_int64()) {
    *out = v->as_int64();
  } else if (v->is_uint64()) {
    *out = kMaxCount + 1;
  } else {
    return Error(path, fmt::format("'{}' must be an integer", key));
  }
  if (*out < 0 || *out > kMaxCount) {
    return Error(path, fmt::format("'{}' must be between 0 and {}", key, kMaxCount));
  }
  return OkStatus();
}

StatusOr<NodeId> SchemaCompiler::Compile(const json::value& v, const std::string& path,
                                         int depth) {
  if (depth > kMaxSchemaDepth) {
    return Error(path, fmt::format("the schema is nested deeper than {} levels", kMaxSchemaDepth));
  }
  if (++nodes_ > kMaxSchemaNodes) {
    return Error(path, fmt::format("the schema has more than {} subschemas", kMaxSchemaNodes));
  }
  if (v.is_bool()) {
    if (v.as_bool()) return b_.AnyValue();
    return Error(path, "schema 'false' allows no value");
  }
  if (!v.is_object()) return Error(path, "a schema must be an object");
  const json::object& s = v.as_object();

  // Every keyword is known or refused; meanwhile find what restricts the type.
  std::vector<std::string_view> constraints;  // non-annotation keywords
  for (const auto& [key, value] : s) {
    if (IsAnnotation(key)) continue;
    if (key == "type" || key == "enum" || key == "const" || key == "anyOf" ||
        !KeywordType(key).empty()) {
      constraints.push_back(std::string_view(key));
      continue;
    }
    if (key == "$ref" || key == "$defs" || key == "definitions") {
      return Error(path, fmt::format("keyword '{}' is not supported: write the definition inline; "
                                     "supported keywords: {}",
                                     std::string_view(key), kSupported));
    }
    return Error(path, fmt::format("keyword '{}' is not supported; supported keywords: {}",
                                   std::string_view(key), kSupported));
  }

  if (s.contains("anyOf")) {
    if (constraints.size() != 1) {
      return Error(path, "'anyOf' cannot be combined with other constraints here; put them in "
                         "each branch");
    }
    const json::value& any = s.at("anyOf");
    if (!any.is_array() || any.as_array().empty()) {
      return Error(path, "'anyOf' must be a non-empty array of schemas");
    }
    std::vector<NodeId> branches;
    for (size_t i = 0; i < any.as_array().size(); ++i) {
      ASSIGN_OR_RETURN(NodeId id, Compile(any.as_array()[i],
                                          fmt::format("{}.anyOf[{}]", path, i), depth + 1));
      branches.push_back(id);
    }
    return b_.AnyOf(branches);
  }

  std::vector<std::string> types;
  if (const json::value* t = s.if_contains("type"); t != nullptr) {
    json::array one;
    if (t->is_string()) one.push_back(*t);
    const json::array& list = t->is_array() ? t->as_array() : one;
    if (list.empty()) return Error(path, "'type' must be a type name or a non-empty list of them");
    for (const json::value& name : list) {
      if (!name.is_string() || !IsTypeName(name.as_string())) {
        return Error(path, fmt::format("'type' {} is not a JSON Schema type (object, array, "
                                       "string, number, integer, boolean, null)",
                                       json::serialize(name)));
      }
      const std::string n(name.as_string());
      if (std::find(types.begin(), types.end(), n) == types.end()) types.push_back(n);
    }
  }

  if (s.contains("enum") || s.contains("const")) return CompileLiterals(s, path, types);

  // Type-specific keywords need their type (and imply it when `type` is absent).
  std::string implied;
  for (std::string_view key : constraints) {
    const std::string_view t = KeywordType(key);
    if (t.empty()) continue;
    if (!types.empty() && std::find(types.begin(), types.end(), t) == types.end()) {
      return Error(path, fmt::format("'{}' applies to type '{}', which 'type' does not allow",
                                     key, t));
    }
    if (types.empty() && !implied.empty() && implied != t) {
      return Error(path, fmt::format("'{}' and keywords of type '{}' are mixed; give 'type'", key,
                                     implied));
    }
    implied = t;
  }
  if (types.empty() && !implied.empty()) types.push_back(implied);
  if (types.empty()) return b_.AnyValue();

  std::vector<NodeId> branches;
  for (const std::string& t : types) {
    ASSIGN_OR_RETURN(NodeId id, CompileType(s, t, path, depth));
    branches.push_back(id);
  }
  return branches.size() == 1 ? branches[0] : b_.AnyOf(branches);
}

StatusOr<NodeId> SchemaCompiler::CompileLiterals(const json::object& s, const std::string& path,
                                                 const std::vector<std::string>& types) {
  for (const auto& [key, value] : s) {
    if (!IsAnnotation(key) && key != "type" && key != "enum" && key != "const") {
      return Error(path, fmt::format("'{}' cannot be combined with enum/const",
                                     std::string_view(key)));
    }
  }
  if (s.contains("enum") && s.contains("const")) {
    return Error(path, "give either 'enum' or 'const', not both");
  }
  json::array values;
  if (const json::value* c = s.if_contains("const"); c != nullptr) {
    values.push_back(*c);
  } else {
    const json::value& e = s.at("enum");
    if (!e.is_array() || e.as_array().empty()) {
      return Error(path, "'enum' must be a non-empty array");
    }
    values = e.as_array();
  }
  std::vector<std::string> texts;
  for (const json::value& v : values) {
    if (v.is_object() || v.is_array()) {
      return Error(path, "enum/const values must be strings, numbers, booleans or null");
    }
    if (!types.empty() && std::none_of(types.begin(), types.end(), [&](const std::string& t) {
          return ValueHasType(v, t);
        })) {
      return Error(path, fmt::format("enum/const value {} does not have the schema's 'type'",
                                     json::serialize(v)));
    }
    // The text the model must write: JSON's own form, shortest for doubles.
    texts.push_back(v.is_double() ? fmt::format("{}", v.as_double()) : json::serialize(v));
  }
  return b_.Literals(std::move(texts));
}

StatusOr<NodeId> SchemaCompiler::CompileType(const json::object& s, std::string_view type,
                                             const std::string& path, int depth) {
  if (type == "object") return CompileObject(s, path, depth);
  if (type == "array") return CompileArray(s, path, depth);
  if (type == "string") {
    int64_t min = 0, max = -1;
    RETURN_IF_ERROR(Count(s, "minLength", path, &min));
    RETURN_IF_ERROR(Count(s, "maxLength", path, &max));
    if (max >= 0 && min > max) return Error(path, "'minLength' is above 'maxLength'");
    return b_.String(min, max);
  }
  if (type == "number") return b_.Number();
  if (type == "integer") return b_.Integer();
  if (type == "boolean") return b_.Boolean();
  return b_.Null();
}

StatusOr<NodeId> SchemaCompiler::CompileObject(const json::object& s, const std::string& path,
                                               int depth) {
  bool additional = true;
  if (const json::value* a = s.if_contains("additionalProperties"); a != nullptr) {
    if (a->is_bool()) {
      additional = a->as_bool();
    } else if (!(a->is_object() && a->as_object().empty())) {
      return Error(path, "'additionalProperties' must be true or false (a schema for extra "
                         "properties is not supported)");
    }
  }
  const json::value* props = s.if_contains("properties");
  if (props != nullptr && !props->is_object()) {
    return Error(path, "'properties' must be an object of schemas");
  }
  std::vector<std::string> required;
  if (const json::value* r = s.if_contains("required"); r != nullptr) {
    if (!r->is_array()) return Error(path, "'required' must be an array of property names");
    for (const json::value& name : r->as_array()) {
      if (!name.is_string()) return Error(path, "'required' must be an array of property names");
      if (props == nullptr || !props->as_object().contains(name.as_string())) {
        return Error(path, fmt::format("'required' names '{}', which is not in 'properties' "
                                       "(only listed properties are generated)",
                                       std::string_view(name.as_string())));
      }
      required.emplace_back(name.as_string());
    }
  }
  // No listed properties: any object, unless extra ones are forbidden ({} only).
  if (props == nullptr || props->as_object().empty()) {
    return additional ? b_.AnyObject() : b_.Object({});
  }
  std::vector<JsonGrammarBuilder::PropertySpec> specs;
  for (const auto& [key, value] : props->as_object()) {
    if (key.size() > kMaxKeyBytes) {
      return Error(path, fmt::format("a property name is longer than {} bytes", kMaxKeyBytes));
    }
    ASSIGN_OR_RETURN(NodeId id,
                     Compile(value, fmt::format("{}.properties.{}", path, std::string_view(key)),
                             depth + 1));
    const std::string name(key);
    const bool req = std::find(required.begin(), required.end(), name) != required.end();
    specs.push_back({name, id, req});
  }
  return b_.Object(specs);
}

StatusOr<NodeId> SchemaCompiler::CompileArray(const json::object& s, const std::string& path,
                                              int depth) {
  int64_t min = 0, max = -1;
  RETURN_IF_ERROR(Count(s, "minItems", path, &min));
  RETURN_IF_ERROR(Count(s, "maxItems", path, &max));
  if (max >= 0 && min > max) return Error(path, "'minItems' is above 'maxItems'");
  NodeId item = 0;
  if (const json::value* items = s.if_contains("items"); items != nullptr) {
    if (items->is_array()) {
      return Error(path, "'items' as an array (tuple validation) is not supported");
    }
    ASSIGN_OR_RETURN(item, Compile(*items, path + ".items", depth + 1));
  } else {
    item = b_.AnyValue();
  }
  return b_.Array(item, min, max);
}

}  // namespace

StatusOr<std::shared_ptr<const JsonGrammar>> CompileJsonSchema(const json::value& schema,
                                                               std::string_view field) {
  SchemaCompiler compiler(field);
  ASSIGN_OR_RETURN(NodeId root, compiler.Compile(schema, "", 0));
  return compiler.Build(root);
}

}  // namespace vlserve::server
