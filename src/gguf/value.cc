// gguf::Value: typed metadata values and their conversions.
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "base/check.h"
#include "gguf/gguf.h"

namespace vlserve::gguf {
namespace {

bool IsIntegerType(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kUint16:
    case ValueType::kInt16:
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kUint64:
    case ValueType::kInt64:
      return true;
    default:
      return false;
  }
}

bool IsFloatType(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

// Scalar payloads hold exactly one of: bool, int64_t (signed ints), uint64_t (unsigned
// ints), double (floats), std::string.
template <typename Scalar>
std::optional<int64_t> ScalarAsInt(const Scalar& s) {
  if (const bool* b = std::get_if<bool>(&s)) return *b ? 1 : 0;
  if (const int64_t* i = std::get_if<int64_t>(&s)) return *i;
  if (const uint64_t* u = std::get_if<uint64_t>(&s)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  return std::nullopt;
}

template <typename Scalar>
std::optional<double> ScalarAsFloat(const Scalar& s) {
  if (const double* d = std::get_if<double>(&s)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
  if (const uint64_t* u = std::get_if<uint64_t>(&s)) return static_cast<double>(*u);
  return std::nullopt;
}

template <typename Scalar>
std::string ScalarToString(ValueType type, const Scalar& s) {
  if (const bool* b = std::get_if<bool>(&s)) return *b ? "true" : "false";
  if (const int64_t* i = std::get_if<int64_t>(&s)) return fmt::format("{}", *i);
  if (const uint64_t* u = std::get_if<uint64_t>(&s)) return fmt::format("{}", *u);
  if (const double* d = std::get_if<double>(&s)) {
    // Shortest text that round-trips at the stored precision.
    if (type == ValueType::kFloat32) return fmt::format("{}", static_cast<float>(*d));
    return fmt::format("{}", *d);
  }
  return std::get<std::string>(s);
}

std::string QuoteString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::string_view ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

Value Value::Array(ValueType elem, std::vector<Value> elements) {
  CHECK(elem != ValueType::kArray) << "nested GGUF arrays are not supported";
  Value v(ValueType::kArray, Scalar(uint64_t{0}));
  v.array_type_ = elem;
  if (elem == ValueType::kString) {
    v.strings_.reserve(elements.size());
    for (Value& e : elements) {
      CHECK(e.type() == ValueType::kString) << "array element is " << ValueTypeName(e.type());
      v.strings_.push_back(std::move(std::get<std::string>(e.scalar_)));
    }
  } else {
    v.elements_.reserve(elements.size());
    for (Value& e : elements) {
      CHECK(e.type() == elem) << "array of " << ValueTypeName(elem) << " got element "
                              << ValueTypeName(e.type());
      v.elements_.push_back(std::move(e.scalar_));
    }
  }
  return v;
}

Value Value::StringArray(std::vector<std::string> v) {
  Value out(ValueType::kArray, Scalar(uint64_t{0}));
  out.array_type_ = ValueType::kString;
  out.strings_ = std::move(v);
  return out;
}

namespace {
template <typename T>
Value MakeNumericArray(ValueType elem, const std::vector<T>& v) {
  std::vector<Value> values;
  values.reserve(v.size());
  for (T x : v) {
    switch (elem) {
      case ValueType::kFloat32:
        values.push_back(Value::F32(static_cast<float>(x)));
        break;
      case ValueType::kInt32:
        values.push_back(Value::I32(static_cast<int32_t>(x)));
        break;
      case ValueType::kUint32:
        values.push_back(Value::U32(static_cast<uint32_t>(x)));
        break;
      case ValueType::kInt64:
        values.push_back(Value::I64(static_cast<int64_t>(x)));
        break;
      default:
        values.push_back(Value::U8(static_cast<uint8_t>(x)));
        break;
    }
  }
  return Value::Array(elem, std::move(values));
}
}  // namespace

Value Value::F32Array(const std::vector<float>& v) {
  return MakeNumericArray<float>(ValueType::kFloat32, v);
}
Value Value::I32Array(const std::vector<int32_t>& v) {
  return MakeNumericArray<int32_t>(ValueType::kInt32, v);
}
Value Value::U32Array(const std::vector<uint32_t>& v) {
  return MakeNumericArray<uint32_t>(ValueType::kUint32, v);
}
Value Value::I64Array(const std::vector<int64_t>& v) {
  return MakeNumericArray<int64_t>(ValueType::kInt64, v);
}
Value Value::U8Array(const std::vector<uint8_t>& v) {
  return MakeNumericArray<uint8_t>(ValueType::kUint8, v);
}

size_t Value::array_size() const {
  if (type_ != ValueType::kArray) return 0;
  return array_type_ == ValueType::kString ? strings_.size() : elements_.size();
}

std::optional<int64_t> Value::AsInt() const {
  if (!IsIntegerType(type_) && type_ != ValueType::kBool) return std::nullopt;
  return ScalarAsInt(scalar_);
}

std::optional<double> Value::AsFloat() const {
  if (!IsIntegerType(type_) && !IsFloatType(type_)) return std::nullopt;
  return ScalarAsFloat(scalar_);
}

std::optional<bool> Value::AsBool() const {
  if (type_ != ValueType::kBool) return std::nullopt;
  return std::get<bool>(scalar_);
}

const std::string* Value::AsString() const {
  if (type_ != ValueType::kString) return nullptr;
  return &std::get<std::string>(scalar_);
}

std::optional<uint64_t> Value::AsUint64() const {
  if (type_ != ValueType::kUint64) return std::nullopt;
  return std::get<uint64_t>(scalar_);
}

const std::vector<std::string>* Value::AsStringArray() const {
  if (type_ != ValueType::kArray || array_type_ != ValueType::kString) return nullptr;
  return &strings_;
}

std::optional<std::vector<float>> Value::AsFloatArray() const {
  if (type_ != ValueType::kArray) return std::nullopt;
  if (!IsIntegerType(array_type_) && !IsFloatType(array_type_)) return std::nullopt;
  std::vector<float> out;
  out.reserve(elements_.size());
  for (const Scalar& s : elements_) out.push_back(static_cast<float>(*ScalarAsFloat(s)));
  return out;
}

std::optional<std::vector<int64_t>> Value::AsIntArray() const {
  if (type_ != ValueType::kArray) return std::nullopt;
  if (!IsIntegerType(array_type_) && array_type_ != ValueType::kBool) return std::nullopt;
  std::vector<int64_t> out;
  out.reserve(elements_.size());
  for (const Scalar& s : elements_) {
    std::optional<int64_t> i = ScalarAsInt(s);
    if (!i) return std::nullopt;  // a uint64 element above INT64_MAX
    out.push_back(*i);
  }
  return out;
}

Value Value::ArrayElement(size_t i) const {
  CHECK(type_ == ValueType::kArray) << "ArrayElement on a " << ValueTypeName(type_);
  CHECK_LT(i, array_size());
  if (array_type_ == ValueType::kString) return Value::String(strings_[i]);
  return Value(array_type_, elements_[i]);
}

std::string Value::DebugString(size_t max_elements) const {
  if (type_ == ValueType::kString) return QuoteString(std::get<std::string>(scalar_));
  if (type_ != ValueType::kArray) return ScalarToString(type_, scalar_);
  const size_t n = array_size();
  const size_t shown = std::min(n, max_elements);
  std::string out = "[";
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) out += ", ";
    out += array_type_ == ValueType::kString ? QuoteString(strings_[i])
                                             : ScalarToString(array_type_, elements_[i]);
  }
  if (shown < n) out += fmt::format("{}... ({} total)", shown > 0 ? ", " : "", n);
  out += "]";
  return out;
}

}  // namespace vlserve::gguf
