// p7: every cached K and V row equals full recompute's, for every layer, head and slot. It
// needs an engine whose cache rows can be read.
#include "props/case_property.h"

namespace miniinfer::props {
namespace {

class P7 final : public CaseProperty<CaseCore> {
 public:
  P7()
      : CaseProperty({"p7", "every cached K and V row equals full recompute's, for every layer, head and slot", 100,
                      {Capability::KvRows}}) {}
  CaseCore draw() const override { return draw_single(16); }
  std::optional<std::string> check(EngineUnderTest& e, CaseCore& c) const override {
    const auto g = e.generate(c.prompts, options_for(c, true));
    std::vector<int> all = c.prompts[0];
    all.insert(all.end(), g.tokens[0].begin(), g.tokens[0].end());
    return check_slots(e, 0, all);
  }
  std::vector<Scenario> scenarios(const CaseCore& c) const override { return generate_scenarios(c); }
  CaseCore read(const CaseFields& f) const override { return f.core; }
};

}  // namespace

const Property& p7() {
  static const P7 property;
  return property;
}

}  // namespace miniinfer::props
