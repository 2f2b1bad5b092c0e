// Residency of the weight files: what the loaders release after copying is never brought
// back by the start-up prefault (gguf::File::PagesInUse / Prefault), checked against the
// kernel's own page tables (/proc/self/pagemap), not against the code's bookkeeping.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "base/aligned.h"
#include "gguf/gguf.h"
#include "models/registry.h"
#include "models/test_model.h"
#include "models/text_model.h"
#include "models/vision_model.h"

namespace vlserve::models {
namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));
// A read fault maps the neighbouring cached pages too (the kernel's fault-around, 64 KiB by
// default), so pages this close to data that was read after a release may be mapped again
// without anyone reading them. Only pages farther inside a released tensor are checked.
constexpr size_t kMargin = size_t{256} << 10;

// Whether the page at `p` is mapped into this process (pagemap bit 63), or -1 when
// /proc/self/pagemap cannot be read.
int PagePresent(const void* p) {
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  uint64_t entry = 0;
  const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(p) / kPage * sizeof(entry));
  const ssize_t n = ::pread(fd, &entry, sizeof(entry), at);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof(entry))) return -1;
  return static_cast<int>(entry >> 63);
}

bool Overlaps(const std::vector<gguf::PageRange>& ranges, const uint8_t* begin,
              const uint8_t* end) {
  for (const gguf::PageRange& r : ranges) {
    if (r.data < end && begin < r.data + r.bytes) return true;
  }
  return false;
}

bool Covers(const std::vector<gguf::PageRange>& ranges, const uint8_t* begin, const uint8_t* end) {
  for (const uint8_t* p = begin; p < end; p += kPage) {
    if (!Overlaps(ranges, p, p + 1)) return false;
  }
  return Overlaps(ranges, end - 1, end);
}

// The pages of `t` at least kMargin from both of its ends.
std::pair<const uint8_t*, const uint8_t*> Interior(const gguf::TensorInfo& t) {
  const uint8_t* begin = t.data + kMargin;
  const uint8_t* end = t.data + t.num_bytes - kMargin;
  return {begin, end > begin ? end : begin};
}

std::string TempDir(const std::string& name) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  return dir;
}

// Every tensor that is a matrix is released after its copy and stays unmapped after the
// prefault; every other tensor (the norms, read into vectors at load) is prefaulted.
void ExpectMatricesReleased(const gguf::File& file, const std::vector<std::string>& kept) {
  const std::vector<gguf::PageRange> in_use = file.PagesInUse();
  ASSERT_FALSE(in_use.empty());
  file.Prefault();
  ASSERT_NE(PagePresent(in_use.front().data), -1) << "/proc/self/pagemap is not readable";
  int checked = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    const bool is_kept = std::find(kept.begin(), kept.end(), t.name) != kept.end();
    if (t.shape.size() < 2 || is_kept) {
      EXPECT_TRUE(Covers(in_use, t.data, t.data + t.num_bytes)) << t.name << " is not prefaulted";
      for (const uint8_t* p = t.data; p < t.data + t.num_bytes; p += kPage) {
        EXPECT_EQ(PagePresent(p), 1) << t.name << " page " << (p - t.data) / kPage;
      }
      continue;
    }
    // Whole pages inside the matrix are released: none of them is prefaulted.
    const uint8_t* first = t.data + (kPage - reinterpret_cast<uintptr_t>(t.data) % kPage) % kPage;
    EXPECT_FALSE(Overlaps(in_use, first, t.data + t.num_bytes - kPage)) << t.name;
    const auto [begin, end] = Interior(t);
    for (const uint8_t* p = begin; p < end; p += kPage) {
      ASSERT_EQ(PagePresent(p), 0)
          << t.name << " page " << (p - t.data) / kPage << " was faulted back in after its release";
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);  // the dims below leave several hundred interior pages
}

// PagesInUse against a page-set model of it: every page any tensor touches, minus the
// pages wholly inside a released tensor (neighbours share the edge pages).
TEST(ResidencyTest, PagesInUseIsTensorPagesMinusReleased) {
  gguf::Writer w;
  const std::vector<int64_t> sizes = {3000, 5000, 100, 2500};  // floats; 32-byte aligned
  std::vector<float> values(5000, 1.5f);
  for (size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_TRUE(w.AddTensor("t" + std::to_string(i), DType::kF32, {sizes[i]}, values.data(),
                            static_cast<size_t>(sizes[i]) * 4)
                    .ok());
  }
  const std::string dir = TempDir("vlserve-residency-pages");
  ASSERT_TRUE(w.WriteFile(dir + "/t.gguf").ok());
  auto file = gguf::File::Open(dir + "/t.gguf");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::filesystem::remove_all(dir);
  const uint8_t* base =
      (*file)->tensors()[0].data - (*file)->data_offset() - (*file)->tensors()[0].offset;
  std::set<size_t> expected, released;
  for (const gguf::TensorInfo& t : (*file)->tensors()) {
    const size_t begin = t.data - base, end = begin + t.num_bytes;
    for (size_t p = begin / kPage; p <= (end - 1) / kPage; ++p) expected.insert(p);
    if (t.name == "t1" || t.name == "t3") {
      for (size_t p = begin / kPage; p <= (end - 1) / kPage; ++p) {
        if (p * kPage >= begin && (p + 1) * kPage <= end) released.insert(p);
      }
      (*file)->ReleasePages(t.data, t.num_bytes);
    }
  }
  ASSERT_FALSE(released.empty());
  for (size_t p : released) expected.erase(p);
  std::set<size_t> got;
  for (const gguf::PageRange& r : (*file)->PagesInUse()) {
    ASSERT_EQ((r.data - base) % kPage, 0u);
    ASSERT_EQ(r.bytes % kPage, 0u);
    for (size_t p = 0; p < r.bytes / kPage; ++p) {
      EXPECT_TRUE(got.insert((r.data - base) / kPage + p).second) << "ranges overlap";
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ((*file)->Prefault(), static_cast<int64_t>(expected.size() * kPage));
  // Nothing is mapped for an in-memory file: nothing to keep or prefault.
  auto mem = gguf::File::FromBytes(w.WriteToString());
  ASSERT_TRUE(mem.ok());
  EXPECT_TRUE((*mem)->PagesInUse().empty());
}

TEST(ResidencyTest, TextPrefaultSkipsCopiedMatrices) {
  if (!HugePagesEnabled()) GTEST_SKIP() << "VLSERVE_HUGE_PAGES=0: matrices are read in place";
  TestModelOptions options;  // llama: output tied to token_embd
  options.hidden = 512;
  options.heads = 8;
  options.kv_heads = 8;
  options.ffn = 2048;
  options.layers = 1;
  options.vocab = 1024;
  options.type = DType::kQ8_0;
  const std::string dir = TempDir("vlserve-residency-text");
  ASSERT_TRUE(WriteTestModel(options, dir).ok());
  auto model = LoadTextModel(dir + "/text.gguf");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  // With huge pages on, every matrix decode reads is copied (token_embd too, through the
  // tied output), so only the norms are still read from the file.
  ExpectMatricesReleased((*model)->file(), {});
  // The copies are what the forward pass reads: about one Q8_0 copy per matrix, plus the
  // int8 panels on AVX-512.
  int64_t matrix_bytes = 0;
  for (const gguf::TensorInfo& t : (*model)->file().tensors()) {
    if (t.shape.size() == 2) matrix_bytes += t.num_bytes;
  }
  EXPECT_GE((*model)->copy_bytes(), matrix_bytes);
  model->reset();
  std::filesystem::remove_all(dir);
}

TEST(ResidencyTest, VisionPrefaultSkipsConvertedMatrices) {
  VisionTestOptions options;  // idefics3
  options.hidden = 256;
  options.heads = 4;
  options.ffn = 1024;
  options.layers = 1;
  options.text_hidden = 64;
  const std::string dir = TempDir("vlserve-residency-vision");
  ASSERT_TRUE(WriteTestMmproj(options, dir).ok());
  VisionLoadOptions load;
  load.compute = VisionComputeType::kBf16;  // every F32 tower matrix becomes a BF16 copy
  auto model = VisionModel::Load(dir + "/mmproj.gguf", load);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  // The projector's matrix is read from the file (not converted); the position table is
  // read into a vector at load, like the norms, and its pages are not released.
  std::vector<std::string> kept = {"v.position_embd.weight"};
  for (const gguf::TensorInfo& t : (*model)->file().tensors()) {
    if (t.name.rfind("mm.", 0) == 0) kept.push_back(t.name);
  }
  ASSERT_GE(kept.size(), 2u);
  ExpectMatricesReleased((*model)->file(), kept);
  model->reset();
  std::filesystem::remove_all(dir);
}

// The KV pool is reserved, not filled: a block's pages become resident when it is first
// written, and an unwritten block still reads as zeros.
TEST(ResidencyTest, KvPoolPagesResidentOnceWritten) {
  TestModelOptions options;
  options.hidden = 256;
  options.heads = 4;
  options.kv_heads = 4;
  auto writer = BuildTestModel(options);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  auto file = gguf::File::FromBytes(writer->WriteToString());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto model = LoadTextModel(std::move(*file));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  KvBuffer kv((*model)->config(), 256, DType::kF16);  // 256 blocks x 8 KiB per layer and K/V
  ASSERT_GT(kv.bytes(), 100 * kPage);
  ASSERT_NE(PagePresent(kv.KBlock(0, 0)), -1) << "/proc/self/pagemap is not readable";
  EXPECT_EQ(PagePresent(kv.KBlock(0, 0)), 0);
  EXPECT_EQ(PagePresent(kv.VBlock(1, 200)), 0);
  EXPECT_EQ(kv.resident_bytes(), 0u);
  std::vector<float> row(256, 1.0f);
  for (int64_t slot = 0; slot < kKvBlockSize; ++slot) {
    kv.Write(1, 200, slot, row.data(), row.data());
  }
  EXPECT_EQ(PagePresent(kv.KBlock(1, 200)), 1);
  EXPECT_EQ(PagePresent(kv.VBlock(1, 200)), 1);
  EXPECT_EQ(PagePresent(kv.KBlock(0, 0)), 0);
  EXPECT_EQ(PagePresent(kv.KBlock(1, 100)), 0);
  // One block of K and one of V: 2 x 16 tokens x 256 values x 2 bytes, on whole pages.
  EXPECT_EQ(kv.resident_bytes(), 2 * ((16 * 256 * 2 + kPage - 1) / kPage) * kPage);
  const auto* unwritten = static_cast<const uint8_t*>(kv.KBlock(0, 7));
  EXPECT_TRUE(std::all_of(unwritten, unwritten + 16 * 256 * 2, [](uint8_t b) { return b == 0; }));
}

}  // namespace
}  // namespace vlserve::models
