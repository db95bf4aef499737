#include "props/report_html.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "base/xml.h"
#include "props/heatmap.h"

namespace miniinfer::props {
namespace {

std::string esc(const std::string& s) { return xml_escape(s, false); }

std::string str(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// A table cell coloured as the heatmap colours that ULP distance, with readable text.
std::string swatch(uint64_t ulp) {
  const std::string fill = ulp_colour(ulp);
  return "background:" + fill + (dark_colour(fill) ? ";color:#fff" : "");
}

std::string cell_id(int layer, int head) {
  return fmt::format("cell-L{}-{}", layer, head < 0 ? std::string("all") : fmt::format("H{}", head));
}

std::string head_name(int head) { return head < 0 ? std::string("all heads") : fmt::format("head {}", head); }

// The text report's lines that carry a finding (levels, verdict, first parting, ...).
std::vector<std::string> finding_lines(const std::string& text) {
  static const char* kPrefixes[] = {"levels:", "verdict:", "cause:", "first parting:", "first logits difference",
                                    "first token difference", "tokens:", "cursor:", "position:", "engine:", "machine:",
                                    "sampler:", "bookkeeping:", "poison:", "cross-sequence:"};
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t start = line.find_first_not_of(' ');
    if (start == std::string::npos) continue;
    const std::string t = line.substr(start);
    for (const char* p : kPrefixes)
      if (t.rfind(p, 0) == 0) {
        out.push_back(t);
        break;
      }
  }
  return out;
}

std::string counterexample(const nlohmann::json& c) {
  std::string o;
  if (c.contains("prompts") && c["prompts"].is_array()) {
    o += "<p>The prompt" + std::string(c["prompts"].size() == 1 ? "" : "s") + ":</p><ol class=\"prompts\" start=\"0\">";
    for (const auto& p : c["prompts"])
      o += "<li><q class=\"prompt\">" + esc(p.is_object() ? str(p.value("text", nlohmann::json(""))) : str(p)) + "</q> <span class=\"ids\">ids " +
           esc(p.is_object() && p.contains("ids") ? p["ids"].dump() : "") + "</span></li>";
    o += "</ol>";
  }
  if (c.contains("program") && c["program"].is_array()) {
    const int failing = c.value("failing_command", -1);
    o += "<p>The program (the failing command marked):</p><ol class=\"program\" start=\"0\">";
    int i = 0;
    for (const auto& step : c["program"]) {
      o += fmt::format("<li{}>{}</li>", i == failing ? " class=\"failing\"" : "",
                       esc(step.is_object() ? str(step.value("text", nlohmann::json(step.dump()))) : str(step)));
      ++i;
    }
    o += "</ol>";
  }
  std::string summary;
  for (const char* k : {"engine", "fault", "backend", "level", "params", "batch", "capacity"})
    if (c.contains(k) && !c[k].is_null()) summary += fmt::format("{}{}: {}", summary.empty() ? "" : "; ", k, str(c[k]));
  o += "<details id=\"case\"><summary>the case: " + esc(summary) + "</summary>";
  o += "<table class=\"kv\"><tr><th>case parameter</th><th>value</th></tr>";
  for (const auto& [k, v] : c.items()) {
    if (k == "prompts" || k == "program") continue;
    std::string s = str(v);
    if (s.size() > 300) s = s.substr(0, 300) + " ...";
    o += "<tr><td>" + esc(k) + "</td><td><code>" + esc(s) + "</code></td></tr>";
  }
  return o + "</table></details>";
}

// Per cell of the heatmap, its per-component table (opened by a click on the cell).
std::string cell_tables(const nlohmann::json& r) {
  const nlohmann::json fp = r.value("first_parting", nlohmann::json(nullptr));
  const int fl = fp.is_object() ? fp.value("layer", -2) : -2, fh = fp.is_object() ? fp.value("head", -2) : -2;
  std::string o;
  if (r.contains("table") && r["table"].is_array() && !r["table"].empty()) {
    for (const auto& row : r["table"]) {
      if (!row.is_object()) continue;  // a property's own "table" of another shape
      const int l = row.value("layer", 0), h = row.value("head", -1);
      const nlohmann::json comps = row.value("components", nlohmann::json::object());
      std::vector<std::string> names(std::begin(kComponents), std::end(kComponents));
      for (const auto& [k, v] : comps.items())
        if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
      uint64_t worst = 0;
      int differing = 0;
      std::string rows;
      for (const std::string& name : names) {
        if (!comps.contains(name)) continue;
        const auto& s = comps[name];
        if (s.value("total", 0) <= 0) continue;
        const int d = s.value("differing", 0);
        const uint64_t u = d > 0 ? as_ulp(s.value("max_ulp", nlohmann::json(0))) : 0;
        worst = std::max(worst, u);
        differing += d;
        const double abs = s.value("max_abs", 0.0);
        rows += fmt::format("<tr{}><td>{}</td><td>{} / {}</td><td style=\"{}\">{}</td><td>{}</td></tr>",
                            d > 0 ? " class=\"differ\"" : "", esc(name), d, s.value("total", 0), swatch(u),
                            esc(ulp_label(u)), d > 0 ? fmt::format("{:.3g}", abs) : "0");
      }
      const bool first = l == fl && h == fh;
      o += fmt::format("<details class=\"cell\" id=\"{}\"{}><summary>layer {}, {}: max {} ULP, {} element{} differ{}</summary>"
                       "<table><tr><th>component</th><th>differing / compared</th><th>max ULP</th><th>max |d|</th></tr>{}</table></details>\n",
                       cell_id(l, h), first ? " open" : "", l, head_name(h), esc(ulp_label(worst)), differing,
                       differing == 1 ? "" : "s", first ? " (the first parting)" : "", rows);
    }
  } else if (r.contains("differing_cache_rows") && r["differing_cache_rows"].is_array() && !r["differing_cache_rows"].empty()) {
    std::map<std::pair<int, int>, std::string> cells;
    for (const auto& row : r["differing_cache_rows"]) {
      const bool k = row.value("k", false), v = row.value("v", false);
      cells[{row.value("layer", 0), row.value("head", 0)}] +=
          fmt::format("<tr class=\"differ\"><td>{}</td><td>{}</td></tr>", row.value("slot", -1), k && v ? "K, V" : k ? "K" : "V");
    }
    for (const auto& [key, rows] : cells) {
      const bool first = key.first == fl && key.second == fh;
      o += fmt::format("<details class=\"cell\" id=\"{}\"{}><summary>layer {}, {}: cache rows that differ{}</summary>"
                       "<table><tr><th>slot</th><th>rows</th></tr>{}</table></details>\n",
                       cell_id(key.first, key.second), first ? " open" : "", key.first, head_name(key.second),
                       first ? " (the first parting)" : "", rows);
    }
  }
  return o;
}

// The drill-down: the parting row as the cached path and full recompute computed it.
std::string parting_rows(const nlohmann::json& r) {
  const nlohmann::json pr = r.value("parting_rows", nlohmann::json(nullptr));
  if (!pr.is_object() || !pr.contains("cached") || !pr.contains("recompute")) {
    std::string why = "the first parting is not a row of the forward pass or the cache";
    if (r.contains("cause")) why += " (cause: " + str(r["cause"]) + ")";
    else if (r.contains("first_parting") && r["first_parting"].is_object() && r["first_parting"].contains("component"))
      why += " (component: " + str(r["first_parting"]["component"]) + ")";
    return "<p id=\"no-parting-rows\">No rows to compare: " + esc(why) + ".</p>";
  }
  const std::string where = pr.contains("slot") ? "slot " + str(pr["slot"]) : pr.contains("position") ? "position " + str(pr["position"]) : "";
  const int head = pr.value("head", -1);
  std::string o = fmt::format("<p>Layer {}, {}, {}, {}: the row as the cached path and as full recompute computed it. "
                              "Differing elements are highlighted.</p>",
                              pr.value("layer", 0), esc(head_name(head)), esc(str(pr.value("component", nlohmann::json("")))), esc(where));
  o += "<table id=\"parting-rows\" class=\"rows\"><tr><th>element</th><th>cached</th><th>full recompute</th><th>|d|</th><th>ULP</th></tr>";
  const auto& a = pr["cached"];
  const auto& b = pr["recompute"];
  const nlohmann::json u = pr.value("ulp", nlohmann::json::array());
  int differ = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const nlohmann::json x = i < a.size() ? a[i] : nlohmann::json(nullptr), y = i < b.size() ? b[i] : nlohmann::json(nullptr);
    const uint64_t ulp = i < u.size() ? as_ulp(u[i]) : 0;
    std::string d = "";
    // The JSON holds each float as its shortest decimal: read back as float, then subtract.
    if (x.is_number() && y.is_number())
      d = fmt::format("{:.3g}", std::fabs(static_cast<double>(x.get<float>()) - static_cast<double>(y.get<float>())));
    differ += ulp != 0;
    o += fmt::format("<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"{}\">{}</td></tr>",
                     ulp ? " class=\"differ\"" : "", i, esc(x.is_null() ? "(none)" : str(x)), esc(y.is_null() ? "(none)" : str(y)),
                     esc(d), swatch(ulp), esc(ulp_label(ulp)));
  }
  o += "</table>";
  o += fmt::format("<p>{} of {} element{} differ{}.</p>", differ, std::max(a.size(), b.size()),
                   std::max(a.size(), b.size()) == 1 ? "" : "s",
                   pr.contains("more") ? fmt::format(" (the row has {} more, not shown)", str(pr["more"])) : "");
  return o;
}

std::string engine_lines(const nlohmann::json& r) {
  const nlohmann::json c = r.value("case", nlohmann::json::object());
  std::string rows;
  auto row = [&](const std::string& k, const nlohmann::json& v) {
    rows += "<tr><td>" + esc(k) + "</td><td><code>" + esc(str(v)) + "</code></td></tr>";
  };
  for (const char* k : {"machine", "engine", "engine_settings"})
    if (r.contains(k)) row(k, r[k]);
  for (const char* k : {"engine", "engine_settings", "backend", "fault", "level", "model", "model_sha256"})
    if (!r.contains(k) && c.contains(k)) row(k, c[k]);
  return rows.empty() ? "<p>(the report names no engine)</p>" : "<table class=\"kv\" id=\"engine\">" + rows + "</table>";
}

constexpr const char* kStyle = R"(
body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#111}
h1{font-size:22px;margin:0 0 6px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.headline{font-size:16px;background:#fff4f4;border-left:4px solid #c00;padding:8px 12px;overflow-wrap:anywhere}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;margin-right:8px;font-weight:600;background:#eee}
.badge.gross{background:#c00;color:#fff} .badge.ulp-drift,.badge.dtype-rounding{background:#f0c000}
.badge.bit-identical{background:#2a2;color:#fff}
pre,code{font-family:ui-monospace,monospace;font-size:13px} pre{background:#f6f6f6;padding:10px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:6px 0} td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}
td code{white-space:pre-wrap;overflow-wrap:anywhere} tr.differ td{background:#ffe3e3} .rows td{font-family:ui-monospace,monospace;font-size:13px}
.svg{overflow-x:auto} .svg svg{max-width:100%;height:auto} .svg a{cursor:pointer}
details.cell{margin:2px 0} details.cell summary{cursor:pointer} details.cell:target summary{outline:2px solid #0050ff}
li.failing{font-weight:600;color:#a00} li.failing::after{content:"  <- the failing command"}
.lines li{font-family:ui-monospace,monospace;font-size:13px;overflow-wrap:anywhere} .ids{color:#777;font-size:12px}
)";

}  // namespace

std::string report_html(const std::string& id, const nlohmann::json& r, const std::string& text, const std::string& svg,
                        const std::string& case_path, const std::string& reproduce) {
  const std::string property = str(r.value("property", nlohmann::json(id)));
  const std::string headline = str(r.value("headline", nlohmann::json("(no headline)")));
  std::string o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>props " + esc(id) + ": " +
                  esc(headline) + "</title>\n<style>" + kStyle + "</style></head><body>\n";
  o += "<h1 id=\"title\">" + esc(id) + " failed: the cached path and full recompute part</h1>\n";
  o += "<p class=\"headline\" id=\"headline\">" + esc(headline) + "</p>\n<p id=\"verdict\">";
  o += r.contains("verdict") ? "<span class=\"badge " + esc(str(r["verdict"])) + "\">verdict: " + esc(str(r["verdict"])) + "</span>"
                             : "<span class=\"badge\">verdict: not judged</span>";
  if (r.contains("cause")) o += "<span class=\"badge\">cause: " + esc(str(r["cause"])) + "</span>";
  o += "<span class=\"badge\">property: " + esc(property) + "</span></p>\n";

  o += "<h2>The counterexample</h2>\n" + counterexample(r.value("case", nlohmann::json::object())) + "\n";

  o += "<h2>Levels, verdict and first parting</h2>\n<ul class=\"lines\" id=\"levels\">";
  const std::vector<std::string> lines = finding_lines(text);
  for (const std::string& l : lines) o += "<li>" + esc(l) + "</li>";
  if (r.contains("levels")) o += "<li>levels (JSON): " + esc(str(r["levels"])) + "</li>";
  if (lines.empty() && !r.contains("levels")) o += "<li>(no level or verdict line in the report)</li>";
  o += "</ul>\n";

  const std::string cells = cell_tables(r);
  o += "<h2>Where the paths part: layer &times; head</h2>\n";
  if (!cells.empty()) o += "<p>Click a cell for its components.</p>\n";
  o += "<div class=\"svg\" id=\"heatmap\">" + svg + "</div>\n<div id=\"cells\">" + cells + "</div>\n";

  o += "<h2>The parting rows</h2>\n<div id=\"drill-down\">" + parting_rows(r) + "</div>\n";

  o += "<h2>Reproduce</h2>\n";
  o += reproduce.empty() ? "<p id=\"reproduce\">(this report comes from a replay: the case file replays it)</p>\n"
                         : "<p>The run's reproduce command:</p><pre id=\"reproduce\">" + esc(reproduce) + "</pre>\n";
  o += "<p>Replay the saved case:</p><pre id=\"replay\">props --replay " + esc(case_path) + "</pre>\n";

  o += "<h2>Engine and machine</h2>\n" + engine_lines(r) + "\n";
  o += "<h2>The text report</h2>\n<details id=\"text\"><summary>show</summary><pre>" + esc(text) + "</pre></details>\n";
  // A click on a heatmap cell goes to #cell-...: open that cell's table.
  o += "<script>function openCell(){var d=document.getElementById(decodeURIComponent(location.hash.slice(1)));"
       "if(d&&d.tagName==='DETAILS'){d.open=true;}}addEventListener('hashchange',openCell);openCell();</script>\n";
  return o + "</body></html>\n";
}

}  // namespace miniinfer::props
