// The SVG writer: nice ticks, and a plot that holds every series as a polyline.
#include "train/svg_plot.h"

#include <catch2/catch.hpp>

using namespace miniinfer::train;

namespace {
size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("ticks step by 1, 2 or 5 times a power of ten and cover the range") {
  CHECK(nice_ticks(0, 1000, 8) == std::vector<double>{0, 200, 400, 600, 800, 1000});
  CHECK(nice_ticks(1.3, 6.6, 6) == std::vector<double>{1, 2, 3, 4, 5, 6, 7});
  const auto t = nice_ticks(0.0, 0.7, 6);
  CHECK(t.front() == 0.0);
  CHECK(t.back() >= 0.7);
  CHECK(t[1] == Approx(0.2));  // 0.7 / 6 = 0.117 rounds up to a step of 2 * 10^-1
}

TEST_CASE("a line plot has one polyline per series, escaped labels, and closes its svg") {
  const Series a{"train", "#1f77b4", {1, 2, 3, 4}, {6.0, 4.0, 3.0, 2.5}};
  const Series b{"val <held-out>", "#d62728", {2, 4}, {4.2, 2.6}};
  const std::string svg = line_plot_svg({a, b}, {"loss & more", "step", "loss", 720, 420});
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.ends_with("</svg>\n"));
  CHECK(count(svg, "<polyline") == 2);
  CHECK(svg.find("loss &amp; more") != std::string::npos);
  CHECK(svg.find("val &lt;held-out&gt;") != std::string::npos);
  CHECK(svg.find("<held-out>") == std::string::npos);
  // Four points for the first series: three separating spaces inside its points list.
  const size_t at = svg.find("points=\"") + 8;
  const std::string points = svg.substr(at, svg.find('"', at) - at);
  CHECK(count(points, " ") == 3);
  CHECK(line_plot_svg({a, b}, {"loss & more", "step", "loss", 720, 420}) == svg);  // deterministic
}
