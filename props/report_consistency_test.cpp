// The verdict vocabulary (verdict.h): the thresholds at their edges, and the check that a
// report's lines agree with each other and with its JSON, on reports shaped like those props
// writes (the contradictions are the ones found in committed reports: experiment 23's p12 said
// "levels: tokens equal" under a headline whose tokens differ).
#include "props/verdict.h"

#include <catch2/catch.hpp>

#include <cmath>

#include "props/level.h"

using namespace miniinfer::props;

TEST_CASE("a measured difference gets one verdict, by the thresholds docs/verdicts.md writes down", "[verdict]") {
  const double scale = 2.0;
  CHECK(classify({0, 0.0, scale, 0}) == Verdict::BitIdentical);
  // float32 drift: up to 1e-4 of the scale, whatever the engine stores.
  CHECK(classify({40, kDriftRelative * scale, scale, 3}) == Verdict::UlpDrift);
  CHECK(classify({40, kDriftRelative * scale, scale, 3}, "f16") == Verdict::UlpDrift);
  const double above = std::nextafter(kDriftRelative * scale, 1.0);
  CHECK(classify({40, above, scale, 3}) == Verdict::Gross);
  // An F16 value: up to one F16 ULP of the scale (2^-10 of it) is its rounding.
  CHECK(classify({9000, above, scale, 3}, "f16") == Verdict::DtypeRounding);
  CHECK(classify({9000, 0x1p-10 * scale, scale, 3}, "f16") == Verdict::DtypeRounding);
  CHECK(classify({9000, std::nextafter(0x1p-10 * scale, 1.0), scale, 3}, "f16") == Verdict::Gross);
  CHECK(classify({9000, 0x1p-10 * scale, scale, 3}, "f32") == Verdict::Gross);
  // llama.cpp's block formats: up to one quantization step of the scale (1/127 for q8_0, 1/8 for q4_0).
  CHECK(classify({9000, scale / 127, scale, 3}, "q8_0") == Verdict::DtypeRounding);
  CHECK(classify({9000, std::nextafter(scale / 127, 1.0), scale, 3}, "q8_0") == Verdict::Gross);
  CHECK(classify({9000, scale / 8, scale, 3}, "q4_0") == Verdict::DtypeRounding);
  CHECK(classify({9000, std::nextafter(scale / 8, 1.0), scale, 3}, "q4_0") == Verdict::Gross);
  // A shape difference is never rounding; a sign of zero is drift.
  CHECK(classify({UINT64_MAX, 0.0, scale, 1}, "f16") == Verdict::Gross);
  CHECK(classify({0, 0.0, scale, 1}) == Verdict::UlpDrift);
  CHECK(classify_unmeasured() == Verdict::Gross);
}

TEST_CASE("only values read from the K/V cache are judged in the cache's dtype", "[verdict]") {
  for (const char* c : {"k-read", "v-read", "probs", "attn", "cache"}) CHECK(value_dtype(c, "f16") == "f16");
  for (const char* c : {"ln1", "q", "k", "v", "ln2", "mlp", "block", "position", "sampler"})
    CHECK(value_dtype(c, "f16") == "f32");
  CHECK(value_dtype("attn", "f32") == "f32");
}

TEST_CASE("the words are the shared JSON vocabulary, and the text forms map back to them", "[verdict]") {
  for (Verdict v : {Verdict::BitIdentical, Verdict::UlpDrift, Verdict::DtypeRounding, Verdict::Gross})
    CHECK(verdict_from_word(verdict_word(v)) == v);
  CHECK(std::string(verdict_word(Verdict::DtypeRounding)) == "dtype-rounding");
  CHECK_THROWS_WITH(verdict_from_word("drift"), Catch::Contains("is not a verdict"));
  CHECK(verdict_line(Verdict::DtypeRounding, "f16", 0, "attn") ==
        "  verdict: F16 rounding (within one F16 ULP of the engine's F16 K/V cache, not a wrong value) starting at "
        "layer 0 attn\n");
  CHECK(measure(std::vector<float>{1.0f, -0.0f}, std::vector<float>{1.0f, 0.0f}).differing == 1);
  CHECK(measure(std::vector<float>{1.0f}, std::vector<float>{1.0f, 2.0f}).max_ulp == UINT64_MAX);
}

namespace {

// A report as report_outside.cpp writes one, with its JSON.
struct Report {
  std::string text;
  nlohmann::json json;
};

Report outside(const std::string& headline, const std::string& levels, const std::string& verdict_text,
               const std::string& verdict) {
  Report r;
  r.text = "  " + headline + "\n  engine: llamacpp x.gguf (KV f16)\n  levels: " + levels +
           "\n  first parting: draw 1, the logits of position 1 after \"I have\"\n"
           "  first parting: layer 0, head 0, q at position 1 (max |d| 8.94e-08, 11/16 elements differ, max 10 ULP)\n"
           "  verdict: " + verdict_text + " starting at layer 0 q\n";
  r.json = {{"headline", headline}, {"levels", levels}, {"verdict", verdict},
            {"first_parting", {{"layer", 0}, {"head", 0}, {"component", "q"}, {"position", 1}, {"max_abs", 8.94e-08},
                               {"max_ulp", 10}}}};
  return r;
}

const std::string kTokensDiffer =
    "coins beside the sampler's edges, cached vs uncached: tokens differ first at step 4; tokens differ from step 4 "
    "(logits differ by at most 6144 ULP (max |d| 1.91e-06) from step 1)";

}  // namespace

TEST_CASE("a report whose lines agree passes the check", "[verdict]") {
  const Report r = outside(kTokensDiffer, "tokens differ from step 4 (logits differ by at most 6144 ULP)",
                           verdict_text(Verdict::UlpDrift), "ulp-drift");
  CHECK(report_contradictions(r.text, r.json).empty());
}

TEST_CASE("a report whose lines contradict each other is caught, line by line", "[verdict]") {
  SECTION("the headline says tokens differ, the levels line tokens equal (experiment 23's p12)") {
    const Report r = outside(kTokensDiffer, "tokens equal; logits differ by at most 209408 ULP from step 1",
                             verdict_text(Verdict::UlpDrift), "ulp-drift");
    const auto found = report_contradictions(r.text, r.json);
    REQUIRE(found.size() == 2);  // the text line and the JSON
    CHECK_THAT(found[0], Catch::Contains("the headline says tokens differ, the levels line"));
  }
  SECTION("the verdict line against the JSON verdict") {
    const Report r = outside(kTokensDiffer, "tokens differ from step 4", "gross error", "ulp-drift");
    CHECK_THAT(report_contradictions(r.text, r.json).at(0), Catch::Contains("against the JSON verdict ulp-drift"));
  }
  SECTION("a verdict word outside the vocabulary, and a JSON verdict no line prints") {
    Report r = outside(kTokensDiffer, "tokens differ from step 4", "gross error", "gross");
    r.json["verdict"] = "ULP drift";
    CHECK_THAT(report_contradictions(r.text, r.json).at(0), Catch::Contains("is not a verdict"));
    r.json["verdict"] = "gross";
    r.text = r.text.substr(0, r.text.find("  verdict:"));
    CHECK_THAT(report_contradictions(r.text, r.json).at(0), Catch::Contains("but no verdict line"));
  }
  SECTION("the first parting line against the JSON's layer and component") {
    Report r = outside(kTokensDiffer, "tokens differ from step 4", "gross error", "gross");
    r.json["first_parting"]["component"] = "k-read";
    CHECK_THAT(report_contradictions(r.text, r.json).at(0), Catch::Contains("JSON first parting layer 0 k-read"));
    r.json["first_parting"]["component"] = "q";
    r.json["first_parting"]["layer"] = 2;
    CHECK_THAT(report_contradictions(r.text, r.json).at(0), Catch::Contains("JSON first parting layer 2 q"));
  }
  SECTION("our engine's token lines against the headline") {
    nlohmann::json j = {{"headline", kTokensDiffer}, {"first_logit_step", 1}, {"first_token_step", nullptr}};
    const std::string text = "  " + kTokensDiffer +
                             "\n  tokens: identical (the difference stayed below the sampler's resolution)\n";
    const auto found = report_contradictions(text, j);
    REQUIRE(found.size() == 2);
    CHECK_THAT(found[0], Catch::Contains("'tokens: identical'"));
    CHECK_THAT(found[1], Catch::Contains("first_token_step is null"));
  }
  SECTION("a verdict without a first parting") {
    Report r = outside(kTokensDiffer, "tokens differ from step 4", "gross error", "gross");
    r.json.erase("first_parting");
    CHECK_THAT(report_contradictions(r.text, r.json).at(0), Catch::Contains("a verdict without a first parting"));
  }
}

TEST_CASE("the levels line and the headline come from one Closeness, so they cannot disagree", "[verdict]") {
  // judge() builds a headline from a Closeness; report_outside prints the same Closeness's
  // describe() as its levels line when it re-runs the runs the headline judged.
  const std::vector<float> a = {1.0f, 2.0f, 3.0f, 1.0f, 2.0f, 3.5f}, b = {1.0f, 2.0f, 3.0f, 1.0f, 2.0f, 3.0f};
  const Closeness c = compare_runs({1, 2}, {1, 5}, a, b, 3);
  const std::string headline = "x: tokens differ first at step 1; " + c.describe();
  const nlohmann::json j = {{"headline", headline}, {"levels", c.describe()}};
  CHECK(report_contradictions("  " + headline + "\n  levels: " + c.describe() + "\n", j).empty());
}
