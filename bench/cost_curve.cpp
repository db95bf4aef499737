// The cost of generating one token as the context grows, cached and uncached, as a CSV and a
// log-log SVG plot (docs/benchmarks.md shows it). A whole-program timer, not Google Benchmark:
// each point is the min, median and max over repetitions of the mean time of as many calls as
// fit in --min-time seconds. Random model of the shipped shape (V=900, D=64, L=4, H=4, F=256,
// max_seq_len 512).
//   cached at context T:   one Engine::decode step with T-1 tokens already in the cache;
//   uncached at context T: one forward_uncached of T tokens (the last position's logits), what
//                          generate(cache = false) does for every token.
//   cost_curve [--csv FILE] [--svg FILE] [--reps N] [--min-time S] [--max-context T]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "base/rng.h"
#include "engine/engine.h"

namespace {

using namespace miniinfer;
using Clock = std::chrono::steady_clock;

Model shipped_shape_model() {
  Config c;
  c.vocab_size = 900;
  c.d_model = 64;
  c.n_layer = 4;
  c.n_head = 4;
  c.d_ff = 256;
  c.max_seq_len = 512;
  std::vector<std::string> vocab;
  for (int i = 0; i < c.vocab_size; ++i) vocab.push_back("w" + std::to_string(i));
  return init_model(c, vocab, 1);
}

std::vector<int> tokens(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(900));
  return t;
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
  const double W = 800, H = 440, left = 80, right = 250, top = 40, bottom = 60;
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
    const Point* last = nullptr;
    for (const Point& p : pts)
      if (p.path == path) last = &p;
    const double ref = path == "cached" ? 1.0 : 2.0;
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

}  // namespace

int main(int argc, char** argv) {
  std::string csv_path = "cost_curve.csv", svg_path = "cost_curve.svg";
  int reps = 5, max_context = 512;
  double min_time = 0.2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--csv")
      csv_path = v;
    else if (a == "--svg")
      svg_path = v;
    else if (a == "--reps")
      reps = std::stoi(v);
    else if (a == "--min-time")
      min_time = std::stod(v);
    else if (a == "--max-context")
      max_context = std::stoi(v);
    else {
      std::fprintf(stderr, "cost_curve: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const Model model = shipped_shape_model();
  Engine cached(model), uncached(model);
  std::vector<float> logits(900);
  std::vector<Point> pts;
  for (int T = 16; T <= std::min(max_context, model.config.max_seq_len); T *= 2) {
    const std::vector<int> t = tokens(T, static_cast<uint64_t>(T));
    cached.reset();
    cached.forward_cached(0, std::span(t).first(static_cast<size_t>(T - 1)), logits);
    const int seq = 0, next = t.back();
    auto decode = [&] {
      cached.decode({&seq, 1}, {&next, 1}, logits);
      cached.truncate(0, T - 1);
    };
    auto full = [&] { uncached.forward_uncached(t, logits); };
    std::vector<double> c, u;
    for (int r = 0; r < reps; ++r) {  // interleaved, so a burst of load hits both paths
      c.push_back(time_per_call(decode, min_time));
      u.push_back(time_per_call(full, min_time));
    }
    for (auto* v : {&c, &u}) std::sort(v->begin(), v->end());
    pts.push_back({T, "cached", c.front(), c[c.size() / 2], c.back()});
    pts.push_back({T, "uncached", u.front(), u[u.size() / 2], u.back()});
    std::fprintf(stderr, "context %3d: cached %8.2f us, uncached %9.2f us (medians)\n", T,
                 c[c.size() / 2] * 1e6, u[u.size() / 2] * 1e6);
  }
  std::ofstream csv(csv_path);
  csv << "context,path,min_us,median_us,max_us\n";
  for (const Point& p : pts)
    csv << fmt::format("{},{},{:.3f},{:.3f},{:.3f}\n", p.context, p.path, p.min * 1e6, p.median * 1e6,
                       p.max * 1e6);
  std::ofstream svg_file(svg_path);
  svg_file << svg(pts, {{"uncached", "#d62728"}, {"cached", "#1f77b4"}});
  for (const char* path : {"cached", "uncached"})
    std::printf("%s: slope %.2f over contexts 16..%d, %.2f over 128..%d\n", path, slope(pts, path, 16),
                max_context, slope(pts, path, 128), max_context);
  if (!csv || !svg_file) {
    std::fprintf(stderr, "cost_curve: could not write %s or %s\n", csv_path.c_str(), svg_path.c_str());
    return 1;
  }
  return 0;
}
