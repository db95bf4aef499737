// p6: the logits of every step are byte-identical with and without cache. The sharpest
// property: it compares logits, so a decode fault fails its first one-token case.
#include "props/case_property.h"

namespace miniinfer::props {
namespace {

class P6 final : public CaseProperty<CaseCore> {
 public:
  P6() : CaseProperty({"p6", "the logits of every step are byte-identical with and without cache", 60}) {}
  CaseCore draw() const override { return draw_single(32); }
  std::optional<std::string> check(EngineUnderTest& e, CaseCore& c) const override {
    return check_cached_equals_uncached(e, c, true);
  }
  std::vector<Scenario> scenarios(const CaseCore& c) const override { return generate_scenarios(c); }
  CaseCore read(const CaseFields& f) const override { return f.core; }
};

}  // namespace

const Property& p6() {
  static const P6 property;
  return property;
}

}  // namespace miniinfer::props
