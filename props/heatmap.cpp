#include "props/heatmap.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/xml.h"
#include "props/report.h"

namespace miniinfer::props {
uint64_t as_ulp(const nlohmann::json& v) {
  return v.is_number_unsigned() ? v.get<uint64_t>() : v.is_number() ? static_cast<uint64_t>(std::max(0.0, v.get<double>())) : 0;
}

namespace {

constexpr uint64_t kShape = UINT64_MAX;     // a row of another length (Stat::add)
constexpr uint64_t kNan = UINT64_MAX - 1;   // one side NaN (ulp_distance)
constexpr double kTopDecades = 9.633;       // log10(2^32): the farthest two finite floats lie
constexpr int kFont = 12, kSmall = 10;
// Monospace advance is 0.6 em (DejaVu Sans Mono 0.602); 0.62 keeps a margin for other fonts.
constexpr double kAdvance = 0.62;

int text_width(const std::string& s, int font) {
  size_t chars = 0;  // UTF-8: count code points, not bytes
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return static_cast<int>(std::ceil(static_cast<double>(chars) * kAdvance * font));
}

// Greedy word wrap at `width` characters; a longer word gets a line of its own.
std::vector<std::string> wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      lines.push_back(line);
      line.clear();
    }
    if (!word.empty()) line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty() || lines.empty()) lines.push_back(line);
  return lines;
}

// A sequential palette (ColorBrewer YlOrRd, from its second step): 1 ULP pale yellow, the
// farthest floats dark red; 0 is white and shape/NaN a dark purple outside the scale.
constexpr std::array<std::array<int, 3>, 8> kPalette = {{{255, 237, 160}, {254, 217, 118}, {254, 178, 76},
                                                         {253, 141, 60}, {252, 78, 42}, {227, 26, 28},
                                                         {189, 0, 38}, {128, 0, 38}}};
constexpr const char* kWhite = "#ffffff";
constexpr const char* kOffScale = "#3f007d";   // shape / NaN
constexpr const char* kUntraced = "#e6e6e6";   // no component traced
constexpr const char* kUnmeasured = "#9ecae1"; // cache rows differ, no ULP measured
constexpr const char* kMark = "#0050ff";       // the first parting

double scale_of(uint64_t ulp) { return std::clamp(std::log10(static_cast<double>(ulp)) / kTopDecades, 0.0, 1.0); }

std::string colour_at(double t) {
  const double x = t * (kPalette.size() - 1);
  const size_t i = std::min(static_cast<size_t>(x), kPalette.size() - 2);
  const double f = x - static_cast<double>(i);
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] = static_cast<int>(std::lround(kPalette[i][c] + f * (kPalette[i + 1][c] - kPalette[i][c])));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

}  // namespace

std::string ulp_colour(uint64_t ulp) {
  if (ulp == 0) return kWhite;
  if (ulp >= kNan) return kOffScale;
  return colour_at(scale_of(ulp));
}

namespace {

}  // namespace

bool dark_colour(const std::string& fill) {
  if (fill == kOffScale) return true;
  if (fill.size() != 7 || fill[0] != '#') return false;
  const int r = std::stoi(fill.substr(1, 2), nullptr, 16), g = std::stoi(fill.substr(3, 2), nullptr, 16),
            b = std::stoi(fill.substr(5, 2), nullptr, 16);
  return 0.299 * r + 0.587 * g + 0.114 * b < 140;
}

namespace {

}  // namespace

std::string ulp_label(uint64_t u) {
  if (u == kShape) return "shape";
  if (u == kNan) return "NaN";
  if (u < 10000) return std::to_string(u);
  const int e = static_cast<int>(std::floor(std::log10(static_cast<double>(u))));
  return fmt::format("{:.1f}e{}", static_cast<double>(u) / std::pow(10.0, e), e);
}

namespace {

struct Cell {
  bool traced = false;      // some component of it was compared
  int differing = 0;        // elements that differ, over every component
  uint64_t max_ulp = 0;     // the largest ULP distance over every component
  std::string worst;        // the component with that distance
  int cache_rows = 0;       // cache rows that differ (no ULP measured), when there is no table
};

std::string text_el(int x, int y, const std::string& s, const std::string& extra = "") {
  return fmt::format("<text x=\"{}\" y=\"{}\"{}>{}</text>\n", x, y, extra, xml_escape(s, false));
}

// The words for a report without per-head data: what parted, and why no heatmap.
std::vector<std::string> no_data_words(const nlohmann::json& r) {
  std::vector<std::string> words = {"No per-layer, per-head data for this failure."};
  const nlohmann::json fp = r.value("first_parting", nlohmann::json(nullptr));
  std::string cause = r.contains("cause") && r["cause"].is_string() ? r["cause"].get<std::string>() : "";
  std::string component = fp.is_object() && fp.contains("component") && fp["component"].is_string()
                              ? fp["component"].get<std::string>() : "";
  if (cause.empty() && !component.empty()) cause = component;
  words.push_back(cause.empty() ? "Cause: not named in the report (see the text report)."
                                : fmt::format("Cause: {} (the paths part outside the per-head forward pass).", cause));
  if (fp.is_object()) {
    std::string where = component.empty() ? "" : "the " + component;
    for (const char* key : {"layer", "head", "slot", "position"})
      if (fp.contains(key) && fp[key].is_number() && fp[key].get<double>() >= 0 && !(key == std::string("layer") && component != "cache" && fp.value("head", -1) < 0))
        where += fmt::format("{}{} {}", where.empty() ? "" : ", ", key, fp[key].dump());
    words.push_back("First parting: " + where + ".");
    if (fp.contains("what") && fp["what"].is_string()) words.push_back(fp["what"].get<std::string>());
  } else {
    words.push_back("No first parting was located.");
  }
  words.push_back("The text report says more.");
  return words;
}

}  // namespace

nlohmann::json parting_rows_json(const std::string& component, int layer, int head, const std::string& where, int at,
                                 std::span<const float> cached, std::span<const float> recompute) {
  nlohmann::json j = {{"component", component}, {"layer", layer}, {"head", head}, {where, at}};
  nlohmann::json a = nlohmann::json::array(), b = nlohmann::json::array(), u = nlohmann::json::array();
  const size_t n = std::max(cached.size(), recompute.size()), shown = std::min(n, kPartingRowsMax);
  // A float as its shortest decimal that reads back to it ("0.2959102", not the double's
  // "0.29591017961502075"); inf and NaN, which JSON has no number for, as text.
  auto value = [](std::span<const float> s, size_t i) {
    if (i >= s.size()) return nlohmann::json(nullptr);
    const std::string shortest = fmt::format("{}", s[i]);
    return std::isfinite(s[i]) ? nlohmann::json(std::stod(shortest)) : nlohmann::json(shortest);
  };
  for (size_t i = 0; i < shown; ++i) {
    a.push_back(value(cached, i));
    b.push_back(value(recompute, i));
    u.push_back(i < cached.size() && i < recompute.size() ? ulp_distance(cached[i], recompute[i]) : kShape);
  }
  j["cached"] = a;
  j["recompute"] = b;
  j["ulp"] = u;
  if (n > shown) j["more"] = n - shown;
  return j;
}

std::string heatmap_svg(const nlohmann::json& r, const std::string& title) {
  // The cells: the table's rows (layer, head; head -1 the layer-level components), else the
  // cache rows that differ (per layer and head, no ULP), the parting rows' ULPs on their cell.
  std::map<std::pair<int, int>, Cell> cells;
  int L = 0, H = 0;
  bool layer_column = false, unmeasured = false, untraced = false;
  const bool has_table = r.contains("table") && r["table"].is_array() && !r["table"].empty();
  if (has_table) {
    for (const auto& row : r["table"]) {
      if (!row.is_object()) continue;  // a property's own "table" of another shape
      const int l = row.value("layer", 0), h = row.value("head", -1);
      Cell& c = cells[{l, h}];
      const nlohmann::json components = row.value("components", nlohmann::json::object());
      for (const auto& [name, s] : components.items()) {
        if (s.value("total", 0) <= 0) continue;
        c.traced = true;
        const int d = s.value("differing", 0);
        c.differing += d;
        const uint64_t u = as_ulp(s.value("max_ulp", nlohmann::json(0)));
        if (d > 0 && (c.worst.empty() || u > c.max_ulp)) c.max_ulp = u, c.worst = name;
      }
      L = std::max(L, l + 1);
      H = std::max(H, h + 1);
      layer_column = layer_column || h < 0;
    }
  } else if (r.contains("differing_cache_rows") && r["differing_cache_rows"].is_array()) {
    for (const auto& row : r["differing_cache_rows"]) {
      const int l = row.value("layer", 0), h = row.value("head", 0);
      Cell& c = cells[{l, h}];
      c.traced = true;
      ++c.cache_rows;
      L = std::max(L, l + 1);
      H = std::max(H, h + 1);
    }
  }
  const nlohmann::json fp = r.value("first_parting", nlohmann::json(nullptr));
  const nlohmann::json pr = r.value("parting_rows", nlohmann::json(nullptr));
  if (pr.is_object() && pr.contains("ulp")) {  // the parting cell's distance is known
    // (also where the table has no column for it: the final LayerNorm after the last block)
    Cell& c = cells[{pr.value("layer", 0), pr.value("head", 0)}];
    uint64_t most = 0;
    for (const auto& u : pr["ulp"]) most = std::max(most, as_ulp(u));
    if (!has_table || most > c.max_ulp) {
      c.max_ulp = std::max(c.max_ulp, most);
      c.worst = pr.value("component", "");
      c.traced = true;
    }
  }
  for (const auto& [key, c] : cells) unmeasured = unmeasured || (c.cache_rows > 0 && c.worst.empty());

  const int margin = 16, line = 18;
  std::string body;
  int width = 0, y = margin;
  auto wrapped = [&](const std::string& s, size_t chars, int font, const std::string& extra) {
    for (const std::string& l : wrap(s, chars)) {
      y += font + 6;
      body += text_el(margin, y, l, extra);
      width = std::max(width, margin + text_width(l, font));
    }
  };
  wrapped(title, 90, 14, " font-size=\"14\" font-weight=\"bold\"");
  if (r.contains("headline") && r["headline"].is_string()) wrapped(r["headline"].get<std::string>(), 100, kFont, "");

  if (cells.empty() || L == 0 || H == 0) {  // no per-head data: say so, in words
    y += 8;
    const int box_top = y;
    for (const std::string& w : no_data_words(r)) wrapped(w, 90, kFont, "");
    y += 10;
    body += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\" "
                        "stroke-dasharray=\"4 3\"/>\n",
                        margin / 2, box_top, width, y - box_top);
    width += margin;
    y += margin;
    return fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                       "font-family=\"monospace\" font-size=\"{2}\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{3}</svg>\n",
                       width, y, kFont, body);
  }

  // The grid: rows are layers, columns heads (and "all heads" first when the table has them).
  std::vector<int> heads;
  if (layer_column) heads.push_back(-1);
  for (int h = 0; h < H; ++h) heads.push_back(h);
  auto head_name = [](int h) { return h < 0 ? std::string("all heads") : fmt::format("head {}", h); };
  int cell_w = 64;
  for (int h : heads) cell_w = std::max(cell_w, text_width(head_name(h), kFont) + 10);
  const int cell_h = 48;
  const int label_w = text_width(fmt::format("layer {}", L - 1), kFont) + 14;
  const int left = margin + label_w;
  y += 16;
  const int top = y + line;
  for (size_t i = 0; i < heads.size(); ++i)
    body += text_el(left + static_cast<int>(i) * cell_w + cell_w / 2, top - 6, head_name(heads[i]), " text-anchor=\"middle\"");
  const int fp_layer = fp.is_object() ? fp.value("layer", -2) : -2, fp_head = fp.is_object() ? fp.value("head", -2) : -2;
  std::string mark;
  for (int l = 0; l < L; ++l) {
    const int cy = top + l * cell_h;
    body += text_el(margin, cy + cell_h / 2 + 4, fmt::format("layer {}", l));
    for (size_t i = 0; i < heads.size(); ++i) {
      const int h = heads[i], cx = left + static_cast<int>(i) * cell_w;
      const auto it = cells.find({l, h});
      const Cell c = it == cells.end() ? Cell{} : it->second;
      std::string fill, label, sub;
      if (!c.traced && !has_table) {  // every cache row of this layer and head was compared: equal
        fill = kWhite, label = "0 rows", sub = "cache";
      } else if (!c.traced) {
        fill = kUntraced, label = "-", untraced = true;
      } else if (c.cache_rows > 0 && c.worst.empty()) {
        fill = kUnmeasured, label = fmt::format("{} row{}", c.cache_rows, c.cache_rows == 1 ? "" : "s"), sub = "cache";
      } else {
        fill = ulp_colour(c.max_ulp), label = ulp_label(c.max_ulp), sub = c.worst;
      }
      const std::string ink = dark_colour(fill) ? "#fff" : "#000";
      const std::string id = fmt::format("cell-L{}-{}", l, h < 0 ? std::string("all") : fmt::format("H{}", h));
      body += fmt::format("<a href=\"#{0}\"><g class=\"cell\" data-cell=\"{0}\" data-max-ulp=\"{1}\">"
                          "<title>layer {2}, {3}: max {4} ULP{5}</title>"
                          "<rect x=\"{6}\" y=\"{7}\" width=\"{8}\" height=\"{9}\" fill=\"{10}\" stroke=\"#999\"/>",
                          id, c.max_ulp, l, head_name(h), ulp_label(c.max_ulp), c.worst.empty() ? "" : " (" + xml_escape(c.worst, false) + ")",
                          cx, cy, cell_w, cell_h, fill);
      body += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>", cx + cell_w / 2,
                          cy + (sub.empty() ? cell_h / 2 + 6 : 28), ink, xml_escape(label, false));
      if (!sub.empty())
        body += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{}\" fill=\"{}\">{}</text>",
                            cx + cell_w / 2, cy + 42, kSmall, ink, xml_escape(sub, false));
      body += "</g></a>\n";
      if (l == fp_layer && (h == fp_head || (h == -1 && fp_head == -1)))
        mark = fmt::format("<g class=\"first-parting\" data-cell=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                           "fill=\"none\" stroke=\"{}\" stroke-width=\"4\"/>"
                           "<rect x=\"{}\" y=\"{}\" width=\"24\" height=\"13\" fill=\"{}\"/>"
                           "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"#fff\">1st</text></g>\n",
                           id, cx + 2, cy + 2, cell_w - 4, cell_h - 4, kMark, cx + 2, cy + 2, kMark, cx + 4, cy + 12,
                           kSmall);
    }
  }
  body += mark;  // drawn last: on top of its neighbours' borders
  width = std::max(width, left + static_cast<int>(heads.size()) * cell_w);
  y = top + L * cell_h + 8;

  // The first parting, in words under the grid.
  if (fp.is_object()) {
    std::string where = fmt::format("layer {}, {}", fp.value("layer", 0), fp.value("head", -1) < 0 ? std::string("all heads") : fmt::format("head {}", fp.value("head", 0)));
    if (fp.contains("component")) where += ", " + fp["component"].dump();
    for (const char* key : {"slot", "position"})
      if (fp.contains(key)) where += fmt::format(", {} {}", key, fp[key].dump());
    if (fp.contains("max_ulp")) where += fmt::format(", max {} ULP", ulp_label(as_ulp(fp["max_ulp"])));
    if (fp.contains("max_abs") && fp["max_abs"].is_number()) where += fmt::format(", max |d| {:.3g}", fp["max_abs"].get<double>());
    std::erase(where, '"');
    const bool shown = !mark.empty();
    y += 6;
    if (shown) body += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"none\" stroke=\"{}\" stroke-width=\"3\"/>\n",
                                   margin, y + 4, kMark);
    const int x0 = margin + 20;
    for (const std::string& l : wrap((shown ? "first parting: " : "first parting (not a cell of this grid): ") + where, 90)) {
      y += line;
      body += text_el(x0, y, l);
      width = std::max(width, x0 + text_width(l, kFont));
    }
  } else {
    y += line + 6;
    const std::string s = "no first parting located: no traced component differs";
    body += text_el(margin, y, s);
    width = std::max(width, margin + text_width(s, kFont));
  }

  // The legend: 0 white, then 1 ULP .. 2^32 ULP on a log scale, then shape/NaN, not traced.
  y += 14;
  const std::string caption = has_table ? "cell: the largest ULP distance over its components (ln1, q, k, v, cache reads, probs, attn, ln2, mlp, block), log scale"
                                        : "cell: the cache rows of that layer and head that differ from full recompute (up to the last layer and head that differs)";
  for (const std::string& l : wrap(caption, 90)) {
    y += line;
    body += text_el(margin, y, l);
    width = std::max(width, margin + text_width(l, kFont));
  }
  y += 22;
  const int bar_y = y, bar_h = 16, per_decade = 40, steps = 4;
  const int bar_x = margin + 30;  // a white "0" box first
  body += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"{}\" fill=\"#fff\" stroke=\"#999\"/>", margin, bar_y, bar_h);
  body += text_el(margin + 11, bar_y + bar_h + 16, "0", " text-anchor=\"middle\" font-size=\"10\"");
  const int decades = 10;
  for (int i = 0; i < decades * steps; ++i) {
    const double mid = (i + 0.5) / steps;  // in decades
    body += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>", bar_x + i * per_decade / steps,
                        bar_y, per_decade / steps + 1, bar_h, colour_at(std::min(1.0, mid / kTopDecades)));
  }
  body += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n", bar_x, bar_y,
                      decades * per_decade, bar_h);
  for (int d = 0; d <= decades - 1; ++d) {
    const std::string tick = d == 0 ? "1" : d == 1 ? "10" : d == 2 ? "100" : fmt::format("1e{}", d);
    const int x = bar_x + d * per_decade;
    body += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333\"/>", x, bar_y + bar_h, bar_y + bar_h + 4);
    body += text_el(x, bar_y + bar_h + 16, tick, " text-anchor=\"middle\" font-size=\"10\"");
  }
  body += text_el(bar_x, bar_y - 5, "few ULP: rounding drift", " font-size=\"10\"");
  body += text_el(bar_x + decades * per_decade, bar_y - 5, "gross: a wrong value", " font-size=\"10\" text-anchor=\"end\"");
  int x = bar_x + decades * per_decade + 14;
  auto swatch = [&](const char* fill, const std::string& name) {
    body += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"{}\" fill=\"{}\" stroke=\"#999\"/>", x, bar_y, bar_h, fill);
    body += text_el(x + 28, bar_y + 12, name);
    x += 28 + text_width(name, kFont) + 14;
  };
  swatch(kOffScale, "shape/NaN (gross)");
  if (untraced) swatch(kUntraced, "not traced");
  if (unmeasured) swatch(kUnmeasured, "differs, ULP not measured");
  width = std::max(width, x);
  y = bar_y + bar_h + 16 + margin;
  width += margin;
  return fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                     "font-family=\"monospace\" font-size=\"{2}\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{3}</svg>\n",
                     width, y, kFont, body);
}

}  // namespace miniinfer::props
