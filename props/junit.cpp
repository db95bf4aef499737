#include "props/junit.h"

#include <fmt/format.h>

#include <cstdint>

namespace miniinfer::props {
namespace {

// Decodes one UTF-8 character at text[i] (advancing i); an invalid sequence is U+FFFD.
char32_t next_char(std::string_view text, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  int extra = 0;
  char32_t c = 0, min = 0;
  if (lead < 0x80) {
    ++i;
    return lead;
  } else if ((lead & 0xE0) == 0xC0) {
    extra = 1, c = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    extra = 2, c = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    extra = 3, c = lead & 0x07, min = 0x10000;
  } else {
    ++i;
    return 0xFFFD;
  }
  size_t k = i + 1;
  for (; k <= i + extra; ++k) {
    if (k >= text.size() || (byte(k) & 0xC0) != 0x80) break;
    c = (c << 6) | (byte(k) & 0x3F);
  }
  const bool whole = k == i + extra + 1;
  i = k;
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 either.
  if (!whole || c < min || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) return 0xFFFD;
  return c;
}

bool xml_allowed(char32_t c) {
  return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD) ||
         (c >= 0x10000 && c <= 0x10FFFF);
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string attr(const char* name, std::string_view value) {
  return fmt::format(" {}=\"{}\"", name, xml_escape(value));
}

std::string element_text(std::string_view body) { return xml_escape(body, false); }

// A failure's text: what a CI page shows under the test, enough to act on without the log.
std::string failure_text(const PropertyOutcome& o, const std::string& program) {
  std::string text;
  if (!o.headline.empty()) text += o.headline + "\n";
  if (!o.site.empty())
    text += fmt::format("first parting: {}{}{}\n", o.site, o.verdict.empty() ? "" : "; verdict: " + o.verdict,
                        o.cause.empty() ? "" : "; cause: " + o.cause);
  if (!o.counterexample.empty()) text += "counterexample (shrunk):\n" + o.counterexample + "\n";
  if (!o.reproduce.empty()) text += "reproduce: " + o.reproduce + "\n";
  if (!o.case_file.empty())
    text += "replay: " + shell_quote(program) + " --replay " + shell_quote(o.case_file) + "\n";
  return text;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// The testcase's child: <failure>, <skipped> (with the failure it expected as system-out), or none.
std::string testcase_body(const PropertyOutcome& o, const std::string& program) {
  if (o.status == "failed") {
    const std::string message = !o.headline.empty() ? o.headline : first_line(o.counterexample);
    return fmt::format(
        "      <failure{}{}>{}</failure>\n", attr("message", message.empty() ? "failed" : message),
        attr("type", o.cause.empty() ? "failed" : o.cause), element_text(failure_text(o, program)));
  }
  if (o.status == "unexpected-pass")
    return fmt::format(
        "      <failure{}{}>{}</failure>\n",
        attr("message", "unexpected pass: an expected failure (props/expected-failures.json) passed " +
                            std::to_string(o.cases) + " cases" + (o.expected.empty() ? "" : ": " + o.expected)),
        attr("type", "unexpected-pass"), element_text(failure_text(o, program)));
  if (o.status == "expected-failure") {
    const std::string why = !o.expected.empty() ? o.expected : !o.headline.empty() ? o.headline : first_line(o.counterexample);
    return fmt::format("      <skipped{}/>\n      <system-out>{}</system-out>\n",
                       attr("message", "expected failure: " + why), element_text(failure_text(o, program)));
  }
  if (o.status == "skipped")
    return fmt::format("      <skipped{}/>\n",
                       attr("message", o.headline.empty() ? "skipped" : "skipped: " + o.headline));
  return "";
}

}  // namespace

std::string xml_escape(std::string_view text, bool in_attribute) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const char32_t c = next_char(text, i);
    if (!xml_allowed(c)) continue;
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\t':
        out += in_attribute ? "&#9;" : "\t";
        break;
      case '\n':
        out += in_attribute ? "&#10;" : "\n";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        append_utf8(out, c);
    }
  }
  return out;
}

std::string junit_xml(const std::vector<PropertyOutcome>& outcomes,
                      const std::vector<std::pair<std::string, std::string>>& settings,
                      const std::string& program, double seconds) {
  int failures = 0, skipped = 0;
  for (const PropertyOutcome& o : outcomes) {
    failures += o.status == "failed" || o.status == "unexpected-pass";
    skipped += o.status == "skipped" || o.status == "expected-failure";
  }
  const std::string counts =
      fmt::format(" tests=\"{}\" failures=\"{}\" errors=\"0\"", outcomes.size(), failures);
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  xml += fmt::format("<testsuites name=\"props\"{} time=\"{:.3f}\">\n", counts, seconds);
  xml += fmt::format("  <testsuite name=\"props\"{} skipped=\"{}\" time=\"{:.3f}\">\n", counts, skipped,
                     seconds);
  xml += "    <properties>\n";
  for (const auto& [name, value] : settings)
    xml += fmt::format("      <property{}{}/>\n", attr("name", name), attr("value", value));
  xml += "    </properties>\n";
  for (const PropertyOutcome& o : outcomes) {
    const std::string body = testcase_body(o, program);
    xml += fmt::format("    <testcase{}{} assertions=\"{}\" time=\"{:.3f}\"{}",
                       attr("name", o.id + ": " + o.sentence), attr("classname", "props"), o.cases, o.seconds,
                       attr("status", o.status));
    xml += body.empty() ? "/>\n" : ">\n" + body + "    </testcase>\n";
  }
  return xml + "  </testsuite>\n</testsuites>\n";
}

}  // namespace miniinfer::props
