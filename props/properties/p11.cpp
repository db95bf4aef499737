// p11: the model-based property (props/history.h). Random programs of appends, batched and
// continuous-batching decodes, truncations, forks and resets over up to 8 sequences; every
// call's logits and every cache row equal full recompute, and a command the engine must refuse
// changes nothing. Its case is a program; after the run it prints its command mix.
// It runs on the engine under test, whichever it is (props/history.cpp says how): with K/V
// rows, logits and rows are checked; without them, every call's logits against the engine's
// own full recompute ("logits only" on the mix line); on an engine holding more than 12
// positions per sequence the calls the model refuses are not sent ("refusals not checked").
// On an engine with a prefix cache (ours with --kv-cache paged) the programs also submit and
// free, on a small pool, and each runs again on a placement twin (props/history.h).
#include <fmt/format.h>

#include "props/history.h"
#include "props/level.h"
#include "props/property.h"

namespace miniinfer::props {
namespace {

class P11 final : public Property {
 public:
  P11()
      : Property({"p11",
                  "over random programs on up to 8 sequences, logits and cache rows equal full recompute, and refused "
                  "commands change nothing",
                  200, {},
                  "over random programs of appends, batched and continuous decodes, truncations, forks and resets on "
                  "up to 8 sequences, every call's logits and every cache row equal full recompute"}) {}

  void run_case() const override { check_histories(); }
  std::string skip_reason(const EngineUnderTest& engine) const override {
    if (std::string why = Property::skip_reason(engine); !why.empty()) return why;
    if (run_level().kind != Level::Bits)
      return "p11 checks at the bits level only (its model compares logits and rows byte for byte)";
    return "";
  }
  void after_run() const override { std::printf("%s\n", history_mix().c_str()); }
  std::unique_ptr<LoadedCase> load(const nlohmann::json& j) const override {
    struct Loaded final : LoadedCase {
      explicit Loaded(Program p) : program(std::move(p)) {}
      std::string summary() const override {
        return fmt::format("p11, a program of {} commands on {} sequences", program.steps.size(), program.batch);
      }
      const char* noun() const override { return "program"; }
      std::optional<std::string> check() override {
        try {
          crashed = false;
          return check_program(program);
        } catch (const EngineCrashed& e) {
          crashed = true;
          return std::string(e.what());
        }
      }
      Failure report(const std::string& headline) const override {
        return crashed ? crash_report(program, headline) : report_program(program, headline);
      }
      Program program;
      bool crashed = false;
    };
    return std::make_unique<Loaded>(program_from_json(j));
  }
};

}  // namespace

const Property& p11() {
  static const P11 property;
  return property;
}

}  // namespace miniinfer::props
