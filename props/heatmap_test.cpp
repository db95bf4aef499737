#include "props/heatmap.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "props/report_html.h"

using namespace miniinfer::props;

namespace {

// A two-layer, two-head report: layer 0 head 1 parts at k (37 ULP), everything else equal.
nlohmann::json small_report() {
  nlohmann::json table = nlohmann::json::array();
  auto comp = [](int differing, uint64_t ulp) {
    return nlohmann::json{{"differing", differing}, {"total", 16}, {"max_ulp", ulp}, {"max_abs", differing ? 1e-6 : 0.0}};
  };
  for (int l = 0; l < 2; ++l) {
    table.push_back({{"layer", l}, {"head", -1}, {"components", {{"block", comp(l == 1 ? 3 : 0, l == 1 ? 5 : 0)}}}});
    for (int h = 0; h < 2; ++h)
      table.push_back({{"layer", l}, {"head", h},
                       {"components", {{"q", comp(0, 0)}, {"k", comp(l == 0 && h == 1 ? 2 : 0, l == 0 && h == 1 ? 37 : 0)}}}});
  }
  return {{"property", "p6"}, {"headline", "cached <b>&</b> \"uncached\" part"}, {"verdict", "ulp-drift"}, {"table", table},
          {"first_parting", {{"layer", 0}, {"head", 1}, {"component", "k"}, {"position", 2}, {"max_ulp", 37}}},
          {"case", {{"prompts", {{{"text", "I <script>alert(1)</script>"}, {"ids", {2}}}}}}}};
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("the heatmap colours a cell by its largest ULP distance and marks the first parting cell", "[heatmap]") {
  const std::string svg = heatmap_svg(small_report(), "p6: title");
  CHECK(svg.rfind("<svg ", 0) == 0);
  CHECK(count(svg, "class=\"cell\"") == 6);  // 2 layers x (all heads + 2 heads)
  CHECK(svg.find("data-cell=\"cell-L0-H1\" data-max-ulp=\"37\"") != std::string::npos);
  CHECK(svg.find("fill=\"" + ulp_colour(37) + "\"") != std::string::npos);
  CHECK(count(svg, "class=\"first-parting\"") == 1);
  CHECK(svg.find("<g class=\"first-parting\" data-cell=\"cell-L0-H1\"") != std::string::npos);
  CHECK(svg.find("cached &lt;b&gt;&amp;&lt;/b&gt; &quot;uncached&quot; part") != std::string::npos);
  CHECK(svg.find("<b>") == std::string::npos);
}

TEST_CASE("the heatmap's scale: white for 0, darker with every decade, shape and NaN off the scale", "[heatmap]") {
  CHECK(ulp_colour(0) == "#ffffff");
  auto luminance = [](const std::string& c) {
    return 0.299 * std::stoi(c.substr(1, 2), nullptr, 16) + 0.587 * std::stoi(c.substr(3, 2), nullptr, 16) +
           0.114 * std::stoi(c.substr(5, 2), nullptr, 16);
  };
  double last = luminance("#ffffff");
  for (uint64_t u : {1ull, 10ull, 100ull, 1000ull, 100000ull, 10000000ull, 2000000000ull}) {
    CHECK(luminance(ulp_colour(u)) < last);
    last = luminance(ulp_colour(u));
  }
  CHECK(ulp_colour(UINT64_MAX) == ulp_colour(UINT64_MAX - 1));
  CHECK(ulp_colour(UINT64_MAX) != ulp_colour(2000000000ull));
  CHECK(ulp_label(UINT64_MAX) == "shape");
  CHECK(ulp_label(UINT64_MAX - 1) == "NaN");
  CHECK(ulp_label(2218272137ull) == "2.2e9");
}

TEST_CASE("a report without per-head data gets a picture that says so and names the cause, never an empty file", "[heatmap]") {
  const std::string empty = heatmap_svg(nlohmann::json::object(), "p11");
  CHECK(empty.find("No per-layer, per-head data") != std::string::npos);
  const nlohmann::json cursor = {{"headline", "h"}, {"cause", "cursor"},
                                 {"first_parting", {{"layer", 0}, {"head", -1}, {"component", "cursor"}, {"slot", 3}}}};
  const std::string svg = heatmap_svg(cursor, "p11");
  CHECK(svg.find("Cause: cursor") != std::string::npos);
  CHECK(svg.find("class=\"cell\"") == std::string::npos);
}

TEST_CASE("parting rows hold both paths' values with their ULP, at most kPartingRowsMax of them", "[heatmap]") {
  std::vector<float> a(300, 1.0f), b(300, 1.0f);
  b[1] = std::nextafter(1.0f, 2.0f);
  a[2] = std::numeric_limits<float>::quiet_NaN();
  const nlohmann::json j = parting_rows_json("k", 1, 2, "slot", 4, a, b);
  CHECK(j["slot"] == 4);
  CHECK(j["cached"].size() == kPartingRowsMax);
  CHECK(j["more"] == 300 - kPartingRowsMax);
  CHECK(j["ulp"][0] == 0);
  CHECK(j["ulp"][1] == 1);
  CHECK(j["cached"][2] == "nan");  // JSON has no NaN: it is kept as text
  CHECK(j["ulp"][2] == UINT64_MAX - 1);
  const nlohmann::json shorter = parting_rows_json("k", 0, 0, "position", 0, std::vector<float>{0.1f}, std::vector<float>{});
  CHECK(shorter["recompute"][0].is_null());
  CHECK(shorter["ulp"][0] == UINT64_MAX);
  CHECK(shorter["cached"][0].get<float>() == 0.1f);  // the shortest decimal reads back to the float
}

TEST_CASE("the HTML report escapes every string it shows and opens the first parting cell's table", "[heatmap]") {
  nlohmann::json r = small_report();
  r["parting_rows"] = parting_rows_json("k", 0, 1, "position", 2, std::vector<float>{1.0f, 2.0f},
                                        std::vector<float>{1.0f, 2.5f});
  const std::string html = report_html("p6", r, "  verdict: <gross>\n", heatmap_svg(r, "t"), "dir/p6.case.json",
                                       "props --rc-reproduce='x&y'");
  CHECK(html.find("<script>alert") == std::string::npos);
  CHECK(html.find("I &lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
  CHECK(html.find("verdict: &lt;gross&gt;") != std::string::npos);
  CHECK(html.find("props --rc-reproduce=&#39;x&amp;y&#39;") != std::string::npos);
  CHECK(html.find("props --replay dir/p6.case.json") != std::string::npos);
  CHECK(html.find("<details class=\"cell\" id=\"cell-L0-H1\" open>") != std::string::npos);
  CHECK(count(html, "<tr class=\"differ\"><td>1</td>") == 1);  // element 1 differs, element 0 does not
  CHECK(count(html, "<tr class=\"differ\"><td>0</td>") == 0);
}
