// A scripted property over its own case type C (which derives from CaseCore): the property file
// says how to draw a C, check it, print it, which scenarios explain a failure, and which fields
// of the case file are its own; this template does the rest (the clean slate before each case,
// the failure's report closure, the case file, replay).
#pragma once
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <rapidcheck.h>

#include "base/error.h"
#include "props/case_core.h"
#include "props/context.h"
#include "props/property.h"
#include "props/runner.h"

namespace miniinfer::props {

// The engine a case runs on: the run's, or (p10) one the property builds for the case.
struct Target {
  std::shared_ptr<void> owned;  // whatever keeps `engine` alive
  EngineUnderTest* engine = nullptr;
};

template <class C>
class CaseProperty : public Property {
 public:
  using Property::Property;

  // Draws a case with *gen (and RC_TAGs it).
  virtual C draw() const = 0;
  // What differs, or nothing; may note the failing sequence in the case (c.seq, c.twice).
  virtual std::optional<std::string> check(EngineUnderTest& engine, C& c) const = 0;
  // The cached runs that may explain a failure (standard_scenarios for most).
  virtual std::vector<Scenario> scenarios(const C& c) const = 0;
  // What follows the prompts and parameters on the replay's line (" cut at 2 5").
  virtual std::string details(const C& /*c*/) const { return ""; }
  // Its own fields of the case file.
  virtual void write(const C& /*c*/, CaseFields& /*f*/) const {}
  virtual C read(const CaseFields& f) const = 0;  // throws Error naming what does not fit
  virtual Target target(const C& /*c*/) const { return {nullptr, context().subject.get()}; }

  // The report of a failing case: the scenarios, traced, until one locates the difference.
  virtual Failure report(const C& c, const std::string& headline) const {
    Target t = target(c);
    Failure f = report_scenarios(*t.engine, scenarios(c), id(), headline);
    f.case_json = to_json(c);
    return f;
  }

  // Each case starts from a clean slate, so a case's outcome never depends on the one before
  // (shrinking and replay need that); faults between requests show within one case (p3, p9).
  std::optional<std::string> run(C& c) const {
    Target t = target(c);
    t.engine->clean_slate();
    return check(*t.engine, c);
  }

  void run_case() const final {
    const C drawn = draw();
    C c = drawn;
    // Any exception is this case's failure, with this case's report: letting one escape would
    // leave RapidCheck failing the case while the reporter still holds an earlier case's closure.
    // An engine crash (EngineCrashed) runs the case once more (run_engine_case, runner.h).
    const CaseOutcome o =
        run_engine_case(std::string(id()) + " " + line(drawn), [&]() -> std::optional<std::string> {
          c = drawn;
          try {
            return run(c);
          } catch (const EngineCrashed&) {
            throw;
          } catch (const std::exception& e) {
            return std::string("the run stopped with an error: ") + e.what();
          } catch (...) {
            return std::string("the run stopped with an exception that is not a std::exception");
          }
        });
    if (o.what) {
      const std::string headline = *o.what;
      if (o.crashed)
        record_failure([this, c, headline] { return crash_report(c, headline); });
      else
        record_failure([this, c, headline] { return report(c, headline); });
      RC_FAIL(headline);
    }
  }

  // The report of a case the engine crashed on: the crash and the case, nothing re-run (the
  // engine would crash again).
  Failure crash_report(const C& c, const std::string& headline) const {
    Failure f;
    f.property = id();
    f.headline = headline;
    f.text = fmt::format("  {}\n  the case: {} {}\n", headline, id(), line(c));
    f.json = {{"property", id()}, {"headline", headline}, {"engine_crashed", true}};
    f.case_json = to_json(c);
    return f;
  }

  nlohmann::json to_json(const C& c) const {
    CaseFields f;
    f.property = id();
    f.core = c;
    write(c, f);
    return case_file_json(f);
  }

  std::string line(const C& c) const {
    const Tokenizer& tok = *context().tokenizer;
    std::ostringstream os;
    for (size_t i = 0; i < c.prompts.size(); ++i) os << (i ? ", " : "") << '"' << tok.decode(c.prompts[i]) << '"';
    os << " [" << c.params << "]" << details(c);
    return os.str();
  }

  std::unique_ptr<LoadedCase> load(const nlohmann::json& j) const final {
    struct Loaded final : LoadedCase {
      Loaded(const CaseProperty& p, C c) : p(p), c(std::move(c)) {}
      std::string summary() const override { return fmt::format("{} {}", p.id(), p.line(c)); }
      std::optional<std::string> check() override {
        try {
          crashed = false;
          return p.run(c);
        } catch (const EngineCrashed& e) {
          crashed = true;
          return std::string(e.what());
        }
      }
      Failure report(const std::string& headline) const override {
        return crashed ? p.crash_report(c, headline) : p.report(c, headline);
      }
      const CaseProperty& p;
      C c;
      bool crashed = false;
    };
    return std::make_unique<Loaded>(*this, read(case_fields_from_json(j)));
  }
};

}  // namespace miniinfer::props
