// The invariant matmul against Eigen's product, single-threaded, at the model's shapes (decode
// M=1, prefill M=16..512 with the projection, MLP and head shapes) and square sizes up to 1024;
// and the invariant matmul alone on 1 and 2 threads at GPT-2 small's shapes (BM_invariant_threads).
// Both compute out(M, N) = X(M, K) * W^T with W in the file's (N, K) layout plus a bias.
// docs/benchmarks.md has the commands and the measured table.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include "base/rng.h"
#include "base/thread_pool.h"
#include "engine/kernels.h"
#include "benchmark_main.h"

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::vector<float> random_floats(size_t n, uint64_t seed) {
  miniinfer::Rng rng(seed);
  std::vector<float> x(n);
  for (float& v : x) v = rng.normal();
  return x;
}

struct Problem {
  int M, K, N;
  std::vector<float> x, w, b;
  miniinfer::kernels::PackedWeight packed;
  std::vector<float> out;
  explicit Problem(const benchmark::State& state)
      : M(static_cast<int>(state.range(0))), K(static_cast<int>(state.range(1))), N(static_cast<int>(state.range(2))),
        x(random_floats(static_cast<size_t>(M) * K, 1)), w(random_floats(static_cast<size_t>(N) * K, 2)),
        b(random_floats(static_cast<size_t>(N), 3)), packed(miniinfer::kernels::pack_weight(w, K, N)),
        out(static_cast<size_t>(M) * N) {}
  void report(benchmark::State& state) const {
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * K * N * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  }
};

void BM_invariant(benchmark::State& state) {
  Problem p(state);
  for (auto _ : state) {
    miniinfer::kernels::matmul_forward(p.out.data(), p.x.data(), p.packed.data(), p.b.data(), p.M, p.K, p.N);
    benchmark::DoNotOptimize(p.out.data());
    benchmark::ClobberMemory();
  }
  p.report(state);
}

// The invariant matmul on a pool of `threads` (arg 3), at GPT-2 small's shapes: the pool shares
// column groups (or blocks of rows), never k, so every thread count gives the one-thread bytes.
// Real time; the CPU column is every thread's, so its ratio across counts is the overhead.
void BM_invariant_threads(benchmark::State& state) {
  Problem p(state);
  miniinfer::ThreadPool pool(static_cast<int>(state.range(3)));
  for (auto _ : state) {
    miniinfer::kernels::matmul_forward(p.out.data(), p.x.data(), p.packed.data(), p.b.data(), p.M, p.K, p.N, &pool);
    benchmark::DoNotOptimize(p.out.data());
    benchmark::ClobberMemory();
  }
  p.report(state);
}

// The same kernel held to its 8-lane tiles (AVX2), the width Eigen is compiled for here: on a
// CPU with AVX-512F, BM_invariant runs the 16-lane tiles. The bytes are the same.
void BM_invariant_8lanes(benchmark::State& state) {
  miniinfer::kernels::set_matmul_width(8);
  BM_invariant(state);
  miniinfer::kernels::set_matmul_width(0);
}

void BM_eigen(benchmark::State& state) {
  Eigen::setNbThreads(1);
  Problem p(state);
  Eigen::Map<const RowMatrix> X(p.x.data(), p.M, p.K), W(p.w.data(), p.N, p.K);
  Eigen::Map<const Eigen::RowVectorXf> B(p.b.data(), p.N);
  Eigen::Map<RowMatrix> Y(p.out.data(), p.M, p.N);
  for (auto _ : state) {
    Y.noalias() = X * W.transpose();
    Y.rowwise() += B;
    benchmark::DoNotOptimize(p.out.data());
    benchmark::ClobberMemory();
  }
  p.report(state);
}

void shapes(benchmark::internal::Benchmark* b) {
  // The shipped model: D=64, F=256, V~900 (900 exercises the column tail: 14 groups of 64 and 4).
  for (int M : {1, 4, 16, 64, 512})
    for (auto [K, N] : {std::pair{64, 64}, {64, 256}, {256, 64}, {64, 900}}) b->Args({M, K, N});
  for (int n : {128, 256, 512, 1024}) b->Args({n, n, n});  // 64^3 is a model shape above
  b->Args({1, 1024, 1024});
  b->Args({1024, 64, 1024});
  b->Args({1024, 1024, 64});
  b->ArgNames({"M", "K", "N"});
}

// GPT-2 small: K = 768 into the projections (768), the fused QKV width (2304), the MLP (3072)
// and the head (50257); then the MLP's way back (K 3072, N 768). On 1 and 2 threads.
void gpt2_shapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int M : {1, 8, 64, 512}) {
      for (int N : {768, 2304, 3072, 50257}) b->Args({M, 768, N, threads});
      b->Args({M, 3072, 768, threads});
    }
  b->ArgNames({"M", "K", "N", "threads"});
}

}  // namespace

BENCHMARK(BM_invariant)->Apply(shapes);
BENCHMARK(BM_invariant_threads)->Apply(gpt2_shapes)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_invariant_8lanes)->Apply(shapes);
BENCHMARK(BM_eigen)->Apply(shapes);
int main(int argc, char** argv) { return miniinfer::bench::benchmark_main(argc, argv); }
