// p3: in a ragged batch of 4, each sequence equals its own solo run, with and without cache.
#include "props/case_property.h"

namespace miniinfer::props {
namespace {

class P3 final : public CaseProperty<CaseCore> {
 public:
  P3()
      : CaseProperty({"p3", "in a ragged batch of 4 each sequence equals its own solo run, with and without cache",
                      30}) {}
  CaseCore draw() const override {
    CaseCore c;
    c.prompts = draw_ragged_batch(4);
    c.params = *gen::genRunParams(24);
    return c;
  }
  std::optional<std::string> check(EngineUnderTest& e, CaseCore& c) const override { return check_batch(e, c); }
  std::vector<Scenario> scenarios(const CaseCore& c) const override { return generate_scenarios(c, true); }
  CaseCore read(const CaseFields& f) const override { return f.core; }
};

}  // namespace

const Property& p3() {
  static const P3 property;
  return property;
}

}  // namespace miniinfer::props
