// libFuzzer target for the GGUF reader (and, on inputs it accepts, the writer).
// Properties: the reader never reads outside the input (ASan checks every tensor byte it
// hands out), never crashes, and write(read(x)) is a fixed point of read-then-write.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "base/check.h"
#include "gguf/gguf.h"

namespace {

using vlserve::gguf::File;
using vlserve::gguf::Value;
using vlserve::gguf::Writer;

void TouchEverything(const File& f) {
  volatile uint64_t sink = 0;
  for (const auto& [key, value] : f.metadata()) {
    CHECK(f.Find(key) == &value);
    sink = sink + value.DebugString(4).size() + value.AsInt().value_or(0) +
           static_cast<uint64_t>(value.AsFloat().value_or(0) != 0);
    if (value.is_array() && value.array_size() > 0) {
      sink = sink + value.ArrayElement(value.array_size() - 1).DebugString().size();
      (void)value.AsIntArray();
      (void)value.AsFloatArray();
    }
  }
  for (const vlserve::gguf::TensorInfo& t : f.tensors()) {
    CHECK(f.FindTensor(t.name) == &t);
    CHECK(f.data_offset() + t.offset + static_cast<uint64_t>(t.num_bytes) <= f.file_size());
    for (int64_t i = 0; i < t.num_bytes; ++i) sink = sink + t.data[i];
  }
}

// Nullopt when the writer refuses a tensor the reader accepts (e.g. a 64+ byte name).
std::optional<std::string> Rewrite(const File& f) {
  Writer w;
  for (const auto& [key, value] : f.metadata()) w.Set(key, value);
  if (f.Find("general.alignment") == nullptr) w.SetAlignment(f.alignment());
  for (const vlserve::gguf::TensorInfo& t : f.tensors()) {
    if (!w.AddTensor(t.name, t.type, t.shape, t.data, static_cast<size_t>(t.num_bytes)).ok()) {
      return std::nullopt;
    }
  }
  return w.WriteToString();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = File::FromBytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!file.ok()) {
    CHECK(!file.status().message().empty());
    return 0;
  }
  TouchEverything(**file);
  // A tensor-less file may declare a huge alignment; rewriting it would pad to gigabytes.
  if ((*file)->alignment() > 4096) return 0;
  std::optional<std::string> once = Rewrite(**file);
  if (!once) return 0;
  auto again = File::FromBytes(*once, "rewritten");
  CHECK(again.ok()) << again.status().ToString();
  std::optional<std::string> twice = Rewrite(**again);
  CHECK(twice.has_value() && *twice == *once) << "write(read(x)) is not a fixed point";
  return 0;
}
