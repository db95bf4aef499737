// props --junit FILE: the run as a JUnit XML report for CI, written after the run from the
// outcomes (props/runner.h), never mixed with props' own lines on stdout. It follows Jenkins'
// JUnit schema (junit-10.xsd; props/junit.xsd is the subset props writes): one <testsuite> for
// the run with its settings as <properties>, one <testcase> per property with its time and its
// case count as `assertions`, a failure's shrunk counterexample, reproduce and replay commands
// and first parting site in the <failure> text.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/xml.h"
#include "props/runner.h"

namespace miniinfer::props {

// The report: `settings` are the testsuite's <property> name/value pairs in order; `program`
// is props as invoked (for the replay command of a saved case); `seconds` the whole run's time.
std::string junit_xml(const std::vector<PropertyOutcome>& outcomes,
                      const std::vector<std::pair<std::string, std::string>>& settings,
                      const std::string& program, double seconds);

}  // namespace miniinfer::props
