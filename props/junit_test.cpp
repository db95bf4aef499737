// The JUnit writer: a testcase per outcome, and whatever a prompt, a counterexample or a path
// holds, the file stays well-formed XML 1.0 (props/junit_test.sh checks whole files with xmllint
// and a parser; src/base/xml_test.cpp the escaping).
#include "props/junit.h"

#include <catch2/catch.hpp>

using miniinfer::props::junit_xml;
using miniinfer::props::PropertyOutcome;

namespace {
// Field by field: PropertyOutcome grows fields, and an aggregate initializer would have to list them all.
PropertyOutcome outcome(const std::string& id, const std::string& sentence, const std::string& status,
                        int cases, double seconds, const std::string& counterexample = "") {
  PropertyOutcome o;
  o.id = id, o.sentence = sentence, o.status = status, o.cases = cases, o.seconds = seconds;
  o.counterexample = counterexample;
  return o;
}
}  // namespace

TEST_CASE("junit_xml: a testcase per outcome, a failure's commands in its text", "[junit]") {
  PropertyOutcome failed =
      outcome("p6", "logits <equal> & \"same\"", "failed", 7, 0.5, "prompt: I \x1b wrked\n");
  failed.reproduce = "props --rc-seed=1 '--rc-reproduce=AB'";
  failed.case_file = "props-report/p6.case.json";
  failed.site = "layer 0, head 2, k-read";
  failed.cause = "cursor";
  failed.verdict = "cache bug";
  failed.headline = "the cache read one row late";
  const PropertyOutcome passed = outcome("p1", "tokens", "passed", 100, 1.25);
  const PropertyOutcome skipped = outcome("p7", "rows", "skipped", 0, 0.0);
  const std::string xml = junit_xml({passed, failed, skipped}, {{"seed", "1"}}, "build/props", 2.0);
  CHECK(xml.find("<testsuite name=\"props\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\"") !=
        std::string::npos);
  CHECK(xml.find("name=\"p1: tokens\" classname=\"props\" assertions=\"100\" time=\"1.250\"") !=
        std::string::npos);
  CHECK(xml.find("name=\"p6: logits &lt;equal&gt; &amp; &quot;same&quot;\"") != std::string::npos);
  CHECK(xml.find("<failure message=\"the cache read one row late\" type=\"cursor\">") != std::string::npos);
  CHECK(xml.find("first parting: layer 0, head 2, k-read; verdict: cache bug; cause: cursor") !=
        std::string::npos);
  CHECK(xml.find("reproduce: props --rc-seed=1 &#39;--rc-reproduce=AB&#39;") != std::string::npos);
  CHECK(xml.find("replay: build/props --replay props-report/p6.case.json") != std::string::npos);
  CHECK(xml.find("prompt: I  wrked") != std::string::npos);  // the escape byte dropped
  CHECK(xml.find("<skipped message=\"skipped\"/>") != std::string::npos);
  CHECK(xml.find("<property name=\"seed\" value=\"1\"/>") != std::string::npos);
}

TEST_CASE("junit_xml: an expected failure is skipped, an unexpected pass fails", "[junit]") {
  PropertyOutcome expected = outcome("p2", "s", "expected-failure", 3, 0.1, "case");
  expected.headline = "known: issue 12";
  const PropertyOutcome unexpected = outcome("p3", "s", "unexpected-pass", 50, 0.1);
  const std::string xml = junit_xml({expected, unexpected}, {}, "props", 0.2);
  CHECK(xml.find("failures=\"1\" errors=\"0\" skipped=\"1\"") != std::string::npos);
  CHECK(xml.find("<skipped message=\"expected failure: known: issue 12\"/>") != std::string::npos);
  CHECK(
      xml.find(
          "<failure message=\"unexpected pass: an expected failure (props/expected-failures.json) passed 50 "
          "cases\" type=\"unexpected-pass\">") != std::string::npos);
}
