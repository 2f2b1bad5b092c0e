// GGUF reading and writing (versions 2 and 3; we write 3).
//
// Layout (all little-endian): "GGUF" u32 version, u64 tensor_count, u64 kv_count,
// kv_count x {string key, u32 value_type, value}, tensor_count x {string name, u32 n_dims,
// n_dims x u64 ne, u32 ggml_type, u64 offset}, padding to `alignment`, tensor data.
// A string is u64 length + bytes (no terminator); an array is u32 element type + u64
// count + elements. Tensor offsets are relative to the start of the data section.
//
// File::Open validates everything before it returns, so a File never points outside its
// mapping; corrupt input yields a DataLoss/InvalidArgument/Unimplemented Status naming
// the file, the byte offset and what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"
#include "kernels/types.h"

namespace vlserve::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "uint32", "string", "array", ...; "unknown" for ids outside the enum.
std::string_view ValueTypeName(ValueType type);

// The alignment a file uses when it has no general.alignment key.
inline constexpr uint64_t kDefaultAlignment = 32;

// One metadata value. Scalars keep their exact GGUF type; arrays keep their element type
// and the elements. Nested arrays (an array of arrays) are rejected by the reader, as by
// llama.cpp's gguf.c, so an array's element type is never kArray.
class Value {
 public:
  Value() : Value(ValueType::kUint8, Scalar(uint64_t{0})) {}

  static Value U8(uint8_t v) { return Value(ValueType::kUint8, Scalar(uint64_t{v})); }
  static Value I8(int8_t v) { return Value(ValueType::kInt8, Scalar(int64_t{v})); }
  static Value U16(uint16_t v) { return Value(ValueType::kUint16, Scalar(uint64_t{v})); }
  static Value I16(int16_t v) { return Value(ValueType::kInt16, Scalar(int64_t{v})); }
  static Value U32(uint32_t v) { return Value(ValueType::kUint32, Scalar(uint64_t{v})); }
  static Value I32(int32_t v) { return Value(ValueType::kInt32, Scalar(int64_t{v})); }
  static Value U64(uint64_t v) { return Value(ValueType::kUint64, Scalar(v)); }
  static Value I64(int64_t v) { return Value(ValueType::kInt64, Scalar(v)); }
  static Value F32(float v) { return Value(ValueType::kFloat32, Scalar(double{v})); }
  static Value F64(double v) { return Value(ValueType::kFloat64, Scalar(v)); }
  static Value Bool(bool v) { return Value(ValueType::kBool, Scalar(v)); }
  static Value String(std::string v) { return Value(ValueType::kString, Scalar(std::move(v))); }

  // Arrays. `elem` must be a scalar type or kString (CHECKed).
  static Value Array(ValueType elem, std::vector<Value> elements);
  static Value StringArray(std::vector<std::string> v);
  static Value F32Array(const std::vector<float>& v);
  static Value I32Array(const std::vector<int32_t>& v);
  static Value U32Array(const std::vector<uint32_t>& v);
  static Value I64Array(const std::vector<int64_t>& v);
  static Value U8Array(const std::vector<uint8_t>& v);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::kArray; }
  ValueType array_type() const { return array_type_; }  // meaningful only for arrays
  size_t array_size() const;                            // 0 for scalars

  // Any integer type or bool; nullopt for other types or a uint64 above INT64_MAX.
  std::optional<int64_t> AsInt() const;
  // float32/float64 or any integer type.
  std::optional<double> AsFloat() const;
  std::optional<bool> AsBool() const;   // bool only
  const std::string* AsString() const;  // nullptr unless a string
  // The raw uint64 of a uint64 value (AsInt fails above INT64_MAX).
  std::optional<uint64_t> AsUint64() const;

  // Array accessors; nullopt/nullptr unless an array of a fitting element type.
  const std::vector<std::string>* AsStringArray() const;
  std::optional<std::vector<float>> AsFloatArray() const;  // float or integer elements
  std::optional<std::vector<int64_t>> AsIntArray() const;  // integer or bool elements
  // Element i of an array as a scalar Value (CHECKs the index).
  Value ArrayElement(size_t i) const;

  // Human-readable rendering; arrays show at most `max_elements` entries then "... (N)".
  std::string DebugString(size_t max_elements = SIZE_MAX) const;

  bool operator==(const Value& other) const = default;

 private:
  // Integers: signed types in int64_t, unsigned in uint64_t; floats in double (float32
  // values are exactly representable); strings in std::string.
  using Scalar = std::variant<bool, int64_t, uint64_t, double, std::string>;
  Value(ValueType type, Scalar scalar) : type_(type), scalar_(std::move(scalar)) {}

  ValueType type_;
  ValueType array_type_ = ValueType::kUint8;
  Scalar scalar_;
  // Array payload: strings in strings_, everything else in elements_ as scalars.
  std::vector<std::string> strings_;
  std::vector<Scalar> elements_;

  friend class Parser;
  friend class ValueCodec;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // GGUF order: shape[0] = ne0 (innermost, contiguous)
  DType type = DType::kF32;
  uint64_t offset = 0;            // relative to the start of the tensor data section
  const uint8_t* data = nullptr;  // into the mapping (or the FromBytes buffer)
  int64_t num_elements = 0;
  int64_t num_bytes = 0;
};

// Whole pages of a File's mapping (see File::PagesInUse).
struct PageRange {
  const uint8_t* data = nullptr;
  size_t bytes = 0;
};

// Immutable after Open except for the residency record (ReleasePages); the mapping lives
// as long as the File.
class File {
 public:
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Maps the file read-only (MAP_PRIVATE, PROT_READ) and validates it completely.
  static StatusOr<std::unique_ptr<File>> Open(const std::string& path);
  // Same validation over an in-memory copy (tests, fuzzer).
  static StatusOr<std::unique_ptr<File>> FromBytes(std::string bytes,
                                                   std::string name = "<memory>");

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // File offset of the tensor data section (the header end when there are no tensors).
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* Find(std::string_view key) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;

  // Typed getters. NotFound: "key 'llama.block_count' missing in FILE";
  // InvalidArgument when the value has another type.
  StatusOr<std::string> GetString(std::string_view key) const;
  StatusOr<int64_t> GetInt(std::string_view key) const;
  StatusOr<double> GetFloat(std::string_view key) const;
  StatusOr<bool> GetBool(std::string_view key) const;
  StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;
  StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;

  // Default when the key is absent; a present key of the wrong type is still an error.
  StatusOr<std::string> GetStringOr(std::string_view key, std::string def) const;
  StatusOr<int64_t> GetIntOr(std::string_view key, int64_t def) const;
  StatusOr<double> GetFloatOr(std::string_view key, double def) const;
  StatusOr<bool> GetBoolOr(std::string_view key, bool def) const;

  StatusOr<const TensorInfo*> GetTensor(std::string_view name) const;  // NotFound names both

  // Residency of the mapping (residency.cc), decided in one place: a loader that copies a
  // tensor (prepacked, huge-page or converted copy) calls ReleasePages on its data, and
  // everything else that start-up or the accounting needs is derived from that record,
  // so start-up never faults a released page back in.
  //
  // A hint that [p, p + bytes) (inside the mapping) will not be read again: drops this
  // process's references to the whole pages inside it (madvise MADV_DONTNEED; the file's
  // page cache is untouched and a later read simply faults the page in again) and
  // records them as released. No-op for FromBytes files. Not thread-safe: load time only.
  void ReleasePages(const void* p, size_t bytes);
  // The pages of tensor data that were not released: every tensor's whole pages minus
  // the released ones, sorted, disjoint. Empty for FromBytes files (nothing is mapped).
  std::vector<PageRange> PagesInUse() const;
  // Reads one byte of every page in PagesInUse(), so the weights still read at run time
  // are in memory before the first request (a cold mapping otherwise pays disk reads in
  // the first forward passes). `progress(done, total)` (bytes) is called as it goes.
  // Returns the bytes touched.
  int64_t Prefault(const std::function<void(int64_t done, int64_t total)>& progress = {}) const;

 private:
  File() = default;
  static StatusOr<std::unique_ptr<File>> Parse(std::unique_ptr<File> file);

  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* mapping_ = nullptr;  // munmap'd in the destructor (null for FromBytes)
  size_t mapping_size_ = 0;
  std::string owned_;  // FromBytes storage
  // Released [begin, end) offsets into the mapping, page-aligned, in call order.
  std::vector<std::pair<size_t, size_t>> released_;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<TensorInfo> tensors_;
  // Views into metadata_/tensors_ names; built once parsing is done (they never move).
  std::unordered_map<std::string_view, size_t> key_index_;
  std::unordered_map<std::string_view, size_t> tensor_index_;

  friend class Parser;
};

class Writer {
 public:
  void Set(std::string key, Value value);  // replaces an existing key, keeps order
  void SetAlignment(uint64_t alignment);   // power of two (CHECKed); written when != 32
  // shape in GGUF order (ne0 first); `bytes` must equal RowBytes(type, ne0) * rows.
  Status AddTensor(std::string name, DType type, std::vector<int64_t> shape, const void* data,
                   size_t bytes);
  Status WriteFile(const std::string& path) const;  // version 3
  std::string WriteToString() const;                // same bytes

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    std::string data;
  };
  // Streams the whole file, header then data, to `sink`.
  void Emit(const std::function<void(const void*, size_t)>& sink) const;

  uint64_t alignment_ = kDefaultAlignment;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace vlserve::gguf
