// GGUF reader: maps the file and validates every byte it will ever hand out.
//
// Every count read from the file is checked against the bytes that remain before
// anything is allocated from it, so a hostile file can cost at most O(file size) memory.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "gguf/gguf.h"

namespace vlserve::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF reader assumes little-endian");

namespace {

constexpr uint32_t kMaxDims = 4;  // ggml's GGML_MAX_DIMS
// Smallest encodings, used to reject absurd counts before allocating:
// key (u64 len) + u32 type + 1 byte value; tensor info = name len + n_dims + 1 dim +
// type + offset.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// Bytes of one element of a fixed-size type; 8 (the length prefix) for strings.
uint64_t MinElementBytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    default:
      return 8;
  }
}

bool IsKnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }

std::string Printable(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '?';
  }
  return out;
}

}  // namespace

// Walks the header once, front to back, filling a File.
class Parser {
 public:
  explicit Parser(File& file) : f_(file), base_(file.base_), size_(file.size_) {}

  Status Run() {
    uint64_t n_tensors = 0, n_kv = 0;
    RETURN_IF_ERROR(ReadHeader(&n_tensors, &n_kv));
    RETURN_IF_ERROR(ReadMetadata(n_kv));
    RETURN_IF_ERROR(ReadAlignment());
    RETURN_IF_ERROR(ReadTensorInfos(n_tensors));
    return PlaceTensorData();
  }

 private:
  using Scalar = Value::Scalar;

  Status Error(StatusCode code, uint64_t at, std::string_view what) const {
    return Status(code, fmt::format("{}: byte {}: {}", f_.path_, at, what));
  }
  Status Corrupt(uint64_t at, std::string_view what) const {
    return Error(StatusCode::kDataLoss, at, what);
  }
  uint64_t Remaining() const { return size_ - pos_; }

  Status Need(uint64_t n, std::string_view what) const {
    if (n <= Remaining()) return OkStatus();
    return Corrupt(pos_, fmt::format("file truncated: expected {} ({} bytes) but only {} "
                                     "bytes remain",
                                     what, n, Remaining()));
  }

  template <typename T>
  StatusOr<T> Read(std::string_view what) {
    RETURN_IF_ERROR(Need(sizeof(T), what));
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  StatusOr<std::string> ReadString(std::string_view what) {
    const uint64_t at = pos_;
    ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(fmt::format("length of {}", what)));
    if (len > Remaining()) {
      return Corrupt(at, fmt::format("{} has length {} but only {} bytes remain (corrupt or "
                                     "truncated file)",
                                     what, len, Remaining()));
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return s;
  }

  Status ReadHeader(uint64_t* n_tensors, uint64_t* n_kv);
  Status ReadMetadata(uint64_t n_kv);
  StatusOr<Scalar> ReadScalar(ValueType type, std::string_view what);
  StatusOr<Value> ReadValue(const std::string& key);
  Status ReadArray(const std::string& key, Value* out);
  Status ReadAlignment();
  Status ReadTensorInfos(uint64_t n);
  Status ReadTensorInfo(uint64_t index);
  Status PlaceTensorData();
  Status CheckOverlaps() const;

  File& f_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::vector<uint64_t> info_pos_;  // byte offset of each tensor info, for messages
};

Status Parser::ReadHeader(uint64_t* n_tensors, uint64_t* n_kv) {
  RETURN_IF_ERROR(Need(4, "magic 'GGUF'"));
  if (std::memcmp(base_, "GGUF", 4) != 0) {
    return Error(
        StatusCode::kInvalidArgument, 0,
        fmt::format("bad magic '{}', expected 'GGUF': not a GGUF file", Printable(base_, 4)));
  }
  pos_ = 4;
  ASSIGN_OR_RETURN(f_.version_, Read<uint32_t>("version"));
  const uint32_t v = f_.version_;
  if (v == 1) {
    return Error(StatusCode::kUnimplemented, 4,
                 "GGUF version 1 is not supported (only 2 and 3); re-convert the model with "
                 "a current llama.cpp");
  }
  if (v != 2 && v != 3) {
    const bool swapped = (v & 0xffff) == 0 && v != 0;
    return Error(StatusCode::kUnimplemented, 4,
                 fmt::format("unsupported GGUF version {}{}; supported versions are 2 and 3", v,
                             swapped ? " (a big-endian file?)" : ""));
  }
  ASSIGN_OR_RETURN(*n_tensors, Read<uint64_t>("tensor count"));
  ASSIGN_OR_RETURN(*n_kv, Read<uint64_t>("metadata key-value count"));
  if (*n_kv > Remaining() / kMinKvBytes) {
    return Corrupt(16, fmt::format("metadata count {} is impossible (corrupt or truncated "
                                   "file): {} bytes remain and each key-value pair needs at "
                                   "least {}",
                                   *n_kv, Remaining(), kMinKvBytes));
  }
  if (*n_tensors > Remaining() / kMinTensorInfoBytes) {
    return Corrupt(8, fmt::format("tensor count {} is impossible (corrupt or truncated "
                                  "file): {} bytes remain and each tensor info needs at "
                                  "least {}",
                                  *n_tensors, Remaining(), kMinTensorInfoBytes));
  }
  return OkStatus();
}

Status Parser::ReadMetadata(uint64_t n_kv) {
  f_.metadata_.reserve(n_kv);
  std::unordered_set<std::string> seen;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = pos_;
    ASSIGN_OR_RETURN(std::string key, ReadString(fmt::format("key of metadata entry {}", i)));
    if (key.empty()) return Corrupt(at, fmt::format("metadata entry {} has an empty key", i));
    if (!seen.insert(key).second) {
      return Corrupt(at, fmt::format("duplicate metadata key '{}'", key));
    }
    ASSIGN_OR_RETURN(Value value, ReadValue(key));
    f_.metadata_.emplace_back(std::move(key), std::move(value));
  }
  return OkStatus();
}

StatusOr<Value::Scalar> Parser::ReadScalar(ValueType type, std::string_view what) {
  switch (type) {
    case ValueType::kUint8: {
      ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>(what));
      return Scalar(uint64_t{x});
    }
    case ValueType::kInt8: {
      ASSIGN_OR_RETURN(int8_t x, Read<int8_t>(what));
      return Scalar(int64_t{x});
    }
    case ValueType::kUint16: {
      ASSIGN_OR_RETURN(uint16_t x, Read<uint16_t>(what));
      return Scalar(uint64_t{x});
    }
    case ValueType::kInt16: {
      ASSIGN_OR_RETURN(int16_t x, Read<int16_t>(what));
      return Scalar(int64_t{x});
    }
    case ValueType::kUint32: {
      ASSIGN_OR_RETURN(uint32_t x, Read<uint32_t>(what));
      return Scalar(uint64_t{x});
    }
    case ValueType::kInt32: {
      ASSIGN_OR_RETURN(int32_t x, Read<int32_t>(what));
      return Scalar(int64_t{x});
    }
    case ValueType::kUint64: {
      ASSIGN_OR_RETURN(uint64_t x, Read<uint64_t>(what));
      return Scalar(x);
    }
    case ValueType::kInt64: {
      ASSIGN_OR_RETURN(int64_t x, Read<int64_t>(what));
      return Scalar(x);
    }
    case ValueType::kFloat32: {
      ASSIGN_OR_RETURN(float x, Read<float>(what));
      return Scalar(double{x});
    }
    case ValueType::kFloat64: {
      ASSIGN_OR_RETURN(double x, Read<double>(what));
      return Scalar(x);
    }
    case ValueType::kBool: {
      ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>(what));
      if (x > 1)
        return Corrupt(pos_ - 1,
                       fmt::format("{} is a bool with byte value {}, expected 0 or 1", what, x));
      return Scalar(x == 1);
    }
    case ValueType::kString: {
      ASSIGN_OR_RETURN(std::string s, ReadString(what));
      return Scalar(std::move(s));
    }
    case ValueType::kArray:
      break;
  }
  return Corrupt(pos_, fmt::format("{}: no scalar of type {}", what, ValueTypeName(type)));
}

StatusOr<Value> Parser::ReadValue(const std::string& key) {
  const uint64_t at = pos_;
  ASSIGN_OR_RETURN(uint32_t raw, Read<uint32_t>(fmt::format("value type of key '{}'", key)));
  if (!IsKnownValueType(raw)) {
    return Corrupt(at,
                   fmt::format("key '{}' has unknown value type {} (expected 0..12)", key, raw));
  }
  const ValueType type = static_cast<ValueType>(raw);
  Value value;
  if (type == ValueType::kArray) {
    RETURN_IF_ERROR(ReadArray(key, &value));
    return value;
  }
  value.type_ = type;
  ASSIGN_OR_RETURN(value.scalar_, ReadScalar(type, fmt::format("value of key '{}'", key)));
  return value;
}

Status Parser::ReadArray(const std::string& key, Value* out) {
  const uint64_t at = pos_;
  ASSIGN_OR_RETURN(uint32_t raw, Read<uint32_t>(fmt::format("element type of array '{}'", key)));
  if (raw == static_cast<uint32_t>(ValueType::kArray)) {
    return Error(StatusCode::kUnimplemented, at,
                 fmt::format("key '{}' is an array of arrays; nested arrays are not supported "
                             "(llama.cpp rejects them too)",
                             key));
  }
  if (!IsKnownValueType(raw)) {
    return Corrupt(
        at, fmt::format("array '{}' has unknown element type {} (expected 0..12)", key, raw));
  }
  const ValueType elem = static_cast<ValueType>(raw);
  const uint64_t count_at = pos_;
  ASSIGN_OR_RETURN(uint64_t count, Read<uint64_t>(fmt::format("length of array '{}'", key)));
  if (count > Remaining() / MinElementBytes(elem)) {
    return Corrupt(
        count_at, fmt::format("array '{}' claims {} {} elements (at least {} bytes "
                              "each) but only {} bytes remain",
                              key, count, ValueTypeName(elem), MinElementBytes(elem), Remaining()));
  }
  out->type_ = ValueType::kArray;
  out->array_type_ = elem;
  const std::string what = fmt::format("element of array '{}'", key);
  if (elem == ValueType::kString) {
    out->strings_.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      ASSIGN_OR_RETURN(std::string s, ReadString(what));
      out->strings_.push_back(std::move(s));
    }
    return OkStatus();
  }
  out->elements_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(Scalar s, ReadScalar(elem, what));
    out->elements_.push_back(std::move(s));
  }
  return OkStatus();
}

Status Parser::ReadAlignment() {
  for (const auto& [key, value] : f_.metadata_) {
    if (key != "general.alignment") continue;
    // llama.cpp requires exactly uint32 here, so a file we accept it accepts too.
    if (value.type() != ValueType::kUint32) {
      return Corrupt(pos_, fmt::format("general.alignment must be a uint32, found {}",
                                       ValueTypeName(value.type())));
    }
    const uint64_t a = static_cast<uint64_t>(*value.AsInt());
    if (a == 0 || (a & (a - 1)) != 0) {
      return Corrupt(pos_,
                     fmt::format("general.alignment is {}, expected a non-zero power of two", a));
    }
    f_.alignment_ = a;
  }
  return OkStatus();
}

Status Parser::ReadTensorInfos(uint64_t n) {
  if (n > Remaining() / kMinTensorInfoBytes) {
    return Corrupt(pos_, fmt::format("tensor count {} is impossible (corrupt or truncated "
                                     "file): {} bytes remain after the metadata and each "
                                     "tensor info needs at least {}",
                                     n, Remaining(), kMinTensorInfoBytes));
  }
  f_.tensors_.reserve(n);
  info_pos_.reserve(n);
  std::unordered_set<std::string> seen;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t at = pos_;
    RETURN_IF_ERROR(ReadTensorInfo(i));
    if (!seen.insert(f_.tensors_.back().name).second) {
      return Corrupt(at, fmt::format("duplicate tensor name '{}'", f_.tensors_.back().name));
    }
  }
  return OkStatus();
}

Status Parser::ReadTensorInfo(uint64_t index) {
  info_pos_.push_back(pos_);
  TensorInfo t;
  ASSIGN_OR_RETURN(t.name, ReadString(fmt::format("name of tensor {}", index)));
  const uint64_t dims_at = pos_;
  ASSIGN_OR_RETURN(uint32_t n_dims, Read<uint32_t>(fmt::format("n_dims of tensor '{}'", t.name)));
  if (n_dims == 0 || n_dims > kMaxDims) {
    return Corrupt(dims_at, fmt::format("tensor '{}' has {} dimensions, expected 1..{}", t.name,
                                        n_dims, kMaxDims));
  }
  int64_t elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t at = pos_;
    ASSIGN_OR_RETURN(uint64_t ne,
                     Read<uint64_t>(fmt::format("dimension {} of tensor '{}'", d, t.name)));
    if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Corrupt(
          at, fmt::format("tensor '{}' dimension {} is {} (negative as int64)", t.name, d, ne));
    }
    t.shape.push_back(static_cast<int64_t>(ne));
    if (__builtin_mul_overflow(elements, static_cast<int64_t>(ne), &elements)) {
      return Corrupt(at, fmt::format("tensor '{}' element count overflows int64", t.name));
    }
  }
  t.num_elements = elements;
  const uint64_t type_at = pos_;
  ASSIGN_OR_RETURN(uint32_t type_id, Read<uint32_t>(fmt::format("type of tensor '{}'", t.name)));
  std::optional<DTypeInfo> info = LookupDType(type_id);
  if (!info) {
    return Error(StatusCode::kUnimplemented, type_at,
                 fmt::format("tensor '{}' has unknown ggml type id {}", t.name, type_id));
  }
  t.type = info->type;
  if (t.shape[0] % info->block_size != 0) {
    return Corrupt(type_at, fmt::format("tensor '{}' of type {} has ne0 = {}, not a multiple of "
                                        "the block size {}",
                                        t.name, info->name, t.shape[0], info->block_size));
  }
  const int64_t rows = t.shape[0] == 0 ? 0 : elements / t.shape[0];
  int64_t row_bytes = 0;
  if (__builtin_mul_overflow(t.shape[0] / info->block_size, info->type_size, &row_bytes) ||
      __builtin_mul_overflow(row_bytes, rows, &t.num_bytes)) {
    return Corrupt(type_at, fmt::format("tensor '{}' byte size overflows int64", t.name));
  }
  ASSIGN_OR_RETURN(t.offset, Read<uint64_t>(fmt::format("data offset of tensor '{}'", t.name)));
  f_.tensors_.push_back(std::move(t));
  return OkStatus();
}

Status Parser::PlaceTensorData() {
  const uint64_t a = f_.alignment_;
  // pos_ <= size_, which came from fstat or a std::string, so this cannot overflow.
  // Like llama.cpp, a file without tensors needs no padding after its header.
  if (f_.tensors_.empty()) {
    f_.data_offset_ = pos_;
    return OkStatus();
  }
  f_.data_offset_ = (pos_ + a - 1) / a * a;
  if (f_.data_offset_ > size_) {
    return Corrupt(pos_,
                   fmt::format("file truncated: tensor data should start at byte {} "
                               "(header end padded to alignment {}) but the file has {} bytes",
                               f_.data_offset_, a, size_));
  }
  const uint64_t data_size = size_ - f_.data_offset_;
  for (size_t i = 0; i < f_.tensors_.size(); ++i) {
    TensorInfo& t = f_.tensors_[i];
    if (t.offset % a != 0) {
      return Corrupt(info_pos_[i], fmt::format("tensor '{}' data offset {} is not a multiple of "
                                               "the alignment {}",
                                               t.name, t.offset, a));
    }
    const uint64_t bytes = static_cast<uint64_t>(t.num_bytes);
    if (t.offset > data_size || bytes > data_size - t.offset) {
      return Corrupt(info_pos_[i],
                     fmt::format("tensor '{}' data [{}, +{}) extends past the end of the file "
                                 "({} bytes of tensor data after byte {}); file truncated?",
                                 t.name, t.offset, bytes, data_size, f_.data_offset_));
    }
    t.data = base_ + f_.data_offset_ + t.offset;
  }
  return CheckOverlaps();
}

Status Parser::CheckOverlaps() const {
  std::vector<size_t> order(f_.tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t x, size_t y) { return f_.tensors_[x].offset < f_.tensors_[y].offset; });
  const TensorInfo* prev = nullptr;
  for (size_t i : order) {
    const TensorInfo& t = f_.tensors_[i];
    if (t.num_bytes == 0) continue;
    if (prev != nullptr && t.offset < prev->offset + static_cast<uint64_t>(prev->num_bytes)) {
      return Corrupt(info_pos_[i], fmt::format("tensor '{}' data [{}, {}) overlaps tensor '{}' "
                                               "data [{}, {})",
                                               t.name, t.offset, t.offset + t.num_bytes, prev->name,
                                               prev->offset, prev->offset + prev->num_bytes));
    }
    prev = &t;
  }
  return OkStatus();
}

// ---- File ----

File::~File() {
  if (mapping_ != nullptr) munmap(mapping_, mapping_size_);
}

StatusOr<std::unique_ptr<File>> File::Parse(std::unique_ptr<File> file) {
  Parser parser(*file);
  RETURN_IF_ERROR(parser.Run());
  for (size_t i = 0; i < file->metadata_.size(); ++i) {
    file->key_index_.emplace(file->metadata_[i].first, i);
  }
  for (size_t i = 0; i < file->tensors_.size(); ++i) {
    file->tensor_index_.emplace(file->tensors_[i].name, i);
  }
  return file;
}

StatusOr<std::unique_ptr<File>> File::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = fmt::format("cannot open GGUF file '{}': {}", path, std::strerror(err));
    return err == ENOENT ? NotFoundError(msg) : InvalidArgumentError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(fmt::format("'{}' is not a regular file", path));
  }
  if (st.st_size == 0) {
    ::close(fd);
    return DataLossError(fmt::format("{}: file is empty, expected a GGUF file", path));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return InvalidArgumentError(fmt::format("cannot mmap '{}': {}", path, std::strerror(err)));
  }
  std::unique_ptr<File> file(new File());
  file->path_ = path;
  file->mapping_ = map;
  file->mapping_size_ = size;
  file->base_ = static_cast<const uint8_t*>(map);
  file->size_ = size;
  return Parse(std::move(file));
}

StatusOr<std::unique_ptr<File>> File::FromBytes(std::string bytes, std::string name) {
  std::unique_ptr<File> file(new File());
  file->path_ = std::move(name);
  file->owned_ = std::move(bytes);
  file->base_ = reinterpret_cast<const uint8_t*>(file->owned_.data());
  file->size_ = file->owned_.size();
  return Parse(std::move(file));
}

}  // namespace vlserve::gguf
