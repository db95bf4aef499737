// Expected failures (props/expected-failures.json, docs/failure-db.md): known findings in
// outside engines, each with its reason and the experiment that shows it. A failure such an
// entry expects is reported as XFAIL and does not fail the run; an entry whose property passed
// is reported as XPASS (remove the entry) and the run exits kExitUnexpectedPass.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "props/runner.h"

namespace miniinfer::props {

struct ExpectedFailure {
  std::string engine;       // as --engine names it
  nlohmann::json settings;  // a subset of the engine's settings that must match ({"kv": "f16"})
  std::string property;     // "p6"
  std::string level;        // as --level names it
  std::string reason;       // one line: why it fails
  std::string link;         // the experiment that shows it: a path from the source root, or a URL
  // false ("strict": false in the file): it fails for some seeds only, so a pass is no XPASS
  // (pytest's xfail(strict=False)); optional, true by default.
  bool strict = true;
};

// The file's entries, checked strictly: valid JSON, a list of objects with the fields above
// and no others (all but strict required), a known engine, property id and level, a non-empty reason, and a
// link to a file of the source tree (or an http(s) URL). Throws Error "FILE: entry N: problem".
std::vector<ExpectedFailure> parse_expected(const std::string& file, const std::string& text);

// The checked-in file, found as the default model is (the build's source folder); "" when
// the source tree is not there.
std::string default_expected_file();

// Reads `file` ("": none) for this run, after load_context: an entry for this run's engine
// must name settings the engine has (a misspelt key would never match). Throws Error.
void load_expected(const std::string& file);

// The entry that expects property `id` to fail in this run (engine, settings, level), or null.
const ExpectedFailure* expected_for(const std::string& id);

// "REASON (LINK)": the entry as one line, for JUnit's messages and the results file.
std::string describe(const ExpectedFailure& e);

// Settles a property's outcome against the entries: a failure one expects becomes
// "expected-failure" (an XFAIL line with the reason and link), a pass one expects to fail
// "unexpected-pass" (an XPASS line asking to remove the entry), unless the entry is not strict.
void settle_expected(PropertyOutcome& outcome);

}  // namespace miniinfer::props
