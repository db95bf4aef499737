// This machine's physical limits, measured, so a benchmark can say how far from them it runs:
// the FMA throughput (GFLOP/s) at 8 lanes (AVX2 ymm) and 16 lanes (AVX-512 zmm, where the CPU
// has AVX-512F), and a STREAM-style triad a[i] = b[i] + s * c[i] (GB/s) over arrays far larger
// than L3. Shared by bench/peak.cpp (Google Benchmark) and bench_scale (which measures the peak
// in the same run as the figures it divides by it). Intrinsics, no -ffast-math.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <ctime>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "engine/kernels.h"  // CacheLineAllocator

namespace miniinfer::bench {

// Independent FMA chains per thread: an FMA's latency (4 cycles on Zen 4/5, Intel) times the
// two FMA pipes is 8 chains in flight; 12 leaves a margin and, with the two operands, fits the
// 16 ymm registers of AVX2 (the zmm loop could use more; 12 is already past the latency bound).
inline constexpr int kFmaChains = 12;
inline constexpr double kFmaChainFlops = 2.0 * kFmaChains;  // per lane per iteration

// acc = acc * m + a converges to a / (1 - m) (no overflow, no subnormals) whatever `iters` is.
// m and a are read through volatile, or GCC folds the whole loop at compile time; the chains'
// sum is returned so that it cannot drop them either.
inline volatile float g_fma_m = 0.999999f, g_fma_a = 1e-6f;
inline float fma_chains_8(long iters) {
  const __m256 m = _mm256_set1_ps(g_fma_m), a = _mm256_set1_ps(g_fma_a);
  __m256 acc[kFmaChains];
  for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
  }
  __m256 s = acc[0];
  for (int c = 1; c < kFmaChains; ++c) s = _mm256_add_ps(s, acc[c]);
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) inline float fma_chains_16(long iters) {
  const __m512 m = _mm512_set1_ps(g_fma_m), a = _mm512_set1_ps(g_fma_a);
  __m512 acc[kFmaChains];
  for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
  }
  __m512 s = acc[0];
  for (int c = 1; c < kFmaChains; ++c) s = _mm512_add_ps(s, acc[c]);
  alignas(64) float lane[16];  // not _mm512_reduce_add_ps: GCC 12 warns inside it (-Wuninitialized)
  _mm512_store_ps(lane, s);
  return lane[0];
}

inline bool has_avx512f() { return __builtin_cpu_supports("avx512f"); }

// Flops of fma_chains_<lanes>(iters), run by `threads` threads at once.
inline double fma_flops(int lanes, long iters, int threads) { return kFmaChainFlops * lanes * iters * threads; }

// Floats per triad array: 3 x 128 MiB, four times this machine's 32 MiB L3 each.
inline constexpr size_t kTriadFloats = size_t{32} << 20;
// Bytes a triad of n floats moves as STREAM counts it: two reads and one write. The
// write-allocate read of a[] (the line fetched before it is written, a fourth stream with
// ordinary stores) is not counted, so the real traffic is 4/3 of this.
inline double triad_bytes(size_t n) { return 3.0 * sizeof(float) * static_cast<double>(n); }

struct TriadArrays {
  std::vector<float, kernels::CacheLineAllocator<float>> a, b, c;
  explicit TriadArrays(size_t n) : a(n, 0.0f), b(n, 1.0f), c(n, 2.0f) {}
};

// a[i] = b[i] + s * c[i] over [begin, end): a multiply and an add (no contraction in this build),
// vectorized by the compiler; memory-bound at any width.
inline void triad(TriadArrays& t, float s, size_t begin, size_t end) {
  float* __restrict a = t.a.data();
  const float* __restrict b = t.b.data();
  const float* __restrict c = t.c.data();
  for (size_t i = begin; i < end; ++i) a[i] = b[i] + s * c[i];
}

// Runs body(thread_index) on `threads` threads at once (the caller's is index 0) and returns
// each thread's CPU time in seconds: the time it had a core, so a rate over it is the
// machine's even when other processes share the cores (wall time would count their turns).
template <typename F>
std::vector<double> cpu_seconds_on_threads(int threads, F&& body) {
  std::vector<double> cpu(static_cast<size_t>(threads));
  const auto timed = [&](int t) {
    timespec a{}, b{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    body(t);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    cpu[static_cast<size_t>(t)] = static_cast<double>(b.tv_sec - a.tv_sec) + 1e-9 * static_cast<double>(b.tv_nsec - a.tv_nsec);
  };
  std::vector<std::thread> others;
  for (int t = 1; t < threads; ++t) others.emplace_back(timed, t);
  timed(0);
  for (std::thread& th : others) th.join();
  return cpu;
}

// The best of `reps` runs, as a rate over CPU time: GFLOP/s of the FMA loop at `lanes` (8 or
// 16) on `threads` threads, each running its own chains for `iters` iterations.
inline double peak_gflops(int lanes, int threads, long iters = 20'000'000, int reps = 3) {
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    double rate = 0;
    for (double s : cpu_seconds_on_threads(threads, [&](int) {
           sink = lanes == 16 ? fma_chains_16(iters) : fma_chains_8(iters);
         }))
      rate += fma_flops(lanes, iters, 1) / s / 1e9;
    best = std::max(best, rate);
  }
  return best;
}

// The best of `reps` triads over `t` (split in `threads` contiguous slices), in GB/s over CPU
// time as triad_bytes counts them.
inline double peak_triad_gbs(TriadArrays& t, int threads, int reps = 5) {
  const size_t n = t.a.size();
  const auto begin = [&](int i) { return n * static_cast<size_t>(i) / static_cast<size_t>(threads); };
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const std::vector<double> cpu =
        cpu_seconds_on_threads(threads, [&](int i) { triad(t, 3.0f, begin(i), begin(i + 1)); });
    double rate = 0;
    for (int i = 0; i < threads; ++i) rate += triad_bytes(begin(i + 1) - begin(i)) / cpu[static_cast<size_t>(i)] / 1e9;
    best = std::max(best, rate);
  }
  return best;
}

}  // namespace miniinfer::bench
