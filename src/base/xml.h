// One XML escaper for everything the project writes as XML: props' JUnit file, its SVG
// heatmaps and HTML report pages, the trainer's SVG plots.
#pragma once
#include <string>
#include <string_view>

namespace miniinfer {

// `text` made safe for an XML 1.0 attribute value (or, `in_attribute` false, element text):
// & < > " ' escaped, characters XML 1.0 forbids (other controls, U+FFFE, U+FFFF) dropped, bytes
// that are not UTF-8 replaced by U+FFFD, and carriage return as a character reference. In an
// attribute tab and newline are references too, since a parser would turn them into spaces.
std::string xml_escape(std::string_view text, bool in_attribute = true);

}  // namespace miniinfer
