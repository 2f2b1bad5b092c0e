// Writer -> reader round trips, typed getters, and the writer's byte layout checked by an
// independent parse that follows the GGUF spec (ggml docs/gguf.md) field by field.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "gguf/gguf.h"

namespace vlserve::gguf {
namespace {

std::unique_ptr<File> Reread(const Writer& w) {
  StatusOr<std::unique_ptr<File>> f = File::FromBytes(w.WriteToString(), "rt.gguf");
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? std::move(f).value() : nullptr;
}

TEST(GgufRoundTrip, EveryScalarType) {
  Writer w;
  w.Set("u8", Value::U8(255));
  w.Set("i8", Value::I8(-128));
  w.Set("u16", Value::U16(65535));
  w.Set("i16", Value::I16(-32768));
  w.Set("u32", Value::U32(4294967295u));
  w.Set("i32", Value::I32(-2147483647 - 1));
  w.Set("f32", Value::F32(1.5e-7f));
  w.Set("bool_t", Value::Bool(true));
  w.Set("bool_f", Value::Bool(false));
  w.Set("str", Value::String(std::string("h\xc3\xa9llo\0x", 8)));
  w.Set("u64", Value::U64(std::numeric_limits<uint64_t>::max()));
  w.Set("i64", Value::I64(std::numeric_limits<int64_t>::min()));
  w.Set("f64", Value::F64(-2.718281828459045));
  w.Set("empty_str", Value::String(""));
  std::unique_ptr<File> f = Reread(w);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->metadata().size(), 14u);
  EXPECT_EQ(f->metadata()[0].first, "u8");  // file order is kept
  EXPECT_EQ(f->metadata()[13].first, "empty_str");
  EXPECT_EQ(f->Find("u8")->type(), ValueType::kUint8);
  EXPECT_EQ(*f->GetInt("u8"), 255);
  EXPECT_EQ(*f->GetInt("i8"), -128);
  EXPECT_EQ(*f->GetInt("u16"), 65535);
  EXPECT_EQ(*f->GetInt("i16"), -32768);
  EXPECT_EQ(*f->GetInt("u32"), 4294967295);
  EXPECT_EQ(*f->GetInt("i32"), -2147483648LL);
  EXPECT_EQ(static_cast<float>(*f->GetFloat("f32")), 1.5e-7f);
  EXPECT_EQ(f->Find("f32")->type(), ValueType::kFloat32);
  EXPECT_TRUE(*f->GetBool("bool_t"));
  EXPECT_FALSE(*f->GetBool("bool_f"));
  EXPECT_EQ(*f->GetString("str"), std::string("h\xc3\xa9llo\0x", 8));
  EXPECT_EQ(*f->Find("u64")->AsUint64(), std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(f->Find("u64")->AsInt().has_value());  // does not fit int64
  EXPECT_EQ(*f->GetInt("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*f->GetFloat("f64"), -2.718281828459045);
  EXPECT_EQ(*f->GetString("empty_str"), "");
  // Each value compares equal to what was written.
  for (const auto& [key, value] : f->metadata()) EXPECT_EQ(value, *f->Find(key)) << key;
}

TEST(GgufRoundTrip, EveryArrayType) {
  Writer w;
  w.Set("a_u8", Value::U8Array({0, 7, 255}));
  w.Set("a_i8", Value::Array(ValueType::kInt8, {Value::I8(-1), Value::I8(127)}));
  w.Set("a_u16", Value::Array(ValueType::kUint16, {Value::U16(1), Value::U16(65535)}));
  w.Set("a_i16", Value::Array(ValueType::kInt16, {Value::I16(-300)}));
  w.Set("a_u32", Value::U32Array({1, 2, 3}));
  w.Set("a_i32", Value::I32Array({-1, 0, 2147483647}));
  w.Set("a_f32", Value::F32Array({0.5f, -1.25f, 3e38f}));
  w.Set("a_bool", Value::Array(ValueType::kBool, {Value::Bool(true), Value::Bool(false)}));
  w.Set("a_str", Value::StringArray({"<s>", "", "\xe4\xb8\xad", std::string("a\0b", 3)}));
  w.Set("a_u64", Value::Array(ValueType::kUint64, {Value::U64(1ull << 63)}));
  w.Set("a_i64", Value::I64Array({std::numeric_limits<int64_t>::min(), 5}));
  w.Set("a_f64", Value::Array(ValueType::kFloat64, {Value::F64(1e300)}));
  w.Set("a_empty", Value::I32Array({}));
  std::unique_ptr<File> f = Reread(w);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(*f->GetIntArray("a_u8"), (std::vector<int64_t>{0, 7, 255}));
  EXPECT_EQ(*f->GetIntArray("a_i8"), (std::vector<int64_t>{-1, 127}));
  EXPECT_EQ(*f->GetIntArray("a_u16"), (std::vector<int64_t>{1, 65535}));
  EXPECT_EQ(*f->GetIntArray("a_i16"), (std::vector<int64_t>{-300}));
  EXPECT_EQ(*f->GetIntArray("a_u32"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(*f->GetIntArray("a_i32"), (std::vector<int64_t>{-1, 0, 2147483647}));
  EXPECT_EQ(*f->GetFloatArray("a_f32"), (std::vector<float>{0.5f, -1.25f, 3e38f}));
  EXPECT_EQ(*f->GetIntArray("a_bool"), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(*f->GetStringArray("a_str"),
            (std::vector<std::string>{"<s>", "", "\xe4\xb8\xad", std::string("a\0b", 3)}));
  EXPECT_FALSE(f->GetIntArray("a_u64").ok());  // 2^63 does not fit int64
  EXPECT_EQ(f->Find("a_u64")->ArrayElement(0).AsUint64(), uint64_t{1} << 63);
  EXPECT_EQ(*f->GetIntArray("a_i64"),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 5}));
  EXPECT_EQ(f->Find("a_f64")->ArrayElement(0).AsFloat(), 1e300);
  EXPECT_EQ(f->Find("a_empty")->array_size(), 0u);
  EXPECT_EQ(f->Find("a_empty")->array_type(), ValueType::kInt32);
  EXPECT_EQ(f->Find("a_i16")->array_type(), ValueType::kInt16);
  EXPECT_EQ(f->Find("a_str")->array_type(), ValueType::kString);
  EXPECT_EQ(f->Find("a_f64")->array_size(), 1u);
}

TEST(GgufRoundTrip, GetterErrorsNameKeyAndFile) {
  Writer w;
  w.Set("llama.block_count", Value::U32(30));
  w.Set("name", Value::String("x"));
  std::unique_ptr<File> f = Reread(w);
  ASSERT_NE(f, nullptr);
  StatusOr<int64_t> missing = f->GetInt("llama.context_length");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "key 'llama.context_length' missing in rt.gguf");
  StatusOr<std::string> wrong = f->GetString("llama.block_count");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.status().message(),
            "key 'llama.block_count' in rt.gguf is uint32, expected string");
  EXPECT_EQ(*f->GetFloat("llama.block_count"), 30.0);  // ints convert to float
  EXPECT_FALSE(f->GetInt("name").ok());
  EXPECT_EQ(*f->GetIntOr("absent", 42), 42);
  EXPECT_EQ(*f->GetIntOr("llama.block_count", 42), 30);
  EXPECT_FALSE(f->GetIntOr("name", 1).ok());  // present with the wrong type: still an error
  EXPECT_EQ(*f->GetStringOr("absent", "d"), "d");
  EXPECT_EQ(*f->GetBoolOr("absent", true), true);
  EXPECT_EQ(*f->GetFloatOr("absent", 0.25), 0.25);
  StatusOr<const TensorInfo*> t = f->GetTensor("token_embd.weight");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "tensor 'token_embd.weight' missing in rt.gguf");
}

TEST(GgufRoundTrip, SetReplacesInPlace) {
  Writer w;
  w.Set("a", Value::U32(1));
  w.Set("b", Value::U32(2));
  w.Set("a", Value::String("again"));
  std::unique_ptr<File> f = Reread(w);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].first, "a");
  EXPECT_EQ(*f->GetString("a"), "again");
}

TEST(GgufRoundTrip, TensorsOfSeveralTypes) {
  Writer w;
  std::vector<float> f32 = {1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> q8(34 * 2 * 3);  // q8_0: 34 bytes per 32 values; [64, 3]
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
  std::vector<uint8_t> q4k(144 * 2);  // q4_k: 144 bytes per 256 values; [256, 2]
  for (size_t i = 0; i < q4k.size(); ++i) q4k[i] = static_cast<uint8_t>(255 - i);
  std::vector<uint16_t> f16(5, 0x3c00);
  ASSERT_TRUE(w.AddTensor("a", DType::kF32, {3, 2}, f32.data(), f32.size() * 4).ok());
  ASSERT_TRUE(w.AddTensor("b", DType::kQ8_0, {64, 3}, q8.data(), q8.size()).ok());
  ASSERT_TRUE(w.AddTensor("c", DType::kQ4_K, {256, 1, 2}, q4k.data(), q4k.size()).ok());
  ASSERT_TRUE(w.AddTensor("d", DType::kF16, {5}, f16.data(), f16.size() * 2).ok());
  std::unique_ptr<File> f = Reread(w);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->tensors().size(), 4u);
  const TensorInfo& a = *f->FindTensor("a");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(a.type, DType::kF32);
  EXPECT_EQ(a.num_elements, 6);
  EXPECT_EQ(a.num_bytes, 24);
  EXPECT_EQ(std::memcmp(a.data, f32.data(), 24), 0);
  const TensorInfo& b = **f->GetTensor("b");
  EXPECT_EQ(b.num_bytes, 204);
  EXPECT_EQ(std::memcmp(b.data, q8.data(), q8.size()), 0);
  const TensorInfo& c = *f->FindTensor("c");
  EXPECT_EQ(c.shape, (std::vector<int64_t>{256, 1, 2}));
  EXPECT_EQ(c.num_elements, 512);
  EXPECT_EQ(std::memcmp(c.data, q4k.data(), q4k.size()), 0);
  EXPECT_EQ(f->FindTensor("d")->num_bytes, 10);
  // Offsets are the running sum of sizes padded to 32: 24->32, 204->224, 288->288.
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(b.offset, 32u);
  EXPECT_EQ(c.offset, 256u);
  EXPECT_EQ(f->FindTensor("d")->offset, 544u);
}

TEST(GgufRoundTrip, WriterRejectsInconsistentTensors) {
  Writer w;
  float x[4] = {};
  EXPECT_FALSE(w.AddTensor("short", DType::kF32, {4}, x, 12).ok());
  EXPECT_FALSE(w.AddTensor("q", DType::kQ4_0, {16}, x, 9).ok());  // ne0 % 32 != 0
  EXPECT_FALSE(w.AddTensor("five", DType::kF32, {1, 1, 1, 1, 4}, x, 16).ok());
  EXPECT_FALSE(w.AddTensor("none", DType::kF32, {}, x, 0).ok());
  EXPECT_FALSE(w.AddTensor("neg", DType::kF32, {-4}, x, 16).ok());
  EXPECT_FALSE(w.AddTensor(std::string(64, 'n'), DType::kF32, {4}, x, 16).ok());
  ASSERT_TRUE(w.AddTensor("ok", DType::kF32, {4}, x, 16).ok());
  Status dup = w.AddTensor("ok", DType::kF32, {4}, x, 16);
  EXPECT_EQ(dup.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dup.message().find("duplicate tensor 'ok'"), std::string::npos);
}

// Little-endian reads for the independent layout check.
struct Cursor {
  const std::string& s;
  size_t p = 0;
  uint64_t U(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(s.at(p + i))} << (8 * i);
    p += n;
    return v;
  }
  std::string Str() {
    const uint64_t n = U(8);
    std::string out = s.substr(p, n);
    p += n;
    return out;
  }
};

TEST(GgufLayout, WriterBytesFollowTheSpec) {
  Writer w;
  w.Set("general.architecture", Value::String("llama"));
  w.Set("ids", Value::U32Array({7, 9}));
  std::vector<uint8_t> t0(12, 0x11), t1(68, 0x22), t2(10, 0x33);
  ASSERT_TRUE(w.AddTensor("t0", DType::kF32, {3}, t0.data(), t0.size()).ok());
  ASSERT_TRUE(w.AddTensor("t1", DType::kQ8_0, {32, 2}, t1.data(), t1.size()).ok());
  ASSERT_TRUE(w.AddTensor("t2", DType::kF16, {5}, t2.data(), t2.size()).ok());
  const std::string s = w.WriteToString();
  Cursor c{s};
  EXPECT_EQ(s.substr(0, 4), "GGUF");
  c.p = 4;
  EXPECT_EQ(c.U(4), 3u);  // version
  EXPECT_EQ(c.U(8), 3u);  // tensor count
  EXPECT_EQ(c.U(8), 2u);  // kv count
  EXPECT_EQ(c.Str(), "general.architecture");
  EXPECT_EQ(c.U(4), 8u);  // string
  EXPECT_EQ(c.Str(), "llama");
  EXPECT_EQ(c.Str(), "ids");
  EXPECT_EQ(c.U(4), 9u);  // array
  EXPECT_EQ(c.U(4), 4u);  // of uint32
  EXPECT_EQ(c.U(8), 2u);
  EXPECT_EQ(c.U(4), 7u);
  EXPECT_EQ(c.U(4), 9u);
  // Tensor infos: name, n_dims, dims (u64), ggml type, offset.
  const struct {
    const char* name;
    std::vector<uint64_t> dims;
    uint64_t type, offset, bytes;
  } want[] = {{"t0", {3}, 0, 0, 12}, {"t1", {32, 2}, 8, 32, 68}, {"t2", {5}, 1, 128, 10}};
  for (const auto& t : want) {
    EXPECT_EQ(c.Str(), t.name);
    EXPECT_EQ(c.U(4), t.dims.size());
    for (uint64_t d : t.dims) EXPECT_EQ(c.U(8), d);
    EXPECT_EQ(c.U(4), t.type);
    EXPECT_EQ(c.U(8), t.offset);
  }
  const size_t header_end = c.p;
  const size_t data_start = (header_end + 31) / 32 * 32;
  for (size_t i = header_end; i < data_start; ++i) EXPECT_EQ(s[i], 0) << "padding byte " << i;
  // Each tensor padded to 32, the last one included (as llama.cpp writes).
  ASSERT_EQ(s.size(), data_start + 32 + 96 + 32);
  for (const auto& t : want) {
    const char fill = static_cast<char>(t.name[1] == '0' ? 0x11 : t.name[1] == '1' ? 0x22 : 0x33);
    for (size_t i = 0; i < t.bytes; ++i) ASSERT_EQ(s[data_start + t.offset + i], fill);
    const size_t padded = (t.bytes + 31) / 32 * 32;
    for (size_t i = t.bytes; i < padded; ++i) ASSERT_EQ(s[data_start + t.offset + i], 0);
  }
  std::unique_ptr<File> f = Reread(w);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->data_offset(), data_start);
}

TEST(GgufLayout, EmptyWriterIsPaddedHeader) {
  Writer w;
  const std::string s = w.WriteToString();
  ASSERT_EQ(s.size(), 32u);  // 24-byte header padded to 32
  EXPECT_EQ(s.substr(0, 4), "GGUF");
  EXPECT_EQ(s[4], 3);
  for (size_t i = 8; i < 32; ++i) EXPECT_EQ(s[i], 0);
}

TEST(GgufLayout, CustomAlignment) {
  Writer w;
  w.SetAlignment(64);
  std::vector<float> x(4, 1.0f);
  ASSERT_TRUE(w.AddTensor("a", DType::kF32, {4}, x.data(), 16).ok());
  ASSERT_TRUE(w.AddTensor("b", DType::kF32, {4}, x.data(), 16).ok());
  std::unique_ptr<File> f = Reread(w);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->Find("general.alignment")->type(), ValueType::kUint32);
  EXPECT_EQ(*f->GetInt("general.alignment"), 64);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->FindTensor("b")->offset, 64u);
  w.SetAlignment(32);  // back to the default: the key disappears
  f = Reread(w);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->Find("general.alignment"), nullptr);
  EXPECT_EQ(f->FindTensor("b")->offset, 32u);
}

TEST(GgufRoundTrip, WriteFileMatchesStringAndMaps) {
  Writer w;
  w.Set("general.name", Value::String("mapped"));
  std::vector<float> x = {0.25f, -8.0f, 3.0f, 1e-3f};
  ASSERT_TRUE(w.AddTensor("x", DType::kF32, {2, 2}, x.data(), 16).ok());
  const std::string path = ::testing::TempDir() + "/gguf_roundtrip_test.gguf";
  ASSERT_TRUE(w.WriteFile(path).ok());
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), w.WriteToString());
  StatusOr<std::unique_ptr<File>> f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->path(), path);
  const TensorInfo& t = *(*f)->FindTensor("x");
  float back[4];
  std::memcpy(back, t.data, 16);
  EXPECT_EQ(back[1], -8.0f);
  EXPECT_EQ(back[3], 1e-3f);
  std::remove(path.c_str());  // the mapping stays valid after unlink
  EXPECT_EQ(*(*f)->GetString("general.name"), "mapped");
  EXPECT_FALSE(w.WriteFile("/nonexistent/dir/x.gguf").ok());
}

// Released pages of a mapped tensor (spanning several pages) read back unchanged (they
// fault in again from the file); ranges outside the mapping and in-memory files are
// ignored.
TEST(GgufRoundTrip, ReleasedPagesReadBackUnchanged) {
  Writer w;
  std::vector<float> x(5000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.5f - 7.0f;
  ASSERT_TRUE(w.AddTensor("x", DType::kF32, {5000}, x.data(), x.size() * 4).ok());
  const std::string path = ::testing::TempDir() + "/gguf_release_test.gguf";
  ASSERT_TRUE(w.WriteFile(path).ok());
  StatusOr<std::unique_ptr<File>> f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const TensorInfo& t = *(*f)->FindTensor("x");
  (*f)->ReleasePages(t.data, x.size() * 4);
  std::vector<float> back(x.size());
  std::memcpy(back.data(), t.data, x.size() * 4);
  EXPECT_EQ(back, x);
  (*f)->ReleasePages(x.data(), x.size() * 4);  // not in the mapping: ignored
  std::remove(path.c_str());
  std::unique_ptr<File> mem = Reread(w);
  ASSERT_NE(mem, nullptr);
  mem->ReleasePages(mem->FindTensor("x")->data, x.size() * 4);  // FromBytes: no-op
  std::memcpy(back.data(), mem->FindTensor("x")->data, x.size() * 4);
  EXPECT_EQ(back, x);
}

TEST(GgufValue, ConversionsAndDebugString) {
  EXPECT_EQ(Value::Bool(true).AsInt(), 1);
  EXPECT_FALSE(Value::Bool(true).AsFloat().has_value());
  EXPECT_EQ(Value::I8(-3).AsFloat(), -3.0);
  EXPECT_EQ(Value::String("x").AsInt(), std::nullopt);
  EXPECT_EQ(Value::U32(3).AsString(), nullptr);
  EXPECT_EQ(Value::F32(0.1f).AsFloat(), static_cast<double>(0.1f));
  EXPECT_FALSE(Value::F32(1.0f).AsInt().has_value());
  EXPECT_EQ(Value::U32(3).array_size(), 0u);
  EXPECT_EQ(Value::I32Array({1, 2, 3, 4, 5}).DebugString(3), "[1, 2, 3, ... (5 total)]");
  EXPECT_EQ(Value::StringArray({"a\"b", "\n"}).DebugString(), R"(["a\"b", "\n"])");
  EXPECT_EQ(Value::F32(0.1f).DebugString(), "0.1");
  EXPECT_EQ(Value::Bool(false).DebugString(), "false");
  EXPECT_EQ(ValueTypeName(ValueType::kFloat64), "float64");
  EXPECT_FALSE(Value::StringArray({"a"}).AsFloatArray().has_value());
  EXPECT_EQ(Value::StringArray({"a"}).AsIntArray(), std::nullopt);
  EXPECT_EQ(*Value::I32Array({2, -1}).AsFloatArray(), (std::vector<float>{2.0f, -1.0f}));
}

}  // namespace
}  // namespace vlserve::gguf
