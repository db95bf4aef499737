#include "props/level.h"

#include <catch2/catch.hpp>

#include <cmath>

#include "base/error.h"

using namespace miniinfer;
using namespace miniinfer::props;

TEST_CASE("levels are read from their names, and anything else is refused naming the forms", "[level]") {
  CHECK(level_from_name("bits").kind == Level::Bits);
  CHECK(level_from_name("tokens").kind == Level::Tokens);
  const Level u = level_from_name("ulp:4");
  CHECK(u.kind == Level::Ulp);
  CHECK(u.ulp == 4);
  CHECK(to_string(u) == "ulp:4");
  for (const char* bad : {"", "bit", "ulp:", "ulp:-1", "ulp:x", "ulp:1234567890", "Tokens"})
    CHECK_THROWS_WITH(level_from_name(bad), Catch::Contains("is not a level"));
}

TEST_CASE("a comparison measures every level at once, and each level holds only as far as it should", "[level]") {
  const int V = 3;
  const std::vector<float> a = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  SECTION("bit-identical runs hold at every level") {
    const Closeness c = compare_runs({7, 8}, {7, 8}, a, a, V);
    CHECK(c.bit_identical());
    CHECK(c.describe() == "bit-identical");
    for (const char* level : {"bits", "ulp:0", "tokens"}) CHECK(c.holds(level_from_name(level)));
  }
  SECTION("logits 2 ULP apart from step 1, tokens equal: ulp:2 and tokens hold, bits and ulp:1 do not") {
    std::vector<float> b = a;
    b[4] = std::nextafter(std::nextafter(b[4], 10.0f), 10.0f);
    const Closeness c = compare_runs({7, 8}, {7, 8}, a, b, V);
    CHECK(c.bits_step == 1);
    CHECK(c.max_ulp == 2);
    CHECK_FALSE(c.holds(level_from_name("bits")));
    CHECK_FALSE(c.holds(level_from_name("ulp:1")));
    CHECK(c.holds(level_from_name("ulp:2")));
    CHECK(c.holds(level_from_name("tokens")));
    CHECK(c.describe().starts_with("tokens equal; logits differ by at most 2 ULP"));
    CHECK(c.describe().ends_with("from step 1"));
  }
  SECTION("tokens that part fail every level, and logits after the parting step are not compared") {
    std::vector<float> b = a;
    b[3] = 100.0f;  // step 1: where the tokens part (compared)
    const Closeness c = compare_runs({7, 8, 9}, {7, 9, 9}, a, b, V);
    CHECK(c.token_step == 1);
    CHECK(c.bits_step == 1);
    CHECK_FALSE(c.holds(level_from_name("tokens")));
    CHECK(c.describe().starts_with("tokens differ from step 1"));
  }
  SECTION("-0 against +0 is not bit-identical, but 0 ULP apart") {
    std::vector<float> x = {0.0f, 1.0f, 1.0f}, y = {-0.0f, 1.0f, 1.0f};
    const Closeness c = compare_logits(x, y, V);
    CHECK_FALSE(c.bit_identical());
    CHECK(c.max_ulp == 0);
    CHECK(c.holds(level_from_name("ulp:0")));
    CHECK(c.describe().find("sign of a zero") != std::string::npos);
  }
}

TEST_CASE("judge fails a comparison only below the run's level, and says the finer level either way", "[level]") {
  const int V = 2;
  const std::vector<float> a = {1.0f, 2.0f}, b = {1.0f, std::nextafter(2.0f, 3.0f)};
  const Closeness c = compare_runs({5}, {5}, a, b, V);
  set_run_level(level_from_name("bits"));
  begin_observing("t");
  const auto bits = judge("cached vs uncached", c, V, &a, &b);
  REQUIRE(bits);
  CHECK(*bits == "cached vs uncached: logits differ first at step 0 (token id 1); tokens equal; logits differ by at "
                 "most 1 ULP (max |d| 2.38e-07) from step 0");
  set_run_level(level_from_name("tokens"));
  CHECK_FALSE(judge("cached vs uncached", c, V, &a, &b));
  CHECK(observed().cases == 2);
  CHECK(observed().bit_identical == 0);
  CHECK(observed_summary().find("worst: tokens equal; logits differ by at most 1 ULP") != std::string::npos);
  set_run_level(level_from_name("bits"));
}
