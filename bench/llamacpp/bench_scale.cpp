// Issue 30 at GPT-2 scale, in one run, so every ratio compares figures taken under the same load:
// this machine's peak (bench/peak.h), the GEMM alone at GPT-2's shapes against OpenBLAS and Eigen,
// and the engine (prefill of 512, the uncached step at 512, decode at contexts 64, 512 and 1024
// with batch 1 and 8) against llama.cpp F32 on the same GGUF and against our Eigen backend, each
// at 1 and 2 threads (--threads), interleaved: every repetition times every contestant at every
// thread count in turn. Each figure says how far from the machine's peak it runs and which bound
// it hits. Prints Markdown (docs/benchmarks.md). A whole-program timer: figures are the median of
// --reps repetitions, each timing as many calls as fit in --min-time seconds (at least one).
//   bench_scale --model F.safetensors --gguf F.gguf [--threads 1,2] [--reps N] [--min-time S]
//               [--part all|peak|gemm|engine]
//   bench_scale --memory ours|llamacpp --model F.safetensors --gguf F.gguf
// --memory reports resident memory (VmRSS) of the model loaded and of a KV cache of 8 sequences
// x 1024 positions, for one engine per process (scripts/bench-scale runs it twice).
#include <llama.h>
#ifdef MINIINFER_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include <fmt/format.h>
#include <malloc.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../flag_values.h"
#include "../peak.h"
#include "base/error.h"
#include "base/exit_status.h"
#include "base/machine.h"
#include "base/rng.h"
#include "engine/engine.h"
#include "engine/kernels.h"
#include "llamacpp/llamacpp_engine.h"
#include "model/model_file.h"

namespace {

using namespace miniinfer;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model_path, gguf_path, memory, part = "all";
  std::vector<int> threads = {1, 2};
  int reps = 3;
  double min_time = 0.3;
  bool help = false;
};

// ---- timing and bookkeeping ------------------------------------------------------------------

// Seconds per call of `op`: as many calls as fit in min_time, at least one.
double seconds_per_call(const std::function<void()>& op, double min_time) {
  int n = 0;
  const auto start = Clock::now();
  double elapsed = 0.0;
  do {
    op();
    ++n;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < min_time);
  return elapsed / n;
}

// Samples by key ("figure|threads|contestant"), medians at the end.
struct Samples {
  std::map<std::string, std::vector<double>> by_key;
  void add(const std::string& key, double v) { by_key[key].push_back(v); }
  bool has(const std::string& key) const { return by_key.count(key) > 0; }
  double median(const std::string& key) const {
    std::vector<double> v = by_key.at(key);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
};

std::string key(const std::string& figure, int threads, const std::string& who) {
  return figure + "|" + std::to_string(threads) + "|" + who;
}

// The bytes a contestant computed at its first thread count, against which every other thread
// count's are compared (ours must match exactly; that is the point of the invariant kernels).
struct ByteCheck {
  std::map<std::string, std::vector<float>> first;
  std::vector<std::string> differing;
  void record(const std::string& what, std::span<const float> v) {
    auto [it, fresh] = first.try_emplace(what, v.begin(), v.end());
    if (!fresh && (it->second.size() != v.size() || std::memcmp(it->second.data(), v.data(), v.size_bytes()) != 0))
      differing.push_back(what);
  }
};

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

std::vector<int> tokens(int n, int V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(static_cast<uint32_t>(V)));
  return t;
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (float& v : x) v = rng.normal();
  return x;
}

// ---- the machine's peak ----------------------------------------------------------------------

struct Peak {
  double gflops8 = 0, gflops16 = 0, triad_gbs = 0;
  double gflops() const { return std::max(gflops8, gflops16); }  // the widest this CPU runs
};

std::map<int, Peak> measure_peaks(const std::vector<int>& threads) {
  std::map<int, Peak> peaks;
  bench::TriadArrays arrays(bench::kTriadFloats);
  for (int t : threads) {
    Peak& p = peaks[t];
    p.gflops8 = bench::peak_gflops(8, t);
    p.gflops16 = bench::has_avx512f() ? bench::peak_gflops(16, t) : 0.0;
    p.triad_gbs = bench::peak_triad_gbs(arrays, t);
  }
  return peaks;
}

void print_peaks(const std::map<int, Peak>& peaks) {
  std::printf("\n### The machine's peak (bench/peak.h, best of 3 to 5 runs in this run, rates over each thread's CPU time)\n\n");
  std::printf("| threads | FMA, 8 lanes (ymm) GFLOP/s | FMA, 16 lanes (zmm) GFLOP/s | triad GB/s (3 streams) | balance, flop per byte |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  for (const auto& [t, p] : peaks)
    std::printf("| %d | %.1f | %s | %.1f | %.1f |\n", t, p.gflops8,
                p.gflops16 > 0 ? fmt::format("{:.1f}", p.gflops16).c_str() : "(no AVX-512F)", p.triad_gbs,
                p.gflops() / p.triad_gbs);
}

// ---- the GEMM alone --------------------------------------------------------------------------

// Returns whether ours' bytes were the same at every thread count.
bool run_gemm(const Options& o, const std::map<int, Peak>& peaks) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int K = 768;
  const int Ms[] = {1, 8, 64, 512}, Ns[] = {768, 2304, 3072, 50257};
  // The engine's own worker pool (base/thread_pool.h), one per thread count, as an Engine holds.
  std::map<int, std::unique_ptr<ThreadPool>> pools;
  for (int t : o.threads) pools[t] = std::make_unique<ThreadPool>(t);
  Samples s;
  ByteCheck bytes;
  struct Shape {
    int M, N;
    std::vector<float> x, w, b, out;
    kernels::PackedWeight packed;
  };
  std::vector<Shape> shapes;
  for (int M : Ms)
    for (int N : Ns) {
      Shape sh{M, N, random_floats(static_cast<size_t>(M) * K, 1), random_floats(static_cast<size_t>(N) * K, 2),
               random_floats(static_cast<size_t>(N), 3), std::vector<float>(static_cast<size_t>(M) * N), {}};
      sh.packed = kernels::pack_weight(sh.w, K, N);
      shapes.push_back(std::move(sh));
    }
  const double min_time = std::min(o.min_time, 0.1);
  for (int r = 0; r < o.reps; ++r)
    for (Shape& sh : shapes) {
      const std::string fig = std::to_string(sh.M) + "x" + std::to_string(sh.N);
      Eigen::Map<const RowMatrix> X(sh.x.data(), sh.M, K), W(sh.w.data(), sh.N, K);
      Eigen::Map<const Eigen::RowVectorXf> B(sh.b.data(), sh.N);
      Eigen::Map<RowMatrix> Y(sh.out.data(), sh.M, sh.N);
      for (int t : o.threads) {
        s.add(key(fig, t, "ours"), seconds_per_call([&] {
                kernels::matmul_forward(sh.out.data(), sh.x.data(), sh.packed.data(), sh.b.data(), sh.M, K, sh.N,
                                        pools.at(t).get());
              }, min_time));
        bytes.record(fig, sh.out);
#ifdef MINIINFER_HAVE_OPENBLAS
        openblas_set_num_threads(t);
        s.add(key(fig, t, "openblas"), seconds_per_call([&] {
                for (int m = 0; m < sh.M; ++m) std::copy(sh.b.begin(), sh.b.end(), sh.out.begin() + static_cast<long>(m) * sh.N);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh.M, sh.N, K, 1.0f, sh.x.data(), K,
                            sh.w.data(), K, 1.0f, sh.out.data(), sh.N);
              }, min_time));
#endif
        if (t == 1)  // this build's Eigen has no OpenMP: one thread only
          s.add(key(fig, t, "eigen"), seconds_per_call([&] {
                  Y.noalias() = X * W.transpose();
                  Y.rowwise() += B;
                }, min_time));
      }
    }
  std::printf("\n### The GEMM alone, K = 768 (out = X W^T + b; median of %d)\n\n", o.reps);
  std::printf("Ours at t threads: kernels::matmul_forward on the engine's worker pool of t threads (column\n"
              "groups or blocks of rows, never k: every element computed as on one thread). OpenBLAS: cblas_sgemm at t threads, bias\n"
              "preloaded (beta 1). Eigen: this build's, one thread (no OpenMP). Ratios: their time / ours.\n\n");
  std::printf("| M | N | threads | ours µs | OpenBLAS µs | Eigen µs | ours GFLOP/s | of peak | ours / OpenBLAS | ours / Eigen |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Shape& sh : shapes)
    for (int t : o.threads) {
      const std::string fig = std::to_string(sh.M) + "x" + std::to_string(sh.N);
      const double ours = s.median(key(fig, t, "ours")), flops = 2.0 * sh.M * K * sh.N;
      auto other = [&](const char* who) {
        return s.has(key(fig, t, who)) ? fmt::format("{:.1f}", s.median(key(fig, t, who)) * 1e6) : std::string("-");
      };
      auto ratio = [&](const char* who) {
        return s.has(key(fig, t, who)) ? fmt::format("{:.2f}x", s.median(key(fig, t, who)) / ours) : std::string("-");
      };
      std::printf("| %d | %d | %d | %.1f | %s | %s | %.1f | %.0f%% | %s | %s |\n", sh.M, sh.N, t, ours * 1e6,
                  other("openblas").c_str(), other("eigen").c_str(), flops / ours / 1e9,
                  100 * flops / ours / 1e9 / peaks.at(t).gflops(), ratio("openblas").c_str(), ratio("eigen").c_str());
    }
  std::printf("\nours' bytes at every thread count equal its bytes at %d: %s\n", o.threads.front(),
              bytes.differing.empty() ? "yes" : fmt::format("NO, at {}", fmt::join(bytes.differing, ", ")).c_str());
  return bytes.differing.empty();
}

// ---- the engine ------------------------------------------------------------------------------

// The invariant backend, contiguous cache: B sequences of `capacity` positions.
EngineOptions engine_options(int batch, int capacity, int threads) {
  EngineOptions e;
  e.batch = batch;
  e.capacity = capacity;
  e.threads = threads;
  return e;
}

// One contestant: our engine on a backend, or llama.cpp in one setting, behind the calls the
// figures make. select() sets the thread count (and our backend) before each timing.
struct Contestant {
  std::string name;
  int min_threads = 1;  // a threadpool's polling level matters only with workers to wake
  std::function<void(int)> select;
  std::function<void(int)> reset;                                            // one sequence empty
  std::function<void(int, std::span<const int>, std::span<float>)> append;   // last row's logits
  std::function<void(std::span<const int>, std::span<float>)> uncached;     // last row's logits
  std::function<void(std::span<const int>, std::span<const int>, std::span<float>)> decode;
  std::function<void(int, int)> truncate;
  std::function<void(int, int, int)> fork;
};

template <typename E>
void bind_calls(Contestant& c, E& e) {
  c.reset = [&e](int seq) { e.reset(seq); };
  c.append = [&e](int seq, std::span<const int> t, std::span<float> logits) {
    const std::vector<float> l = e.forward_cached(seq, t);
    std::copy(l.begin(), l.end(), logits.begin());
  };
  c.uncached = [&e](std::span<const int> t, std::span<float> logits) {
    const std::vector<float> l = e.forward_uncached(t);
    std::copy(l.begin(), l.end(), logits.begin());
  };
  c.decode = [&e](std::span<const int> seqs, std::span<const int> t, std::span<float> logits) {
    e.decode(seqs, t, logits);
  };
  c.truncate = [&e](int seq, int p) { e.truncate(seq, p); };
  c.fork = [&e](int src, int dst, int n) { e.fork(src, dst, n); };
}

// Flops of n new tokens at positions p..p+n-1 (position j attends j+1 slots), with `head_rows`
// rows of logits: per layer 2 (4 D^2 + 2 D F) per token for the projections and the MLP, 4 D (j+1)
// for the scores and weighted sums; 2 D V per logits row. (LayerNorm, GELU, softmax: not counted.)
double forward_flops(const Config& c, int p, int n, int head_rows) {
  const double D = c.d_model, F = c.d_ff, L = c.n_layer, V = c.vocab_size;
  double attn = 0;
  for (int j = p; j < p + n; ++j) attn += 4.0 * D * (j + 1);
  return L * (n * 2.0 * (4 * D * D + 2 * D * F) + attn) + head_rows * 2.0 * D * V;
}

// Bytes a forward must at least bring in: every weight it multiplies by (fp32, the head's
// V x D included), and the K and V rows of `slots` cached positions for each of `batch` sequences.
double forward_bytes(const Config& c, int batch, int slots) {
  const double D = c.d_model, F = c.d_ff, L = c.n_layer, V = c.vocab_size;
  return 4.0 * (L * (4 * D * D + 2 * D * F) + V * D) + 4.0 * batch * L * 2 * slots * D;
}

struct Figure {
  std::string name;
  double flops, bytes;  // per call
};

void print_engine_table(const Options& o, const Samples& s, const std::vector<Figure>& figures,
                        const std::map<int, Peak>& peaks, const std::vector<std::string>& llamas) {
  std::printf("\n### The engine at GPT-2 scale (median of %d; ms per call)\n\n", o.reps);
  std::printf("Ratios are speed ratios (their time / ours: above 1, ours is faster). \"bound\": compute if the\n"
              "figure's flops per byte (weights + KV read once) exceed the machine's balance at that thread\n"
              "count, else memory; \"of that peak\": ours' GFLOP/s or GB/s (over wall time) over the measured peak\n"
              "(over CPU time): on a shared machine the fraction understates what the code reaches alone.\n\n");
  std::printf("| figure | threads | ours ms | llama.cpp ms (best setting) | Eigen backend ms | ours / llama.cpp | ours / Eigen | ours GFLOP/s | ours GB/s | bound | of that peak |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
  for (const Figure& f : figures)
    for (int t : o.threads) {
      const double ours = s.median(key(f.name, t, "ours")), eigen = s.median(key(f.name, t, "eigen"));
      std::string best_name;
      double best = 1e300;
      for (const std::string& l : llamas)
        if (!s.has(key(f.name, t, l))) continue;
        else if (const double v = s.median(key(f.name, t, l)); v < best) best = v, best_name = l;
      const Peak& p = peaks.at(t);
      const bool compute = f.flops / f.bytes > p.gflops() / p.triad_gbs;
      const double gflops = f.flops / ours / 1e9, gbs = f.bytes / ours / 1e9;
      std::printf("| %s | %d | %.2f | %.2f (%s) | %.2f | %.2fx | %.2fx | %.1f | %.1f | %s | %.0f%% |\n",
                  f.name.c_str(), t, ours * 1e3, best * 1e3, best_name.c_str(), eigen * 1e3, best / ours,
                  eigen / ours, gflops, gbs, compute ? "compute" : "memory",
                  100 * (compute ? gflops / p.gflops() : gbs / p.triad_gbs));
    }
}

// Times `op` for every contestant at every thread count, `reps` times round-robin; `check`
// (ours only) records the logits it left for the byte comparison across thread counts.
void interleave(const Options& o, std::vector<Contestant>& cs, Samples& s, const std::string& figure,
                const std::function<void(Contestant&)>& op, const std::function<void()>& check) {
  for (int r = 0; r < o.reps; ++r)
    for (int t : o.threads)
      for (Contestant& c : cs) {
        if (t < c.min_threads) continue;
        c.select(t);
        s.add(key(figure, t, c.name), seconds_per_call([&] { op(c); }, o.min_time));
        if (c.name == "ours") check();
      }
}

// Returns whether ours' logits were the same at every thread count.
bool run_engine(const Options& o, const Model& model, const std::map<int, Peak>& peaks) {
  const Config& cfg = model.config;
  const int V = cfg.vocab_size, B = 8, cap = 1024, chunk = 512;
  Engine ours(model, engine_options(B, cap, o.threads.front()));
  std::vector<Contestant> cs(2);
  cs[0].name = "ours";
  cs[0].select = [&ours](int t) { ours.set_backend(Backend::Invariant), ours.set_threads(t); };
  cs[1].name = "eigen";
  cs[1].select = [&ours](int t) { ours.set_backend(Backend::Eigen), ours.set_threads(t); };
  bind_calls(cs[0], ours);
  bind_calls(cs[1], ours);
  std::vector<std::unique_ptr<LlamaCpp>> llama;
  std::vector<std::string> llamas;
  // F32 cache (as ours), no eval callback, the 512-token prefill as one physical batch; flash
  // attention off and on; llama.cpp's own threadpool (its threads spin between graph nodes, poll
  // 50) and, from 2 threads, one of ours whose threads sleep (poll 0).
  const int most = *std::max_element(o.threads.begin(), o.threads.end());
  for (int poll : {-1, 0})
    for (bool flash : {false, true}) {
      if (poll == 0 && most < 2) continue;
      llama.push_back(std::make_unique<LlamaCpp>(
          o.gguf_path, LlamaCppOptions{.threads = std::max(o.threads.front(), poll == 0 ? 2 : 1),
                                       .kv_type = KvType::F32, .flash_attn = flash, .n_seq = B, .capacity = cap,
                                       .n_batch = chunk, .n_ubatch = chunk, .poll = poll, .eval_callback = false}));
      LlamaCpp& l = *llama.back();
      Contestant c;
      c.name = std::string(flash ? "llama.cpp flash" : "llama.cpp") + (poll == 0 ? " poll 0" : "");
      c.min_threads = poll == 0 ? 2 : 1;
      // Only on a change: set_threads makes a poll >= 0 threadpool anew, and the next graph once
      // hung in ggml_threadpool_pause (ggml_backend_cpu_set_threadpool pausing the old pool).
      c.select = [&l](int t) {
        if (t != l.options().threads) l.set_threads(t);
      };
      bind_calls(c, l);
      llamas.push_back(c.name);
      cs.push_back(std::move(c));
    }
  std::printf("\nllama.cpp: %s\nllama.cpp settings: F32 KV cache, n_seq 8, n_ctx 8 x 1024, n_batch = n_ubatch = %d, "
              "no eval callback; flash attention off and on, with llama.cpp's threadpool (poll 50) and, from 2 threads,\n"
              "with one whose threads sleep (poll 0): the fastest of these per figure\n",
              llama_print_system_info(), chunk);
  Samples s;
  ByteCheck bytes;
  std::vector<float> logits(static_cast<size_t>(B) * V);
  const std::span<float> one(logits.data(), static_cast<size_t>(V));
  std::vector<Figure> figures;

  const std::vector<int> p512 = tokens(chunk, V, 1);
  figures.push_back({"prefill, 512 tokens", forward_flops(cfg, 0, chunk, 1), forward_bytes(cfg, 1, 0)});
  interleave(o, cs, s, figures.back().name, [&](Contestant& c) { c.reset(0), c.append(0, p512, one); },
             [&] { bytes.record("prefill 512", one); });
  figures.push_back({"uncached step, context 512", forward_flops(cfg, 0, chunk, 1), forward_bytes(cfg, 1, 0)});
  interleave(o, cs, s, figures.back().name, [&](Contestant& c) { c.uncached(p512, one); },
             [&] { bytes.record("uncached 512", one); });

  // Decode: sequence 0 takes 1023 tokens (chunks of at most 512, llama.cpp's n_batch) and is forked
  // to the other 7. At each context c (largest first) every sequence is truncated to c - 1; a
  // timed step appends one token to each of the first `batch` sequences and truncates them back
  // (inside the timing: a truncation costs little beside a step).
  const std::vector<int> p1023 = tokens(cap - 1, V, 2), next = tokens(B, V, 3);
  std::vector<int> seqs(B);
  for (int b = 0; b < B; ++b) seqs[static_cast<size_t>(b)] = b;
  for (Contestant& c : cs) {
    if (c.name == "eigen") continue;  // shares ours' engine and cache
    c.select(std::max(c.min_threads, o.threads.back()));
    for (int b = 0; b < B; ++b) c.reset(b);
    for (int p = 0; p < cap - 1; p += chunk)
      c.append(0, std::span(p1023).subspan(p, std::min(chunk, cap - 1 - p)), one);
    for (int b = 1; b < B; ++b) c.fork(0, b, cap - 1);
  }
  for (int ctx : {1024, 512, 64}) {
    for (Contestant& c : cs)
      if (c.name != "eigen")
        for (int b = 0; b < B; ++b) c.truncate(b, ctx - 1);
    for (int batch : {1, 8}) {
      const auto sq = std::span(seqs).first(static_cast<size_t>(batch));
      const auto out = std::span(logits).first(static_cast<size_t>(batch) * V);
      figures.push_back({fmt::format("decode, batch {}, context {}", batch, ctx),
                         batch * forward_flops(cfg, ctx - 1, 1, 1), forward_bytes(cfg, batch, ctx)});
      interleave(o, cs, s, figures.back().name,
                 [&](Contestant& c) {
                   c.decode(sq, std::span(next).first(static_cast<size_t>(batch)), out);
                   for (int b : sq) c.truncate(b, ctx - 1);
                 },
                 [&] { bytes.record(figures.back().name, out); });
    }
  }
  print_engine_table(o, s, figures, peaks, llamas);
  std::printf("\nours' logits at every thread count equal its logits at %d: %s\n", o.threads.front(),
              bytes.differing.empty() ? "yes" : fmt::format("NO, at {}", fmt::join(bytes.differing, ", ")).c_str());
  return bytes.differing.empty();
}

// ---- memory ----------------------------------------------------------------------------------

// /proc/self/status's VmRSS, RssAnon and RssFile, in MiB.
struct Rss {
  double total = 0, anon = 0, file = 0;
};
Rss rss_now() {
  malloc_trim(0);  // what the heap holds free goes back to the system first
  return {process_status_mib("VmRSS"), process_status_mib("RssAnon"), process_status_mib("RssFile")};
}

void print_rss_row(const char* engine, const std::string& what, const Rss& before, const Rss& after) {
  std::printf("| %s | %s | %.0f | %.0f | %.0f |\n", engine, what.c_str(), after.total - before.total, after.anon - before.anon,
              after.file - before.file);
}

// Rows of the memory table: the model, the model with a full 8 x 1024 cache, and their difference.
void print_memory(const char* engine, const char* model_what, const Rss& model, const char* cache_what,
                  const Rss& with_cache) {
  print_rss_row(engine, model_what, {}, model);
  print_rss_row(engine, cache_what, {}, with_cache);
  print_rss_row(engine, "the 8 x 1024 cache and its buffers (row 2 - row 1)", model, with_cache);
}

// Growth of VmRSS over `fn`'s run, read while what fn made is still alive (fn calls `done`).
template <typename F>
Rss growth(F&& fn) {
  const Rss before = rss_now();
  Rss after;
  fn([&] { after = rss_now(); });
  return {after.total - before.total, after.anon - before.anon, after.file - before.file};
}

// Sequence 0 takes 1023 tokens in chunks of 512 and is forked to the other 7: every slot written.
template <typename E>
void fill_cache(E& e, int V) {
  const std::vector<int> p = tokens(1023, V, 2);
  for (int q = 0; q < 1023; q += 512) e.forward_cached(0, std::span(p).subspan(q, std::min(512, 1023 - q)));
  for (int b = 1; b < 8; ++b) e.fork(0, b, 1023);
}

// One engine per process, so neither's heap or mappings count in the other's figures. The model
// is an engine holding 1 sequence of 1 position (ours: the file's Model freed, the engine keeps
// its own copy); the cache is the growth from that to an engine of 8 sequences x 1024 positions,
// every slot written. RSS is read after malloc_trim, so freed heap does not count.
int run_memory(const Options& o) {
  std::printf("| engine | what | VmRSS MiB | RssAnon MiB | RssFile MiB |\n|---|---|---:|---:|---:|\n");
  if (o.memory == "ours") {
    int V = 0;
    const Rss file = growth([&](auto done) {
      const Model m = read_model(o.model_path);
      V = m.config.vocab_size;
      done();
    });
    const auto engine = [&](int batch, int capacity) {
      return growth([&](auto done) {
        std::unique_ptr<Engine> e;
        {
          const Model m = read_model(o.model_path);
          e = std::make_unique<Engine>(m, engine_options(batch, capacity, 1));
        }
        if (batch > 1) fill_cache(*e, V);
        done();
      });
    };
    print_rss_row("ours", "the Model read from the file (needed only to build an engine)", {}, file);
    print_memory("ours", "the model in an engine (1 x 1 cache)", engine(1, 1),
                 "an engine with an 8 x 1024 fp32 cache, full", engine(8, 1024));
    return kExitOk;
  }
  const auto context = [&](int n_seq, int capacity) {
    return growth([&](auto done) {
      LlamaCpp l(o.gguf_path, {.threads = 1, .kv_type = KvType::F32, .n_seq = n_seq, .capacity = capacity,
                               .n_batch = 512, .n_ubatch = 512, .eval_callback = false});
      if (n_seq > 1) fill_cache(l, l.vocab_size());
      else l.forward_cached(0, std::vector<int>{1, 2, 3});  // touches every weight of the mmap'd file
      done();
    });
  };
  print_memory("llama.cpp", "the model (mmap'd GGUF) and a 1 x 16 context", context(1, 16),
               "the model and an 8 x 1024 F32 context, full (and its 1 x 1024 recompute context)",
               context(8, 1024));
  return kExitOk;
}

// ---- flags -----------------------------------------------------------------------------------

constexpr const char* kUsage =
    "usage: bench_scale --model F.safetensors --gguf F.gguf [--threads 1,2] [--reps N] [--min-time S]\n"
    "                   [--part all|peak|gemm|engine]\n"
    "       bench_scale --memory ours|llamacpp --model F.safetensors --gguf F.gguf\n"
    "Issue 30's comparison at GPT-2 scale (scripts/bench-scale makes the model and runs it all):\n"
    "the machine's peak, the GEMM alone against OpenBLAS and Eigen, and the engine against\n"
    "llama.cpp F32 on the same GGUF and against our Eigen backend, at each of --threads,\n"
    "interleaved; each figure the median of --reps (3) repetitions of as many calls as fit in\n"
    "--min-time seconds (0.3), as Markdown. --memory: resident memory of one engine's model and\n"
    "of its 8 x 1024 KV cache. Exit status: 0 done, 1 ours' bytes differ between thread counts\n"
    "or an internal error, 2 a flag or the model refused (src/base/exit_status.h).\n";

std::vector<int> thread_list(const std::string& v) {
  std::vector<int> out;
  std::stringstream in(v);
  for (std::string item; std::getline(in, item, ',');) out.push_back(bench::whole_above_zero("--threads", item));
  if (out.empty()) fail("--threads: '{}' names no thread count", v);
  return out;
}

Options parse_flags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      o.help = true;
      return o;
    }
    static const std::vector<std::string> valued = {"--model", "--gguf", "--threads", "--reps",
                                                    "--min-time", "--part", "--memory"};
    if (std::find(valued.begin(), valued.end(), a) == valued.end())
      fail("unknown flag {} (see bench_scale --help)", a);
    if (i + 1 >= argc) fail("flag {} needs a value", a);
    const std::string v = argv[++i];
    if (a == "--model") o.model_path = v;
    else if (a == "--gguf") o.gguf_path = v;
    else if (a == "--threads") o.threads = thread_list(v);
    else if (a == "--reps") o.reps = bench::whole_above_zero(a, v);
    else if (a == "--min-time") o.min_time = bench::number_above_zero(a, v, false);
    else if (a == "--part") o.part = v;
    else o.memory = v;
  }
  if (o.part != "all" && o.part != "peak" && o.part != "gemm" && o.part != "engine")
    fail("--part: '{}' is not one of all, peak, gemm, engine", o.part);
  if (!o.memory.empty() && o.memory != "ours" && o.memory != "llamacpp")
    fail("--memory: '{}' is not one of ours, llamacpp", o.memory);
  if (o.model_path.empty() || o.gguf_path.empty()) fail("--model and --gguf are required (see bench_scale --help)");
  for (const std::string& f : {o.model_path, o.gguf_path})
    if (!std::ifstream(f)) fail("{}: cannot open it", f);
  return o;
}

int run(const Options& o, const Model& model) {
  if (!o.memory.empty()) return run_memory(o);
  std::printf("bench_scale: %s, load average %s at the start\n", utc_now().c_str(), load_average().c_str());
  if (model.config.vocab_size > 0)
    std::printf("model %s (V=%d, D=%d, L=%d, H=%d, F=%d), GGUF %s\n", o.model_path.c_str(), model.config.vocab_size,
                model.config.d_model, model.config.n_layer, model.config.n_head, model.config.d_ff, o.gguf_path.c_str());
  const std::map<int, Peak> peaks = measure_peaks(o.threads);
  print_peaks(peaks);
  bool same = true;
  if (o.part == "all" || o.part == "gemm") same = run_gemm(o, peaks) && same;
  if (o.part == "all" || o.part == "engine") same = run_engine(o, model, peaks) && same;
  std::printf("\nbench_scale: done %s, load average %s at the end\n", utc_now().c_str(), load_average().c_str());
  if (!same) std::fprintf(stderr, "bench_scale: ours' bytes differ between thread counts (see the tables)\n");
  return same ? kExitOk : kExitFailed;  // the invariant path's bytes are its contract, at any speed
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  Model model;
  try {
    o = parse_flags(argc, argv);
    if (o.help) {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    if (o.memory.empty() && (o.part == "all" || o.part == "engine")) model = read_model(o.model_path);
  } catch (const std::exception& e) {  // a flag or the model
    std::fprintf(stderr, "bench_scale: %s\n", e.what());
    return kExitRefused;
  }
  try {
    return run(o, model);
  } catch (const std::exception& e) {  // the engines' or a library's: a bug
    std::fprintf(stderr, "bench_scale: internal error: %s\n", e.what());
    return kExitFailed;
  }
}
