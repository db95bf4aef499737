#include "props/junit.h"

#include <fmt/format.h>

#include <cstdint>

#include "props/expected.h"

namespace miniinfer::props {
namespace {

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
                            std::to_string(o.cases) + " cases" + (o.expected ? ": " + describe(*o.expected) : "")),
        attr("type", "unexpected-pass"), element_text(failure_text(o, program)));
  if (o.status == "expected-failure") {
    const std::string why = o.expected            ? describe(*o.expected)
                            : !o.headline.empty() ? o.headline
                                                  : first_line(o.counterexample);
    return fmt::format("      <skipped{}/>\n      <system-out>{}</system-out>\n",
                       attr("message", "expected failure: " + why), element_text(failure_text(o, program)));
  }
  if (o.status == "skipped")
    return fmt::format("      <skipped{}/>\n",
                       attr("message", o.headline.empty() ? "skipped" : "skipped: " + o.headline));
  return "";
}

}  // namespace


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
