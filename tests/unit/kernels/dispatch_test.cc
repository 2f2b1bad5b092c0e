#include <gtest/gtest.h>

#include "kernels/dispatch.h"
#include "kernels/kernels.h"

namespace vlserve::kernels {
namespace {

TEST(DispatchTest, NamesAndAvailability) {
  EXPECT_EQ(IsaName(Isa::kScalar), "scalar");
  EXPECT_EQ(IsaName(Isa::kAvx2), "avx2");
  EXPECT_EQ(IsaName(Isa::kAvx512), "avx512");
  EXPECT_TRUE(IsaAvailable(Isa::kScalar));
  // AVX-512 (as vlserve defines it) implies AVX2.
  if (IsaAvailable(Isa::kAvx512)) {
    EXPECT_TRUE(IsaAvailable(Isa::kAvx2));
  }
  EXPECT_TRUE(IsaAvailable(ActiveIsa()));
}

TEST(DispatchTest, ForceIsaSwitchesAndRestores) {
  const Isa original = ActiveIsa();
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaAvailable(isa)) continue;
    ForceIsa(isa);
    EXPECT_EQ(ActiveIsa(), isa);
    EXPECT_EQ(internal::CurrentIsa(), isa);
  }
  ForceIsa(original);
  EXPECT_EQ(ActiveIsa(), original);
}

TEST(DispatchTest, IsaSettingParsing) {
  const Isa best = IsaAvailable(Isa::kAvx512) ? Isa::kAvx512
                   : IsaAvailable(Isa::kAvx2) ? Isa::kAvx2
                                              : Isa::kScalar;
  EXPECT_EQ(internal::BestAvailableIsa(), best);
  EXPECT_EQ(internal::ResolveIsaSetting(nullptr), best);
  EXPECT_EQ(internal::ResolveIsaSetting(""), best);
  EXPECT_EQ(internal::ResolveIsaSetting("scalar"), Isa::kScalar);
  EXPECT_EQ(internal::ResolveIsaSetting("sse9"), best);      // unknown: warn, fall back
  EXPECT_EQ(internal::ResolveIsaSetting("AVX512"), best);     // names are lower case
  EXPECT_EQ(internal::ResolveIsaSetting("avx2"), IsaAvailable(Isa::kAvx2) ? Isa::kAvx2 : best);
  EXPECT_EQ(internal::ResolveIsaSetting("avx512"),
            IsaAvailable(Isa::kAvx512) ? Isa::kAvx512 : best);
}

}  // namespace
}  // namespace vlserve::kernels
