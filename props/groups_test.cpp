// Groups of failures (groups.h): one block per (site, verdict, cause), with its smallest case.
#include "props/groups.h"

#include <catch2/catch.hpp>

#include "props/report.h"

using namespace miniinfer::props;

namespace {
Failure failure(int layer, const char* component, const char* verdict, int prompt_tokens) {
  Failure f;
  f.json = {{"headline", "h"}, {"verdict", verdict},
            {"first_parting", {{"layer", layer}, {"head", 0}, {"component", component}, {"slot", 3}}}};
  f.case_json = {{"prompts", {{{"ids", std::vector<int>(static_cast<size_t>(prompt_tokens), 2)}}}},
                 {"params", {{"max_new_tokens", 2}}}};
  return f;
}
}  // namespace

TEST_CASE("failures that share site, verdict and cause make one group, with its smallest case", "[groups]") {
  CHECK(case_tokens(failure(0, "k", "gross", 4).case_json) == 6);
  CHECK(groups_text().empty());  // nothing recorded yet
  record_group_member("p1", failure(0, "k-read", "gross", 5), "props --replay p1.case.json");
  CHECK(groups_text().empty());  // one failure: no closing block
  record_group_member("p6", failure(0, "k-read", "gross", 1), "props --replay p6.case.json");
  record_group_member("p3", failure(0, "k-read", "ulp-drift", 1), "props --replay p3.case.json");
  record_group_member("p8", failure(2, "k-read", "gross", 1), "props --replay p8.case.json");
  const auto groups = failure_groups();
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].members.size() == 2);
  CHECK(groups[0].smallest().property == "p6");
  CHECK(groups[0].cause == "forward");
  CHECK(groups_text() ==
        "props: 4 failures in 3 groups (by first parting site, verdict and cause):\n"
        "  group 1: layer 0, head 0, k-read; verdict gross; cause forward: 2 failures (p1 p6)\n"
        "    smallest: p6, 3 tokens: props --replay p6.case.json\n"
        "  group 2: layer 0, head 0, k-read; verdict ulp-drift; cause forward: 1 failure (p3)\n"
        "    smallest: p3, 3 tokens: props --replay p3.case.json\n"
        "  group 3: layer 2, head 0, k-read; verdict gross; cause forward: 1 failure (p8)\n"
        "    smallest: p8, 3 tokens: props --replay p8.case.json\n");
  CHECK(groups_json()[0]["count"] == 2);
  CHECK(groups_json()[0]["smallest"]["replay"] == "props --replay p6.case.json");
}
