// Machine limits for `vlserve bench-kernels`: streaming read bandwidth and FMA peak with
// AVX-512 (the widest loads / FMAs this build has). Only called when AVX-512 is active.
#include <immintrin.h>

#include <cstdint>

namespace vlserve::kernels::internal {

// Reads [p, p + bytes) with 4 independent zmm load streams; returns a value that
// depends on every byte so the loads cannot be removed.
uint64_t StreamReadAvx512(const uint8_t* p, int64_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 256 <= bytes; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  const __m512i x = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(x));
}

// The same bytes read as 8 interleaved streams (8 equal segments, one 64-byte line of
// each per step) with software prefetches (into L2) 16 lines ahead in each — the access
// pattern of the matvec kernels (8 weight rows side by side). On this VM it reads far
// faster than one stream behind the hardware prefetcher, and the measured limit must be
// the best read the machine does, or kernels read > 100% of it.
uint64_t StreamReadPrefetchAvx512(const uint8_t* p, int64_t bytes) {
  constexpr int kStreams = 8;
  constexpr int64_t kAhead = 16 * 64;
  const int64_t seg = bytes / kStreams / 64 * 64;
  __m512i acc[kStreams];
  for (int s = 0; s < kStreams; ++s) acc[s] = _mm512_setzero_si512();
  for (int64_t i = 0; i < seg; i += 64) {
#pragma GCC unroll 8
    for (int s = 0; s < kStreams; ++s) {
      const uint8_t* q = p + s * seg + i;
      _mm_prefetch(reinterpret_cast<const char*>(q) + kAhead, _MM_HINT_T1);
      acc[s] = _mm512_xor_si512(acc[s], _mm512_loadu_si512(q));
    }
  }
  __m512i x = acc[0];
  for (int s = 1; s < kStreams; ++s) x = _mm512_xor_si512(x, acc[s]);
  uint64_t tail = 0;  // bytes past the 8 segments
  for (int64_t i = kStreams * seg; i < bytes; ++i) tail += p[i];
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(x)) + tail;
}

// 12 independent FMA chains of 16 floats for `iters` iterations: 384 flops / iteration.
float FmaLoopAvx512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

}  // namespace vlserve::kernels::internal
