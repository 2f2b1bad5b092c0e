// GGUF v3 writer, laid out the way llama.cpp's gguf_write_to_file lays files out:
// header, key-values, tensor infos, zero padding to `alignment`, then each tensor's data
// followed by zero padding to `alignment`. Tensor i's offset is the sum of the padded
// sizes of tensors 0..i-1, which llama.cpp's reader requires.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>

#include "base/check.h"
#include "gguf/gguf.h"

namespace vlserve::gguf {
namespace {

constexpr size_t kMaxTensorName = 63;  // llama.cpp: name length < GGML_MAX_NAME (64)

using Sink = std::function<void(const void*, size_t)>;

uint64_t PadTo(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

template <typename T>
void Put(const Sink& sink, T v) {
  sink(&v, sizeof(T));
}

void PutZeros(const Sink& sink, uint64_t n) {
  static constexpr char kZeros[256] = {};
  for (; n > 0; n -= std::min<uint64_t>(n, sizeof(kZeros))) {
    sink(kZeros, std::min<uint64_t>(n, sizeof(kZeros)));
  }
}

void PutString(const Sink& sink, const std::string& s) {
  Put<uint64_t>(sink, s.size());
  sink(s.data(), s.size());
}

}  // namespace

// Encodes Values; a friend of Value so arrays need no per-element copies.
class ValueCodec {
 public:
  static void PutScalar(const Sink& sink, ValueType type, const Value::Scalar& s) {
    switch (type) {
      case ValueType::kUint8:
        Put<uint8_t>(sink, static_cast<uint8_t>(std::get<uint64_t>(s)));
        break;
      case ValueType::kInt8:
        Put<int8_t>(sink, static_cast<int8_t>(std::get<int64_t>(s)));
        break;
      case ValueType::kUint16:
        Put<uint16_t>(sink, static_cast<uint16_t>(std::get<uint64_t>(s)));
        break;
      case ValueType::kInt16:
        Put<int16_t>(sink, static_cast<int16_t>(std::get<int64_t>(s)));
        break;
      case ValueType::kUint32:
        Put<uint32_t>(sink, static_cast<uint32_t>(std::get<uint64_t>(s)));
        break;
      case ValueType::kInt32:
        Put<int32_t>(sink, static_cast<int32_t>(std::get<int64_t>(s)));
        break;
      case ValueType::kUint64:
        Put<uint64_t>(sink, std::get<uint64_t>(s));
        break;
      case ValueType::kInt64:
        Put<int64_t>(sink, std::get<int64_t>(s));
        break;
      case ValueType::kFloat32:
        Put<float>(sink, static_cast<float>(std::get<double>(s)));
        break;
      case ValueType::kFloat64:
        Put<double>(sink, std::get<double>(s));
        break;
      case ValueType::kBool:
        Put<uint8_t>(sink, std::get<bool>(s) ? 1 : 0);
        break;
      case ValueType::kString:
        PutString(sink, std::get<std::string>(s));
        break;
      case ValueType::kArray:
        CHECK(false) << "nested array";
        break;
    }
  }

  static void PutValue(const Sink& sink, const Value& v) {
    Put<uint32_t>(sink, static_cast<uint32_t>(v.type_));
    if (v.type_ != ValueType::kArray) {
      PutScalar(sink, v.type_, v.scalar_);
      return;
    }
    Put<uint32_t>(sink, static_cast<uint32_t>(v.array_type_));
    Put<uint64_t>(sink, v.array_size());
    if (v.array_type_ == ValueType::kString) {
      for (const std::string& s : v.strings_) PutString(sink, s);
    } else {
      for (const Value::Scalar& s : v.elements_) PutScalar(sink, v.array_type_, s);
    }
  }
};

void Writer::Set(std::string key, Value value) {
  CHECK(!key.empty()) << "GGUF keys must not be empty";
  if (key == "general.alignment") {
    // Keep alignment_ and the stored key in agreement; llama.cpp requires a uint32.
    CHECK(value.type() == ValueType::kUint32) << "general.alignment must be a uint32";
    const uint64_t a = static_cast<uint64_t>(*value.AsInt());
    CHECK(a != 0 && (a & (a - 1)) == 0) << "alignment " << a << " is not a power of two";
    alignment_ = a;
  }
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void Writer::SetAlignment(uint64_t alignment) {
  CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= UINT32_MAX)
      << "alignment " << alignment << " is not a power of two";
  if (alignment == kDefaultAlignment) {
    alignment_ = alignment;
    std::erase_if(metadata_, [](const auto& kv) { return kv.first == "general.alignment"; });
    return;
  }
  Set("general.alignment", Value::U32(static_cast<uint32_t>(alignment)));
}

Status Writer::AddTensor(std::string name, DType type, std::vector<int64_t> shape, const void* data,
                         size_t bytes) {
  if (name.empty() || name.size() > kMaxTensorName) {
    return InvalidArgumentError(fmt::format(
        "tensor name '{}' must be 1..{} bytes long (llama.cpp's limit)", name, kMaxTensorName));
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return InvalidArgumentError(fmt::format("duplicate tensor '{}'", name));
  }
  if (shape.empty() || shape.size() > 4) {
    return InvalidArgumentError(
        fmt::format("tensor '{}' has {} dimensions, expected 1..4", name, shape.size()));
  }
  const DTypeInfo& info = Info(type);
  int64_t elements = 1;
  for (int64_t ne : shape) {
    if (ne < 0 || __builtin_mul_overflow(elements, ne, &elements)) {
      return InvalidArgumentError(fmt::format("tensor '{}' has an invalid shape", name));
    }
  }
  if (shape[0] % info.block_size != 0) {
    return InvalidArgumentError(
        fmt::format("tensor '{}': ne0 = {} is not a multiple of {}'s "
                    "block size {}",
                    name, shape[0], info.name, info.block_size));
  }
  const int64_t rows = shape[0] == 0 ? 0 : elements / shape[0];
  int64_t row_bytes = 0, want = 0;
  if (__builtin_mul_overflow(shape[0] / info.block_size, info.type_size, &row_bytes) ||
      __builtin_mul_overflow(row_bytes, rows, &want) || static_cast<uint64_t>(want) != bytes) {
    return InvalidArgumentError(
        fmt::format("tensor '{}': {} bytes given, its type {} and shape "
                    "need {}",
                    name, bytes, info.name, want));
  }
  PendingTensor t{std::move(name), type, std::move(shape),
                  std::string(static_cast<const char*>(data), bytes)};
  tensors_.push_back(std::move(t));
  return OkStatus();
}

void Writer::Emit(const Sink& sink) const {
  uint64_t written = 0;
  const Sink counting = [&](const void* p, size_t n) {
    written += n;
    sink(p, n);
  };
  counting("GGUF", 4);
  Put<uint32_t>(counting, 3);
  Put<uint64_t>(counting, tensors_.size());
  Put<uint64_t>(counting, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    PutString(counting, key);
    ValueCodec::PutValue(counting, value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    PutString(counting, t.name);
    Put<uint32_t>(counting, static_cast<uint32_t>(t.shape.size()));
    for (int64_t ne : t.shape) Put<uint64_t>(counting, static_cast<uint64_t>(ne));
    Put<uint32_t>(counting, static_cast<uint32_t>(t.type));
    Put<uint64_t>(counting, offset);
    offset += PadTo(t.data.size(), alignment_);
  }
  // llama.cpp pads the header even when there are no tensors.
  PutZeros(sink, PadTo(written, alignment_) - written);
  for (const PendingTensor& t : tensors_) {
    sink(t.data.data(), t.data.size());
    PutZeros(sink, PadTo(t.data.size(), alignment_) - t.data.size());
  }
}

std::string Writer::WriteToString() const {
  std::string out;
  Emit([&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); });
  return out;
}

Status Writer::WriteFile(const std::string& path) const {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return InvalidArgumentError(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
  }
  bool ok = true;
  int err = 0;
  Emit([&](const void* p, size_t n) {
    if (ok && n > 0 && std::fwrite(p, 1, n, f) != n) {
      ok = false;
      err = errno;
    }
  });
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    return ResourceExhaustedError(fmt::format("writing '{}' failed: {}", path, std::strerror(err)));
  }
  return OkStatus();
}

}  // namespace vlserve::gguf
