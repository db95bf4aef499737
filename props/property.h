// A property is one declaration: its id and one-sentence statement, its default case count,
// the capabilities it needs, how it draws and checks a case, and how a saved case of it is read
// back. The runner, --replay, the sharder, the nightly and --list-tests read the list of them
// (property_list.cpp); a property lives in one file under props/properties/.
#pragma once
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "props/engines.h"
#include "props/report.h"

namespace miniinfer::props {

struct PropertyInfo {
  const char* id;         // "p6": tags, seeds, case files and report names
  const char* statement;  // one sentence, printed on the property's line
  int cases;              // cases by default; --rc-max-success=N scales them by N/100
  std::vector<Capability> needs = {};  // skipped, by name, on an engine that lacks one
  const char* test_name = nullptr;     // Catch2's test name, when it is not the statement (p11)
};

// A saved counterexample read back: it runs again on the engine under test and reports.
class LoadedCase {
 public:
  virtual ~LoadedCase() = default;
  virtual std::string summary() const = 0;  // "p6 \"Ayer yo\" [...]": the replay's line
  virtual const char* noun() const { return "case"; }  // "the case passes now"
  virtual std::optional<std::string> check() = 0;  // what differs, or nothing
  virtual Failure report(const std::string& headline) const = 0;
};

class Property {
 public:
  explicit Property(PropertyInfo info) : info_(std::move(info)) {}
  virtual ~Property() = default;
  const PropertyInfo& info() const { return info_; }
  const char* id() const { return info_.id; }

  // Draws one case (with *gen) and checks it; on a failure records its report
  // (record_failure) and fails the RapidCheck case.
  virtual void run_case() const = 0;
  // Why it cannot run on `engine`, or "": by default, the first capabilities it lacks.
  virtual std::string skip_reason(const EngineUnderTest& engine) const;
  // What it leaves unchecked on `engine`, or "" (p5's cache bytes on an engine without rows).
  virtual std::string unchecked(const EngineUnderTest& /*engine*/) const { return ""; }
  // After the run: a property's own closing line (p11's command mix).
  virtual void after_run() const {}
  // A saved case of this property; throws Error naming the bad field. The default: this
  // property saves no cases (p0).
  virtual std::unique_ptr<LoadedCase> load(const nlohmann::json& j) const;

 private:
  PropertyInfo info_;
};

// Every property, in the order a run checks them (the cheap, sharp ones first).
std::span<const Property* const> all_properties();
// The property with this id, or nullptr.
const Property* find_property(std::string_view id);

}  // namespace miniinfer::props
