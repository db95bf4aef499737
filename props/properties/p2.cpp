// p2: p1 over 256 new tokens. 256 steps of full recompute cost ~30 times a 64-token case: 3
// cases by default; the nightly run's --rc-max-success=2000 makes that 60.
#include "props/case_property.h"

namespace miniinfer::props {
namespace {

class P2 final : public CaseProperty<CaseCore> {
 public:
  P2() : CaseProperty({"p2", "cached and uncached generation give the same tokens over 256 new tokens", 3}) {}
  CaseCore draw() const override { return draw_single(256); }
  std::optional<std::string> check(EngineUnderTest& e, CaseCore& c) const override {
    return check_cached_equals_uncached(e, c, false);
  }
  std::vector<Scenario> scenarios(const CaseCore& c) const override { return generate_scenarios(c); }
  CaseCore read(const CaseFields& f) const override { return f.core; }
};

}  // namespace

const Property& p2() {
  static const P2 property;
  return property;
}

}  // namespace miniinfer::props
