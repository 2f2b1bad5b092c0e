// Hand-rolled GGUF byte builder for tests: independent of gguf::Writer, so the reader is
// checked against bytes laid out straight from the spec (docs/gguf.md in ggml).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace vlserve::gguf::testing {

class Bytes {
 public:
  Bytes& Raw(std::string_view s) {
    data_.append(s);
    return *this;
  }
  template <typename T>
  Bytes& Pod(T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    data_.append(buf, sizeof(T));
    return *this;
  }
  Bytes& U8(uint8_t v) { return Pod(v); }
  Bytes& U32(uint32_t v) { return Pod(v); }
  Bytes& U64(uint64_t v) { return Pod(v); }
  Bytes& I64(int64_t v) { return Pod(v); }
  Bytes& F32(float v) { return Pod(v); }
  // GGUF string: u64 length + bytes.
  Bytes& Str(std::string_view s) {
    U64(s.size());
    return Raw(s);
  }
  // "GGUF", version, tensor count, kv count.
  Bytes& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Raw("GGUF");
    U32(version);
    U64(n_tensors);
    return U64(n_kv);
  }
  // A key with a uint32 value (type id 4).
  Bytes& KvU32(std::string_view key, uint32_t v) {
    Str(key);
    U32(4);
    return U32(v);
  }
  // A key with a string value (type id 8).
  Bytes& KvStr(std::string_view key, std::string_view v) {
    Str(key);
    U32(8);
    return Str(v);
  }
  // Tensor info: name, n_dims, dims, ggml type, offset.
  Bytes& TensorInfo(std::string_view name, std::initializer_list<uint64_t> dims, uint32_t type,
                    uint64_t offset) {
    Str(name);
    U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    U32(type);
    return U64(offset);
  }
  Bytes& PadTo(size_t alignment) {
    while (data_.size() % alignment != 0) data_.push_back('\0');
    return *this;
  }
  Bytes& Fill(size_t n, char c = '\x5a') {
    data_.append(n, c);
    return *this;
  }
  size_t size() const { return data_.size(); }
  const std::string& str() const { return data_; }

 private:
  std::string data_;
};

}  // namespace vlserve::gguf::testing
