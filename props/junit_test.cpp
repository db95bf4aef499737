// The JUnit writer's escaping: whatever a prompt, a counterexample or a path holds, the file
// stays well-formed XML 1.0 (props/junit_test.sh checks whole files with xmllint and a parser).
#include "props/junit.h"

#include <catch2/catch.hpp>

using miniinfer::props::junit_xml;
using miniinfer::props::PropertyOutcome;
using miniinfer::props::xml_escape;

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

TEST_CASE("xml_escape escapes markup and keeps newlines in attributes", "[junit]") {
  CHECK(xml_escape("a<b & c>\"d\" 'e'") == "a&lt;b &amp; c&gt;&quot;d&quot; &apos;e&apos;");
  CHECK(xml_escape("one\ntwo\tthree\r") == "one&#10;two&#9;three&#13;");
  CHECK(xml_escape("one\ntwo\tthree\r", false) == "one\ntwo\tthree&#13;");
  CHECK(xml_escape("Mañana él") == "Mañana él");
  CHECK(xml_escape("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");  // outside the BMP: allowed
}

TEST_CASE("xml_escape drops what XML 1.0 forbids and replaces bytes that are not UTF-8", "[junit]") {
  CHECK(xml_escape(std::string("a\0b\x01\x1b[31mc", 10)) == "ab[31mc");
  CHECK(xml_escape("\xEF\xBF\xBE|\xEF\xBF\xBF") == "|");  // U+FFFE, U+FFFF
  CHECK(xml_escape("x\xFFy") == "x\xEF\xBF\xBDy");        // a stray byte
  CHECK(xml_escape("\xC3") == "\xEF\xBF\xBD");            // cut short
  CHECK(xml_escape("\xC0\xBC") == "\xEF\xBF\xBD");        // overlong '<'
  CHECK(xml_escape("\xED\xA0\x80") == "\xEF\xBF\xBD");    // a surrogate
  CHECK(xml_escape("\xC3<") == "\xEF\xBF\xBD&lt;");       // the '<' survives
}

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
  CHECK(xml.find("reproduce: props --rc-seed=1 &apos;--rc-reproduce=AB&apos;") != std::string::npos);
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
