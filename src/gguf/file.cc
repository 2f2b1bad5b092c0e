// gguf::File lookups and typed getters.
#include <fmt/format.h>

#include "gguf/gguf.h"

namespace vlserve::gguf {
namespace {

Status WrongType(const File& f, std::string_view key, const Value& v, std::string_view want) {
  std::string have(ValueTypeName(v.type()));
  if (v.is_array()) have = fmt::format("array of {}", ValueTypeName(v.array_type()));
  return InvalidArgumentError(
      fmt::format("key '{}' in {} is {}, expected {}", key, f.path(), have, want));
}

}  // namespace

const Value* File::Find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const TensorInfo* File::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

#define VLS_GGUF_FIND_OR_RETURN(v, key)                                      \
  const Value* v = Find(key);                                                \
  if (v == nullptr) {                                                        \
    return NotFoundError(fmt::format("key '{}' missing in {}", key, path_)); \
  }

StatusOr<std::string> File::GetString(std::string_view key) const {
  VLS_GGUF_FIND_OR_RETURN(v, key);
  if (const std::string* s = v->AsString()) return *s;
  return WrongType(*this, key, *v, "string");
}

StatusOr<int64_t> File::GetInt(std::string_view key) const {
  VLS_GGUF_FIND_OR_RETURN(v, key);
  if (std::optional<int64_t> i = v->AsInt()) return *i;
  if (v->AsUint64()) {
    return InvalidArgumentError(
        fmt::format("key '{}' in {} is {}, larger than int64 allows", key, path_, *v->AsUint64()));
  }
  return WrongType(*this, key, *v, "an integer");
}

StatusOr<double> File::GetFloat(std::string_view key) const {
  VLS_GGUF_FIND_OR_RETURN(v, key);
  if (std::optional<double> d = v->AsFloat()) return *d;
  return WrongType(*this, key, *v, "a number");
}

StatusOr<bool> File::GetBool(std::string_view key) const {
  VLS_GGUF_FIND_OR_RETURN(v, key);
  if (std::optional<bool> b = v->AsBool()) return *b;
  return WrongType(*this, key, *v, "bool");
}

StatusOr<std::vector<std::string>> File::GetStringArray(std::string_view key) const {
  VLS_GGUF_FIND_OR_RETURN(v, key);
  if (const std::vector<std::string>* a = v->AsStringArray()) return *a;
  return WrongType(*this, key, *v, "array of string");
}

StatusOr<std::vector<float>> File::GetFloatArray(std::string_view key) const {
  VLS_GGUF_FIND_OR_RETURN(v, key);
  if (std::optional<std::vector<float>> a = v->AsFloatArray()) return std::move(*a);
  return WrongType(*this, key, *v, "array of numbers");
}

StatusOr<std::vector<int64_t>> File::GetIntArray(std::string_view key) const {
  VLS_GGUF_FIND_OR_RETURN(v, key);
  if (std::optional<std::vector<int64_t>> a = v->AsIntArray()) return std::move(*a);
  return WrongType(*this, key, *v, "array of integers");
}

#undef VLS_GGUF_FIND_OR_RETURN

StatusOr<std::string> File::GetStringOr(std::string_view key, std::string def) const {
  if (Find(key) == nullptr) return def;
  return GetString(key);
}

StatusOr<int64_t> File::GetIntOr(std::string_view key, int64_t def) const {
  if (Find(key) == nullptr) return def;
  return GetInt(key);
}

StatusOr<double> File::GetFloatOr(std::string_view key, double def) const {
  if (Find(key) == nullptr) return def;
  return GetFloat(key);
}

StatusOr<bool> File::GetBoolOr(std::string_view key, bool def) const {
  if (Find(key) == nullptr) return def;
  return GetBool(key);
}

StatusOr<const TensorInfo*> File::GetTensor(std::string_view name) const {
  const TensorInfo* t = FindTensor(name);
  if (t == nullptr) {
    return NotFoundError(fmt::format("tensor '{}' missing in {}", name, path_));
  }
  return t;
}

}  // namespace vlserve::gguf
