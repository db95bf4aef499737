// This machine's peak, as Google Benchmark figures (bench/peak.h has the loops and what they
// count): the FMA throughput at 8 lanes (ymm) and 16 lanes (zmm, skipped without AVX-512F) in
// GFLOP/s, and the triad a[i] = b[i] + s * c[i] over 3 x 128 MiB in GB/s (3 streams; the
// write-allocate read is not counted), each on 1 and 2 threads. docs/benchmarks.md, issue 30.
#include <benchmark/benchmark.h>

#include "benchmark_main.h"
#include "peak.h"

namespace {

using namespace miniinfer::bench;

constexpr long kIters = 1'000'000;  // per thread per iteration: about 2 ms at 8 lanes

void BM_fma(benchmark::State& state) {
  const int lanes = static_cast<int>(state.range(0));
  if (lanes == 16 && !has_avx512f()) {
    state.SkipWithError("this CPU has no AVX-512F");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(lanes == 16 ? fma_chains_16(kIters) : fma_chains_8(kIters));
  // Summed over the threads and divided by the wall time (UseRealTime): the machine's rate.
  state.counters["GFLOP/s"] = benchmark::Counter(fma_flops(lanes, kIters, 1) * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// One set of arrays for every thread of every run, each thread on its own contiguous slice;
// made (and every page touched) before the threads' timed loops start together.
TriadArrays& arrays() {
  static TriadArrays t(kTriadFloats);
  return t;
}

void BM_triad(benchmark::State& state) {
  TriadArrays& t = arrays();
  const size_t n = t.a.size(), i = static_cast<size_t>(state.thread_index()), k = static_cast<size_t>(state.threads());
  const size_t begin = n * i / k, end = n * (i + 1) / k;
  for (auto _ : state) {
    triad(t, 3.0f, begin, end);
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(triad_bytes(end - begin) * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK(BM_fma)->ArgName("lanes")->Arg(8)->Arg(16)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_triad)->Threads(1)->Threads(2)->UseRealTime()->Unit(benchmark::kMillisecond);
int main(int argc, char** argv) { return miniinfer::bench::benchmark_main(argc, argv); }
