// Our engine against llama.cpp on the same model (the shipped MiniGPT, exported to GGUF), in
// one run, so the ratios compare figures measured under the same machine load. Prints a
// Markdown table (docs/benchmarks.md). A whole-program timer: each figure is the median of
// --reps repetitions, each timing as many calls as fit in --min-time seconds (at least 3).
//   build/bench/bench_vs_llamacpp [--model F.safetensors] [--min-time S] [--reps N] [--help]
// Our engine is single-threaded (threads do not exist in it); llama.cpp runs at 1 and 2, and at
// 2 once more with a threadpool whose threads sleep instead of spinning (poll 0, see
// LlamaCppOptions::poll), which is what matters on a loaded machine.
#include <llama.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/exit_status.h"
#include "base/temp_dir.h"
#include "engine/engine.h"
#include "../flag_values.h"
#include "llamacpp/gguf_export.h"
#include "llamacpp/llamacpp_engine.h"
#include "model/model_file.h"

namespace {

using namespace miniinfer;
using Clock = std::chrono::steady_clock;

double g_min_time = 0.2;
int g_reps = 5;

// Seconds per call of `op`, median over repetitions; `setup` runs untimed before each block.
double time_per_call(
    const std::function<void()>& op, const std::function<void()>& setup = [] {}) {
  std::vector<double> per_call;
  for (int r = 0; r < g_reps; ++r) {
    setup();
    int n = 0;
    const auto start = Clock::now();
    double elapsed = 0.0;
    do {
      op();
      ++n;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < g_min_time || n < 3);
    per_call.push_back(elapsed / n);
  }
  std::sort(per_call.begin(), per_call.end());
  return per_call[per_call.size() / 2];
}

std::vector<int> tokens(int n, int V, int salt) {
  std::vector<int> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (i * 37 + salt * 101 + 11) % V;
  return t;
}

struct Row {
  std::string name, unit;
  std::vector<double> values;  // ours, then each llama.cpp configuration
};

// The five figures for one engine (Engine or LlamaCpp: the same operations).
template <typename E>
std::vector<double> measure(E& e, int V) {
  std::vector<double> out;
  const int prompt = 16, steps = 64;
  // Cached decode at batch B: prompt of 16 per sequence, then decode steps; every 64 steps the
  // sequences are truncated back to the prompt (untimed is not possible per step, so the
  // truncation is part of the loop: one per 64 steps, as in bench_decode).
  for (int B : {1, 4}) {
    std::vector<int> seqs(static_cast<size_t>(B)), next(static_cast<size_t>(B));
    std::vector<float> logits(static_cast<size_t>(B) * V);
    const std::vector<int> feed = tokens(steps, V, 7);
    int step = 0;
    const auto setup = [&] {
      e.reset();
      for (int b = 0; b < B; ++b) {
        seqs[static_cast<size_t>(b)] = b;
        e.forward_cached(b, tokens(prompt, V, b));
      }
      step = 0;
    };
    const double s = time_per_call(
        [&] {
          std::fill(next.begin(), next.end(), feed[static_cast<size_t>(step)]);
          e.decode(seqs, next, logits);
          if (++step == steps) {
            step = 0;
            for (int b = 0; b < B; ++b) e.truncate(b, prompt);
          }
        },
        setup);
    out.push_back(B / s);  // tokens/s
  }
  for (int T : {64, 256}) {
    const std::vector<int> t = tokens(T, V, 3);
    out.push_back(1e3 * time_per_call([&] { e.forward_uncached(t); }));  // ms
  }
  const std::vector<int> p64 = tokens(64, V, 5);
  out.push_back(1e3 * time_per_call([&] {
                  e.reset();
                  e.forward_cached(0, p64);
                }));  // ms
  return out;
}

std::string fmt_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
  return buf;
}

constexpr const char* kUsage =
    "usage: bench_vs_llamacpp [--model F.safetensors] [--min-time S] [--reps N]\n"
    "Our engine against llama.cpp on the same model (default: the shipped MiniGPT), as a\n"
    "Markdown table: each figure the median of --reps repetitions (5) of as many calls as fit in\n"
    "--min-time seconds (0.2). Exit status: 0 done, 2 a flag or the model refused, 1 an internal\n"
    "error (src/base/exit_status.h).\n";

// The model's path from the flags (setting g_min_time and g_reps); empty after --help.
std::string parse_flags(int argc, char** argv) {
  std::string model_path = std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return "";
    if (a != "--model" && a != "--min-time" && a != "--reps")
      fail("unknown flag {} (flags: --model F, --min-time S, --reps N)", a);
    if (i + 1 >= argc) fail("flag {} needs a value (flags: --model F, --min-time S, --reps N)", a);
    if (a == "--model")
      model_path = argv[++i];
    else if (a == "--min-time")
      g_min_time = bench::number_above_zero(a, argv[++i], false);
    else
      g_reps = bench::whole_above_zero(a, argv[++i]);
  }
  return model_path;
}

int run(const std::string& model_path, const Model& model) {
  const int V = model.config.vocab_size;
  TempDir dir("bench_vs_llamacpp");
  const std::string gguf = dir.file("model.gguf");
  write_gguf(gguf, model);

  Engine ours(model, {Backend::Invariant, 4, 0, Fault::None, KvLayout::Contiguous, {}});
  const std::vector<double> o = measure(ours, V);
  struct Setting {
    const char* name;
    int threads, poll;
  };
  const Setting settings[] = {{"llama.cpp, 1 thread", 1, -1},
                              {"llama.cpp, 2 threads", 2, -1},
                              {"llama.cpp, 2 threads, poll 0", 2, 0}};
  std::vector<std::vector<double>> theirs;
  int n_batch = 0;
  for (const Setting& st : settings) {
    LlamaCpp llama(gguf, {.threads = st.threads, .n_seq = 4, .poll = st.poll, .eval_callback = false});
    n_batch = llama.options().n_batch;
    theirs.push_back(measure(llama, V));
  }

  const char* names[] = {"cached decode, batch 1", "cached decode, batch 4", "uncached step, context 64",
                         "uncached step, context 256", "prefill, 64 tokens"};
  const char* units[] = {"tokens/s", "tokens/s", "ms", "ms", "ms"};
  std::printf(
      "model %s (V=%d, D=%d, L=%d); llama.cpp: F16 KV cache, flash attention off, n_batch = n_ubatch = %d\n",
      model_path.c_str(), V, model.config.d_model, model.config.n_layer, n_batch);
  std::printf("llama.cpp system info: %s\n", llama_print_system_info());
  std::printf("median of %d repetitions of >= %.2f s each\n\n", g_reps, g_min_time);
  std::printf("| figure | unit | ours (1 thread) |");
  for (const Setting& st : settings) std::printf(" %s |", st.name);
  for (const Setting& st : settings) std::printf(" %s / ours |", st.name);
  std::printf("\n|---|---|---:|");
  for (size_t i = 0; i < 2 * std::size(settings); ++i) std::printf("---:|");
  std::printf("\n");
  for (size_t i = 0; i < o.size(); ++i) {
    // Speed relative to ours, above 1 when llama.cpp is faster: rates divide theirs by ours,
    // times ours by theirs.
    const bool rate = std::strcmp(units[i], "tokens/s") == 0;
    std::printf("| %s | %s | %s |", names[i], units[i], fmt_value(o[i]).c_str());
    for (const auto& t : theirs) std::printf(" %s |", fmt_value(t[i]).c_str());
    for (const auto& t : theirs) std::printf(" %.2fx |", rate ? t[i] / o[i] : o[i] / t[i]);
    std::printf("\n");
  }
  std::printf("\nratio columns: llama.cpp's speed relative to ours (above 1: llama.cpp is faster)\n");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path;
  Model model;
  try {
    model_path = parse_flags(argc, argv);
    if (model_path.empty()) {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    model = read_model(model_path);
  } catch (const std::exception& e) {  // a flag or the model
    std::fprintf(stderr, "bench_vs_llamacpp: %s\n", e.what());
    return kExitRefused;
  }
  try {
    return run(model_path, model);
  } catch (const std::exception& e) {  // llama.cpp's or the library's: a bug
    std::fprintf(stderr, "bench_vs_llamacpp: internal error: %s\n", e.what());
    return kExitFailed;
  }
}
