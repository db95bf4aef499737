// The cost of generating one token as the context grows, cached and uncached, as a CSV and a
// log-log SVG plot (docs/benchmarks.md shows it). A whole-program timer, not Google Benchmark:
// each point is the min, median and max over repetitions of the mean time of as many calls as
// fit in --min-time seconds, every path of every engine in turn at each repetition. Random model
// of the shipped shape (V=900, D=64, L=4, H=4, F=256, max_seq_len 512), or --model FILE.
//   cached at context T:   one decode step with T-1 tokens already in the cache;
//   uncached at context T: one forward_uncached of T tokens (the last position's logits), what
//                          generate(cache = false) does for every token.
// Built as cost_curve_llamacpp where llama.cpp is found: --llamacpp adds llama.cpp's two paths
// on the same model (exported to GGUF), 1 thread, flash attention off and on.
//   cost_curve [--csv FILE] [--svg FILE] [--reps N] [--min-time S] [--max-context T]
//              [--model F.safetensors] [--llamacpp]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/exit_status.h"
#include "base/rng.h"
#include "flag_values.h"
#include "engine/engine.h"
#include "model/model_file.h"
#include "shipped_shape.h"
#ifdef MINIINFER_HAVE_LLAMACPP
#include "base/temp_dir.h"
#include "llamacpp/gguf_export.h"
#include "llamacpp/llamacpp_engine.h"
#endif

namespace {

using namespace miniinfer;
using Clock = std::chrono::steady_clock;

std::vector<int> tokens(int n, int V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(static_cast<uint32_t>(V)));
  return t;
}

// One engine's two paths, behind the operations our Engine and LlamaCpp both have.
struct Paths {
  std::string name;                                      // "ours", "llama.cpp", "llama.cpp flash"
  std::function<void(const std::vector<int>&)> prepare;  // the cache holds all but the last token
  std::function<void()> decode, full;
};

template <typename E>
Paths paths_of(std::string name, std::shared_ptr<E> cached, std::shared_ptr<E> uncached, int V) {
  struct State {
    std::vector<int> t;
    std::vector<float> logits;
    int seq = 0, next = 0, keep = 0;
  };
  auto st = std::make_shared<State>();
  st->logits.resize(static_cast<size_t>(V));
  Paths p;
  p.name = std::move(name);
  p.prepare = [=](const std::vector<int>& t) {
    st->t = t;
    st->keep = static_cast<int>(t.size()) - 1;
    st->next = t.back();
    cached->reset();
    cached->forward_cached(0, std::span(t).first(static_cast<size_t>(st->keep)));
  };
  p.decode = [=] {
    cached->decode({&st->seq, 1}, {&st->next, 1}, st->logits);
    cached->truncate(0, st->keep);
  };
  p.full = [=] { st->logits = uncached->forward_uncached(st->t); };
  return p;
}

// Seconds per call of f, averaged over as many calls as fit in min_time.
template <typename F>
double time_per_call(F&& f, double min_time) {
  f();  // warm the caches
  long calls = 0;
  const auto start = Clock::now();
  double elapsed = 0.0;
  do {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < min_time);
  return elapsed / static_cast<double>(calls);
}

struct Point {
  int context;
  std::string path;
  double min, median, max;  // seconds per generated token
};

// Least-squares slope of log(time) against log(context) over points with context >= from.
double slope(const std::vector<Point>& pts, const std::string& path, int from) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int n = 0;
  for (const Point& p : pts) {
    if (p.path != path || p.context < from) continue;
    const double x = std::log(p.context), y = std::log(p.median);
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++n;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

// Log-log plot: decades on the time axis, powers of two on the context axis.
std::string svg(const std::vector<Point>& pts,
                const std::vector<std::pair<std::string, std::string>>& paths) {
  const double W = 840, H = 440, left = 80, right = 290, top = 40, bottom = 60;
  double xlo = 1e300, xhi = 0, ylo = 1e300, yhi = 0;
  for (const Point& p : pts) {
    xlo = std::min(xlo, double(p.context)), xhi = std::max(xhi, double(p.context));
    ylo = std::min(ylo, p.min), yhi = std::max(yhi, p.max);
  }
  const double lx0 = std::log2(xlo), lx1 = std::log2(xhi);
  const double ly0 = std::floor(std::log10(ylo)), ly1 = std::ceil(std::log10(yhi));
  auto X = [&](double c) { return left + (std::log2(c) - lx0) / (lx1 - lx0) * (W - left - right); };
  auto Y = [&](double t) { return H - bottom - (std::log10(t) - ly0) / (ly1 - ly0) * (H - top - bottom); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      W, H);
  s += fmt::format(
      "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Time per generated token against "
      "context (log-log)</text>\n",
      (left + W - right) / 2);
  for (double c = xlo; c <= xhi * 1.0001; c *= 2) {
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>\n", X(c),
                     top, H - bottom);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", X(c), H - bottom + 18,
                     c);
  }
  for (double e = ly0; e <= ly1; ++e) {
    const double t = std::pow(10.0, e);
    for (int m = 2; m < 10 && e < ly1; ++m)
      s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#f0f0f0\"/>\n", left,
                       Y(m * t), W - right, Y(m * t));
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#bbb\"/>\n", left, Y(t),
                     W - right, Y(t));
    const std::string label = t >= 1e-3 ? fmt::format("{:g} ms", t * 1e3) : fmt::format("{:g} µs", t * 1e6);
    s +=
        fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6, Y(t) + 4, label);
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n",
                   left, top, W - left - right, H - top - bottom);
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">context (tokens)</text>\n",
                   (left + W - right) / 2, H - 18);
  s += fmt::format(
      "<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">time per token "
      "(median; bars: min to max)</text>\n",
      (top + H - bottom) / 2);
  int row = 0;
  for (const auto& [path, color] : paths) {
    std::string line;
    for (const Point& p : pts) {
      if (p.path != path) continue;
      line += fmt::format("{:.1f},{:.1f} ", X(p.context), Y(p.median));
      s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\"/>\n",
                       X(p.context), Y(p.min), Y(p.max), color);
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", X(p.context),
                       Y(p.median), color);
    }
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", line,
                     color);
    const double ly = top + 20 + 22 * row++;
    s +=
        fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"/>\n",
                    W - right + 12, ly, W - right + 36, color);
    s += fmt::format("<text x=\"{}\" y=\"{}\">{}, slope {:.2f}</text>\n", W - right + 42, ly + 4, path,
                     slope(pts, path, 128));
  }
  // Reference slopes 1 (O(T)) and 2 (O(T^2)) through each path's last point, dashed.
  for (const auto& [path, color] : paths) {
    if (path != "ours cached" && path != "ours uncached") continue;
    const Point* last = nullptr;
    for (const Point& p : pts)
      if (p.path == path) last = &p;
    if (!last) continue;
    const double ref = path == "ours cached" ? 1.0 : 2.0;
    // From the left edge, or from where the line leaves the bottom of the plot.
    const double c0 = std::max(xlo, last->context * std::pow(std::pow(10.0, ly0) / last->median, 1.0 / ref));
    const double t0 = last->median * std::pow(c0 / last->context, ref);
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-dasharray=\"4 "
        "4\" "
        "stroke-opacity=\"0.5\"/>\n",
        X(c0), Y(t0), X(last->context), Y(last->median), color);
  }
  const double ly = top + 20 + 22 * row;
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">slopes: least squares over</text>\n",
                   W - right + 12, ly + 4);
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">contexts 128..{}</text>\n", W - right + 12, ly + 20,
                   xhi);
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">dashed: slope 1 (cached) and</text>\n",
                   W - right + 12, ly + 44);
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">slope 2 (uncached) through</text>\n",
                   W - right + 12, ly + 60);
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">the last point</text>\n", W - right + 12, ly + 76);
  s += "</svg>\n";
  return s;
}

constexpr const char* kUsage =
    "usage: cost_curve [--csv FILE] [--svg FILE] [--reps N] [--min-time S] [--max-context T]\n"
    "                  [--model F.safetensors] [--llamacpp]\n"
    "The cost of one token as the context grows, cached and uncached, as a CSV (default\n"
    "cost_curve.csv) and a log-log SVG plot (default cost_curve.svg): each point the min, median\n"
    "and max of --reps repetitions (5) of as many calls as fit in --min-time seconds (0.2), at\n"
    "contexts 16, 32, ... up to --max-context (512). --llamacpp (cost_curve_llamacpp only) adds\n"
    "llama.cpp's paths on the same model. Exit status: 0 done, 2 a flag or the model refused,\n"
    "3 the CSV or plot could not be written, 1 an internal error (src/base/exit_status.h).\n";

struct Options {
  std::string csv_path = "cost_curve.csv", svg_path = "cost_curve.svg", model_path;
  int reps = 5, max_context = 512;
  double min_time = 0.2;
  bool llamacpp = false, help = false;
};

// An output file's folder must exist: the curve takes minutes, and its files are written last.
std::string output_path(const std::string& flag, const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (path.empty() || std::filesystem::is_directory(path, ec))
    fail("{}: '{}' is not a file name", flag, path);
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
    fail("{} {}: the folder {} does not exist", flag, path, parent.string());
  return path;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      o.help = true;
      return o;
    }
    if (a == "--llamacpp") {
#ifndef MINIINFER_HAVE_LLAMACPP
      fail("--llamacpp: this cost_curve was built without llama.cpp (use cost_curve_llamacpp)");
#endif
      o.llamacpp = true;
      continue;
    }
    static const std::set<std::string> valued = {"--csv",      "--svg",         "--reps",
                                                 "--min-time", "--max-context", "--model"};
    if (!valued.count(a)) fail("unknown flag {} (see cost_curve --help)", a);
    if (i + 1 >= argc) fail("flag {} needs a value", a);
    const std::string v = argv[++i];
    if (a == "--csv")
      o.csv_path = output_path(a, v);
    else if (a == "--svg")
      o.svg_path = output_path(a, v);
    else if (a == "--reps")
      o.reps = bench::whole_above_zero(a, v);
    else if (a == "--min-time")
      o.min_time = bench::number_above_zero(a, v, false);
    else if (a == "--max-context")
      o.max_context = bench::whole_above_zero(a, v);
    else
      o.model_path = v;
  }
  return o;
}

int run(const Options& opt, const Model& model) {
  const int reps = opt.reps, max_context = opt.max_context;
  const double min_time = opt.min_time;
  const bool llamacpp = opt.llamacpp;
  const int V = model.config.vocab_size;
  std::vector<Paths> engines;
  engines.push_back(paths_of("ours", std::make_shared<Engine>(model), std::make_shared<Engine>(model), V));
#ifdef MINIINFER_HAVE_LLAMACPP
  TempDir dir("cost_curve");
  const std::string gguf = dir.file("model.gguf");
  if (llamacpp) {
    write_gguf(gguf, model);
    for (bool flash : {false, true}) {
      const LlamaCppOptions o{.threads = 1, .flash_attn = flash, .eval_callback = false};
      engines.push_back(paths_of(flash ? "llama.cpp flash" : "llama.cpp", std::make_shared<LlamaCpp>(gguf, o),
                                 std::make_shared<LlamaCpp>(gguf, o), V));
    }
  }
#endif
  auto label = [](const Paths& e, const char* path) { return e.name + " " + path; };
  std::vector<Point> pts;
  for (int T = 16; T <= std::min(max_context, model.config.max_seq_len); T *= 2) {
    const std::vector<int> t = tokens(T, V, static_cast<uint64_t>(T));
    for (Paths& e : engines) e.prepare(t);
    std::vector<std::vector<double>> c(engines.size()), u(engines.size());
    for (int r = 0; r < reps; ++r)  // interleaved, so a burst of load hits every path
      for (size_t i = 0; i < engines.size(); ++i) {
        c[i].push_back(time_per_call(engines[i].decode, min_time));
        u[i].push_back(time_per_call(engines[i].full, min_time));
      }
    for (size_t i = 0; i < engines.size(); ++i) {
      for (auto* v : {&c[i], &u[i]}) std::sort(v->begin(), v->end());
      const size_t m = c[i].size() / 2;
      pts.push_back({T, label(engines[i], "cached"), c[i].front(), c[i][m], c[i].back()});
      pts.push_back({T, label(engines[i], "uncached"), u[i].front(), u[i][m], u[i].back()});
      std::fprintf(stderr, "context %3d: %s cached %8.2f us, uncached %9.2f us (medians)\n", T,
                   engines[i].name.c_str(), c[i][m] * 1e6, u[i][m] * 1e6);
    }
  }
  std::string csv = "context,path,min_us,median_us,max_us\n";
  for (const Point& p : pts)
    csv += fmt::format("{},{},{:.3f},{:.3f},{:.3f}\n", p.context, p.path, p.min * 1e6, p.median * 1e6,
                       p.max * 1e6);
  std::vector<std::pair<std::string, std::string>> lines = {{"ours uncached", "#d62728"},
                                                            {"ours cached", "#1f77b4"}};
  if (llamacpp)
    lines.insert(lines.end(), {{"llama.cpp uncached", "#ff9896"},
                               {"llama.cpp flash uncached", "#ffbb78"},
                               {"llama.cpp cached", "#aec7e8"},
                               {"llama.cpp flash cached", "#98df8a"}});
  // Whole files or nothing: a failed write leaves neither half a CSV nor half a plot.
  try {
    write_file_atomic(opt.csv_path, csv);
    write_file_atomic(opt.svg_path, svg(pts, lines));
  } catch (const Error& e) {
    std::fprintf(stderr, "cost_curve: %s\n", e.what());
    return kExitOutputLost;
  }
  for (const auto& [path, color] : lines) {
    std::printf("%s: slope %.2f over contexts 16..%d", path.c_str(), slope(pts, path, 16), max_context);
    // The long-context slope needs at least two points from 128 on.
    if (max_context >= 256) std::printf(", %.2f over 128..%d", slope(pts, path, 128), max_context);
    std::printf("\n");
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  Model model;
  try {
    options = parse_options(argc, argv);
    if (options.help) {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    model = options.model_path.empty() ? shipped_shape_model() : read_model(options.model_path);
  } catch (const std::exception& e) {  // a flag or the model
    std::fprintf(stderr, "cost_curve: %s\n", e.what());
    return kExitRefused;
  }
  try {
    return run(options, model);
  } catch (const std::exception& e) {  // the library's own: a bug
    std::fprintf(stderr, "cost_curve: internal error: %s\n", e.what());
    return kExitFailed;
  }
}
