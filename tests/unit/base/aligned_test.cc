#include "base/aligned.h"

#include <cstdint>

#include <gtest/gtest.h>

namespace vlserve {
namespace {

TEST(AlignedBufferTest, NormalBuffersAre64ByteAligned) {
  for (size_t n : {size_t{1}, size_t{63}, size_t{4097}, size_t{3} << 20}) {
    AlignedBuffer<uint8_t> b(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kAlignment, 0u) << n;
    EXPECT_EQ(b.size(), n);
  }
}

// Huge-page buffers of 2 MiB or more start on a 2 MiB boundary (so the kernel can back
// them with huge pages where THP allows; whether it does is the kernel's choice), keep
// every byte usable, and keep smaller ones on the normal path.
TEST(AlignedBufferTest, HugePageBuffersAlignTo2MiBAndHoldTheirBytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  AlignedBuffer<uint32_t> big;
  const size_t count = (5 * kHuge + 12345) / sizeof(uint32_t);  // not a multiple of 2 MiB
  big.Resize(count, Pages::kHuge);
  ASSERT_NE(big.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % kHuge, 0u);
  for (size_t i = 0; i < count; ++i) big[i] = static_cast<uint32_t>(i * 2654435761u);
  size_t bad = 0;
  for (size_t i = 0; i < count; ++i) bad += big[i] != static_cast<uint32_t>(i * 2654435761u);
  EXPECT_EQ(bad, 0u);

  AlignedBuffer<uint8_t> small;
  small.Resize(1000, Pages::kHuge);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % kAlignment, 0u);
  EXPECT_EQ(small.size(), 1000u);
}

}  // namespace
}  // namespace vlserve
