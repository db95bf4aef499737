#include "props/expected.h"

#include <catch2/catch.hpp>

#include <string>

#include "base/atomic_file.h"
#include "base/error.h"

using namespace miniinfer;
using namespace miniinfer::props;

namespace {

const std::string kGood =
    R"({"engine": "llamacpp", "settings": {"kv": "f16"}, "property": "p6", "level": "bits",
        "reason": "row-count-dependent matmul", "link": "experiments/23-llamacpp-cache/README.md"})";

// The file with one entry: kGood with `field` set to `value` (JSON), or removed when empty.
std::string with(const std::string& field, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(kGood);
  if (value.empty())
    j.erase(field);
  else
    j[field] = nlohmann::json::parse(value);
  return nlohmann::json::array({j}).dump();
}

}  // namespace

TEST_CASE("an expected-failures file is read entry by entry, with every field", "[expected]") {
  const auto list = parse_expected("x.json", "[" + kGood + "]");
  REQUIRE(list.size() == 1);
  CHECK(list[0].engine == "llamacpp");
  CHECK(list[0].settings == nlohmann::json{{"kv", "f16"}});
  CHECK(list[0].property == "p6");
  CHECK(list[0].level == "bits");
  CHECK(list[0].link == "experiments/23-llamacpp-cache/README.md");
  CHECK(list[0].strict);
  CHECK_FALSE(parse_expected("x.json", with("strict", "false"))[0].strict);
  CHECK(parse_expected("x.json", "[]").empty());
}

TEST_CASE("a bad expected-failures file is refused in one line naming the file, the entry and the problem",
          "[expected]") {
  CHECK_THROWS_WITH(parse_expected("x.json", "[{"), Catch::StartsWith("x.json: not valid JSON"));
  CHECK_THROWS_WITH(parse_expected("x.json", "{}"),
                    Catch::Contains("x.json: must be a JSON list of entries"));
  CHECK_THROWS_WITH(parse_expected("x.json", "[" + kGood + ", 3]"),
                    Catch::Contains("x.json: entry 2: must be a JSON object"));
  CHECK_THROWS_WITH(parse_expected("x.json", with("reason", "")),
                    Catch::Equals("x.json: entry 1 (p6): the field 'reason' is missing"));
  CHECK_THROWS_WITH(parse_expected("x.json", with("property", "\"p99\"")),
                    Catch::Equals("x.json: entry 1 (p99): unknown property id 'p99'"));
  CHECK_THROWS_WITH(parse_expected("x.json", with("level", "\"bitz\"")),
                    Catch::StartsWith("x.json: entry 1 (p6): level: "));
  CHECK_THROWS_WITH(parse_expected("x.json", with("engine", "\"vllm\"")),
                    Catch::StartsWith("x.json: entry 1 (p6): engine 'vllm' is not "));
  CHECK_THROWS_WITH(parse_expected("x.json", with("settings", "\"f16\"")),
                    Catch::StartsWith("x.json: entry 1 (p6): 'settings' must be an object"));
  CHECK_THROWS_WITH(parse_expected("x.json", with("link", "\"experiments/none/README.md\"")),
                    Catch::Contains("neither a URL nor a file of the source tree"));
  CHECK_THROWS_WITH(
      parse_expected("x.json", with("propery", "\"p6\"")),
      Catch::Equals("x.json: entry 1 (p6): unknown field 'propery' (the fields: engine, settings, property, "
                    "level, reason, link, strict)"));
  CHECK_THROWS_WITH(parse_expected("x.json", with("strict", "\"no\"")),
                    Catch::Equals("x.json: entry 1 (p6): 'strict' must be true or false"));
  CHECK_THROWS_WITH(parse_expected("x.json", "[" + kGood + ", " + kGood + "]"),
                    Catch::Equals("x.json: entry 2 (p6): repeats entry 1"));
  CHECK_THROWS_WITH(parse_expected("x.json", with("reason", "\"\"")),
                    Catch::Equals("x.json: entry 1 (p6): 'reason' must be a non-empty string"));
}

TEST_CASE("the checked-in expected-failures file is valid", "[expected]") {
  const std::string file = default_expected_file();
  REQUIRE_FALSE(file.empty());
  CHECK_FALSE(parse_expected(file, read_file(file)).empty());
}
