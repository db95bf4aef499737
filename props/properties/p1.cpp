// p1: the lab's property. Cached and uncached generation give the same tokens over 64 new
// tokens; the logits are compared too, to say at which finer level a passing case parted.
#include "props/case_property.h"

namespace miniinfer::props {
namespace {

class P1 final : public CaseProperty<CaseCore> {
 public:
  P1() : CaseProperty({"p1", "cached and uncached generation give the same tokens over 64 new tokens", 100}) {}
  CaseCore draw() const override { return draw_single(64); }
  std::optional<std::string> check(EngineUnderTest& e, CaseCore& c) const override {
    return check_cached_equals_uncached(e, c, false);
  }
  std::vector<Scenario> scenarios(const CaseCore& c) const override { return generate_scenarios(c); }
  CaseCore read(const CaseFields& f) const override { return f.core; }
};

}  // namespace

const Property& p1() {
  static const P1 property;
  return property;
}

}  // namespace miniinfer::props
