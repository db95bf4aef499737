// A small SVG line-plot writer for loss curves: one or more named series over a shared x axis,
// "nice" ticks, a legend. Pure string output, no dependencies, deterministic bytes.
#pragma once
#include <string>
#include <vector>

namespace miniinfer::train {

struct Series {
  std::string name;
  std::string color;  // any SVG color, e.g. "#1f77b4"
  std::vector<double> x, y;
};

struct PlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 720, height = 420;
};

// Tick positions covering [lo, hi] at a 1, 2 or 5 times 10^k step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target);

std::string line_plot_svg(const std::vector<Series>& series, const PlotOptions& options);

}  // namespace miniinfer::train
