// Row/token tiling shared by the SIMD MatMul kernels (header-only, ISA-neutral).
#pragma once

#include <algorithm>
#include <cstdint>

namespace vlserve::kernels::internal {

// Tokens per tile so that one tile of activations (act_bytes_per_token each) stays in
// L2 while every weight row of the chunk streams past it once: weight bytes are read
// from memory once per tile of tokens, not once per token.
inline int64_t TokenTile(int64_t act_bytes_per_token, int64_t t_step) {
  int64_t tt = (256 * 1024) / std::max<int64_t>(act_bytes_per_token, 1);
  tt = std::clamp<int64_t>(tt, t_step, 64);
  return tt / t_step * t_step;
}

// Calls tile.template Run<R, T>(row, token) over rows [r0, r1) × tokens [0, n), using
// R×T register tiles where they fit and 1-wide tiles at the edges. Tile kernels compute
// each (row, token) dot product identically whatever R and T are.
template <int R, int T, class Tile>
inline void DriveTiles(const Tile& tile, int64_t r0, int64_t r1, int64_t n, int64_t tt) {
  for (int64_t t0 = 0; t0 < n; t0 += tt) {
    const int64_t t1 = std::min(n, t0 + tt);
    int64_t r = r0;
    for (; r + R <= r1; r += R) {
      int64_t t = t0;
      for (; t + T <= t1; t += T) tile.template Run<R, T>(r, t);
      for (; t < t1; ++t) tile.template Run<R, 1>(r, t);
    }
    for (; r < r1; ++r) {
      int64_t t = t0;
      for (; t + T <= t1; t += T) tile.template Run<1, T>(r, t);
      for (; t < t1; ++t) tile.template Run<1, 1>(r, t);
    }
  }
}

}  // namespace vlserve::kernels::internal
