// The picture of a failure: a layer x head heatmap drawn from the report's JSON (its "table",
// "first_parting", "differing_cache_rows", "parting_rows" and "cause"), so the picture always
// shows what the JSON says. A cell's colour is its largest ULP distance over every component,
// on a log scale; the first parting cell is outlined and labelled; the canvas is sized from
// its text. A report with no per-head data gets a picture that says so and names the cause.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

namespace miniinfer::props {

// The heatmap of `report` as a standalone SVG (never empty). Each cell links to
// "#cell-L<layer>-H<head>" ("-all" for the layer-level column), where report_html.cpp puts
// that cell's per-component table.
std::string heatmap_svg(const nlohmann::json& report, const std::string& title);

// The rows the two paths computed at the first parting site, for the drill-down: component,
// layer, head, which row (`where` = "slot" or "position", `at`), and per element the cached
// and full-recompute values and their ULP distance. At most kPartingRowsMax elements (the
// count of the rest in "more").
constexpr size_t kPartingRowsMax = 256;
nlohmann::json parting_rows_json(const std::string& component, int layer, int head, const std::string& where, int at,
                                 std::span<const float> cached, std::span<const float> recompute);

// The reporter's traced components in dataflow order: report.cpp's table columns, the order
// the page lists a cell's components in.
inline constexpr const char* kComponents[] = {"ln1",    "q",     "k",    "v",   "k-read", "v-read",
                                              "probs",  "attn",  "ln2",  "mlp", "block"};

// A report's ULP value ("max_ulp", a parting row's "ulp") as a distance: 0 for none or a
// negative, a huge one written as a double read back.
uint64_t as_ulp(const nlohmann::json& v);

// The heatmap's colour for a ULP distance (white for 0), as "#rrggbb".
std::string ulp_colour(uint64_t ulp);
// Whether a "#rrggbb" fill needs white text.
bool dark_colour(const std::string& fill);
// A ULP distance as the heatmap writes it: "37", "2.2e9", "shape", "NaN".
std::string ulp_label(uint64_t ulp);

}  // namespace miniinfer::props
