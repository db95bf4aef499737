// The one XML escaper (base/xml.h): whatever a prompt, a counterexample or a label holds, the
// JUnit file, the heatmaps and the report pages stay well-formed XML 1.0.
#include "base/xml.h"

#include <catch2/catch.hpp>

using miniinfer::xml_escape;

TEST_CASE("xml_escape escapes markup and keeps newlines in attributes", "[xml]") {
  CHECK(xml_escape("a<b & c>\"d\" 'e'") == "a&lt;b &amp; c&gt;&quot;d&quot; &#39;e&#39;");
  CHECK(xml_escape("one\ntwo\tthree\r") == "one&#10;two&#9;three&#13;");
  CHECK(xml_escape("one\ntwo\tthree\r", false) == "one\ntwo\tthree&#13;");
  CHECK(xml_escape("Mañana él") == "Mañana él");
  CHECK(xml_escape("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");  // outside the BMP: allowed
}

TEST_CASE("xml_escape drops what XML 1.0 forbids and replaces bytes that are not UTF-8", "[xml]") {
  CHECK(xml_escape(std::string("a\0b\x01\x1b[31mc", 10)) == "ab[31mc");
  CHECK(xml_escape("\xEF\xBF\xBE|\xEF\xBF\xBF") == "|");  // U+FFFE, U+FFFF
  CHECK(xml_escape("x\xFFy") == "x\xEF\xBF\xBDy");        // a stray byte
  CHECK(xml_escape("\xC3") == "\xEF\xBF\xBD");            // cut short
  CHECK(xml_escape("\xC0\xBC") == "\xEF\xBF\xBD");        // overlong '<'
  CHECK(xml_escape("\xED\xA0\x80") == "\xEF\xBF\xBD");    // a surrogate
  CHECK(xml_escape("\xC3<") == "\xEF\xBF\xBD&lt;");       // the '<' survives
}
