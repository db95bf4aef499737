// One self-contained HTML page per failure (DIR/ID.report.html): the headline and verdict, the
// counterexample, the levels and first parting lines, the layer x head heatmap (inline SVG)
// whose cells open their per-component tables, the drill-down into the parting rows (cached
// against full recompute, element by element, with ULP), the reproduce and replay commands and
// the engine. Inline CSS and SVG and a few lines of plain JavaScript: no network, no library.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace miniinfer::props {

// `report`: the report JSON as written (with "case"); `text`: the text report; `svg`: the
// heatmap (heatmap_svg); `case_path`: where the case file lies (for the replay command);
// `reproduce`: the run's reproduce command, or empty (a replay has none).
std::string report_html(const std::string& id, const nlohmann::json& report, const std::string& text,
                        const std::string& svg, const std::string& case_path, const std::string& reproduce);

}  // namespace miniinfer::props
