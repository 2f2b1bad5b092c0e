// Every corrupt-file case the reader must reject, each built byte by byte.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "gguf/gguf.h"
#include "gguf_bytes.h"

namespace vlserve::gguf {
namespace {

using testing::Bytes;

constexpr uint32_t kF32 = 0;
constexpr uint32_t kQ4_0 = 2;

// Parses and returns the error; fails the test if parsing succeeded.
Status ParseError(const Bytes& b, const std::string& name = "bad.gguf") {
  StatusOr<std::unique_ptr<File>> f = File::FromBytes(b.str(), name);
  EXPECT_FALSE(f.ok()) << "parsed a corrupt file";
  return f.status();
}

void ExpectError(const Bytes& b, StatusCode code, const std::string& needle) {
  Status s = ParseError(b);
  EXPECT_EQ(s.code(), code) << s.ToString();
  EXPECT_NE(s.message().find(needle), std::string::npos)
      << "message '" << s.message() << "' lacks '" << needle << "'";
  EXPECT_NE(s.message().find("bad.gguf: byte "), std::string::npos) << s.message();
}

// One f32 tensor [4] at offset 0 with 16 data bytes, alignment 32.
Bytes OneTensorFile() {
  Bytes b;
  b.Header(1, 1).KvStr("general.architecture", "llama");
  b.TensorInfo("w", {4}, kF32, 0).PadTo(32).Fill(16);
  return b;
}

TEST(GgufValidation, ValidBaselineParses) {
  StatusOr<std::unique_ptr<File>> f = File::FromBytes(OneTensorFile().str());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->tensors().size(), 1u);
}

TEST(GgufValidation, BadMagic) {
  Bytes b;
  b.Raw("GGML").U32(3).U64(0).U64(0);
  Status s = ParseError(b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bad magic 'GGML'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("bad.gguf: byte 0"), std::string::npos) << s.message();
}

TEST(GgufValidation, Version1Rejected) {
  Bytes b;
  b.Header(0, 0, /*version=*/1);
  ExpectError(b, StatusCode::kUnimplemented, "version 1 is not supported");
}

TEST(GgufValidation, UnknownVersionsRejected) {
  for (uint32_t v : {0u, 4u, 0x03000000u}) {
    Bytes b;
    b.Header(0, 0, v);
    ExpectError(b, StatusCode::kUnimplemented, "unsupported GGUF version " + std::to_string(v));
  }
}

TEST(GgufValidation, Version2Accepted) {
  Bytes b;
  b.Header(0, 1, /*version=*/2).KvU32("a", 7);
  StatusOr<std::unique_ptr<File>> f = File::FromBytes(b.str());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->version(), 2u);
  EXPECT_EQ(*(*f)->GetInt("a"), 7);
}

TEST(GgufValidation, TruncationAnywhereIsDataLoss) {
  const std::string full = OneTensorFile().str();
  for (size_t n = 0; n < full.size(); ++n) {
    StatusOr<std::unique_ptr<File>> f = File::FromBytes(full.substr(0, n), "cut.gguf");
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(f.status().code(), StatusCode::kDataLoss) << n << ": " << f.status().ToString();
    const std::string m = f.status().message();
    EXPECT_TRUE(m.find("truncated") != std::string::npos ||
                m.find("past the end") != std::string::npos ||
                m.find("remain") != std::string::npos)
        << n << ": " << m;
  }
}

TEST(GgufValidation, TruncatedMessageNamesOffsetAndExpectation) {
  Bytes b;
  b.Header(0, 1).Str("key").U32(4).U8(1);  // u32 value cut after one byte
  ExpectError(b, StatusCode::kDataLoss,
              "byte 39: file truncated: expected value of key 'key' (4 bytes) but only 1 bytes "
              "remain");
}

TEST(GgufValidation, StringLengthPastEnd) {
  Bytes b;
  b.Header(0, 1).U64(1000).Raw("general.name");
  ExpectError(b, StatusCode::kDataLoss, "has length 1000 but only 12 bytes remain");
}

TEST(GgufValidation, StringValueLengthPastEnd) {
  Bytes b;
  b.Header(0, 1).Str("k").U32(8).U64(UINT64_MAX).Raw("abc");
  ExpectError(b, StatusCode::kDataLoss, "value of key 'k' has length");
}

TEST(GgufValidation, ArrayLengthPastEnd) {
  Bytes b;
  b.Header(0, 1).Str("arr").U32(9).U32(5).U64(1u << 30).U32(1).U32(2);
  ExpectError(b, StatusCode::kDataLoss, "array 'arr' claims 1073741824 int32 elements");
}

TEST(GgufValidation, StringArrayCountAbsurd) {
  // 2^61 strings would need 2^64 bytes of length prefixes alone.
  Bytes b;
  b.Header(0, 1).Str("toks").U32(9).U32(8).U64(uint64_t{1} << 61).Str("a");
  ExpectError(b, StatusCode::kDataLoss, "array 'toks' claims");
}

TEST(GgufValidation, KvCountAbsurd) {
  Bytes b;
  b.Header(0, uint64_t{1} << 40).KvU32("a", 1);
  ExpectError(b, StatusCode::kDataLoss, "metadata count 1099511627776 is impossible");
}

TEST(GgufValidation, TensorCountAbsurd) {
  Bytes b;
  b.Header(uint64_t{1} << 60, 0).TensorInfo("w", {4}, kF32, 0);
  ExpectError(b, StatusCode::kDataLoss, "tensor count 1152921504606846976 is impossible");
}

TEST(GgufValidation, TensorDataPastEnd) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {8}, kF32, 0).PadTo(32).Fill(16);  // needs 32
  ExpectError(b, StatusCode::kDataLoss, "tensor 'w' data [0, +32) extends past the end");
}

TEST(GgufValidation, TensorOffsetPastEnd) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {4}, kF32, uint64_t{1} << 62).PadTo(32).Fill(16);
  ExpectError(b, StatusCode::kDataLoss, "extends past the end");
}

TEST(GgufValidation, DataSectionStartPastEnd) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {0}, kF32, 0);  // no padding after the header
  ASSERT_NE(b.size() % 32, 0u);
  ExpectError(b, StatusCode::kDataLoss, "tensor data should start at byte");
}

TEST(GgufValidation, MisalignedTensorOffset) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {4}, kF32, 8).PadTo(32).Fill(64);
  ExpectError(b, StatusCode::kDataLoss,
              "tensor 'w' data offset 8 is not a multiple of the "
              "alignment 32");
}

TEST(GgufValidation, DuplicateTensorName) {
  Bytes b;
  b.Header(2, 0).TensorInfo("w", {4}, kF32, 0).TensorInfo("w", {4}, kF32, 32);
  b.PadTo(32).Fill(64);
  ExpectError(b, StatusCode::kDataLoss, "duplicate tensor name 'w'");
}

TEST(GgufValidation, DuplicateKey) {
  Bytes b;
  b.Header(0, 2).KvU32("a.b", 1).KvU32("a.b", 2);
  ExpectError(b, StatusCode::kDataLoss, "duplicate metadata key 'a.b'");
}

TEST(GgufValidation, EmptyKey) {
  Bytes b;
  b.Header(0, 1).KvU32("", 1);
  ExpectError(b, StatusCode::kDataLoss, "empty key");
}

TEST(GgufValidation, UnknownValueType) {
  Bytes b;
  b.Header(0, 1).Str("k").U32(13).U64(0);
  ExpectError(b, StatusCode::kDataLoss, "key 'k' has unknown value type 13");
}

TEST(GgufValidation, UnknownArrayElementType) {
  Bytes b;
  b.Header(0, 1).Str("k").U32(9).U32(77).U64(0);
  ExpectError(b, StatusCode::kDataLoss, "array 'k' has unknown element type 77");
}

TEST(GgufValidation, NestedArrayRejected) {
  Bytes b;
  b.Header(0, 1).Str("k").U32(9).U32(9).U64(1).U32(4).U64(1).U32(5);
  ExpectError(b, StatusCode::kUnimplemented, "nested arrays are not supported");
}

TEST(GgufValidation, BoolOutOfRange) {
  Bytes b;
  b.Header(0, 1).Str("flag").U32(7).U8(2);
  ExpectError(b, StatusCode::kDataLoss, "byte value 2, expected 0 or 1");
}

TEST(GgufValidation, UnknownTensorType) {
  for (uint32_t t : {4u, 31u, 36u, 1000u}) {
    Bytes b;
    b.Header(1, 0).TensorInfo("w", {4}, t, 0).PadTo(32).Fill(64);
    ExpectError(b, StatusCode::kUnimplemented,
                "tensor 'w' has unknown ggml type id " + std::to_string(t));
  }
}

TEST(GgufValidation, ZeroDims) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {}, kF32, 0).PadTo(32).Fill(32);
  ExpectError(b, StatusCode::kDataLoss, "tensor 'w' has 0 dimensions, expected 1..4");
}

TEST(GgufValidation, FiveDims) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {1, 1, 1, 1, 1}, kF32, 0).PadTo(32).Fill(32);
  ExpectError(b, StatusCode::kDataLoss, "tensor 'w' has 5 dimensions, expected 1..4");
}

TEST(GgufValidation, NegativeDimension) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {4, static_cast<uint64_t>(-2)}, kF32, 0).PadTo(32).Fill(32);
  ExpectError(b, StatusCode::kDataLoss, "dimension 1 is 18446744073709551614");
}

TEST(GgufValidation, ElementCountOverflow) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {uint64_t{1} << 32, uint64_t{1} << 32}, kF32, 0);
  b.PadTo(32).Fill(32);
  ExpectError(b, StatusCode::kDataLoss, "tensor 'w' element count overflows int64");
}

TEST(GgufValidation, ByteSizeOverflow) {
  // 2^62 f32 elements fit in int64, their 2^64 bytes do not.
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {uint64_t{1} << 31, uint64_t{1} << 31}, kF32, 0);
  b.PadTo(32).Fill(32);
  ExpectError(b, StatusCode::kDataLoss, "tensor 'w' byte size overflows int64");
}

TEST(GgufValidation, RowByteSizeOverflowEvenWithZeroElements) {
  Bytes b;
  b.Header(1, 0).TensorInfo("w", {uint64_t{1} << 62, 0}, kF32, 0).PadTo(32).Fill(32);
  ExpectError(b, StatusCode::kDataLoss, "tensor 'w' byte size overflows int64");
}

TEST(GgufValidation, Ne0NotMultipleOfBlock) {
  Bytes b;
  b.Header(1, 0).TensorInfo("q", {16, 2}, kQ4_0, 0).PadTo(32).Fill(64);
  ExpectError(b, StatusCode::kDataLoss,
              "tensor 'q' of type q4_0 has ne0 = 16, not a multiple of the block size 32");
}

TEST(GgufValidation, OverlappingTensors) {
  Bytes b;
  // a: 64 bytes at 0; b: 32 bytes at 32, inside a.
  b.Header(2, 0).TensorInfo("a", {16}, kF32, 0).TensorInfo("b", {8}, kF32, 32);
  b.PadTo(32).Fill(64);
  ExpectError(b, StatusCode::kDataLoss,
              "tensor 'b' data [32, 64) overlaps tensor 'a' data [0, 64)");
}

TEST(GgufValidation, OutOfOrderButDisjointTensorsAccepted) {
  Bytes b;
  b.Header(2, 0).TensorInfo("a", {8}, kF32, 32).TensorInfo("b", {8}, kF32, 0);
  b.PadTo(32).Fill(32, '\x01').Fill(32, '\x02');
  StatusOr<std::unique_ptr<File>> f = File::FromBytes(b.str());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->tensors()[0].data[0], 2);
  EXPECT_EQ((*f)->tensors()[1].data[0], 1);
}

TEST(GgufValidation, AlignmentNotPowerOfTwo) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Bytes b;
    b.Header(0, 1).KvU32("general.alignment", a);
    ExpectError(b, StatusCode::kDataLoss,
                "general.alignment is " + std::to_string(a) + ", expected a non-zero power of two");
  }
}

TEST(GgufValidation, AlignmentWrongType) {
  Bytes b;
  b.Header(0, 1).Str("general.alignment").U32(10).U64(64);
  ExpectError(b, StatusCode::kDataLoss, "general.alignment must be a uint32, found uint64");
}

TEST(GgufValidation, CustomAlignmentHonoured) {
  Bytes b;
  b.Header(1, 1).KvU32("general.alignment", 64).TensorInfo("w", {4}, kF32, 0);
  b.PadTo(64).Fill(16);
  StatusOr<std::unique_ptr<File>> f = File::FromBytes(b.str());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  // With alignment 64 an offset of 32 is misaligned.
  Bytes c;
  c.Header(1, 1).KvU32("general.alignment", 64).TensorInfo("w", {4}, kF32, 32);
  c.PadTo(64).Fill(64);
  ExpectError(c, StatusCode::kDataLoss, "not a multiple of the alignment 64");
}

TEST(GgufValidation, OpenMissingFileIsNotFound) {
  StatusOr<std::unique_ptr<File>> f = File::Open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/dir/model.gguf"), std::string::npos);
}

TEST(GgufValidation, OpenDirectoryAndEmptyFileFail) {
  EXPECT_FALSE(File::Open("/tmp").ok());
  const std::string path = ::testing::TempDir() + "/gguf_empty_test.gguf";
  std::FILE* fp = std::fopen(path.c_str(), "wb");
  ASSERT_NE(fp, nullptr);
  std::fclose(fp);
  StatusOr<std::unique_ptr<File>> f = File::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(f.status().message().find("empty"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace vlserve::gguf
