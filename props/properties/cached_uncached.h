// p1, p2 and p6 are one property at three sizes: cached and uncached generation from one prompt
// agree, over `new_tokens` tokens, in their tokens (p1, p2) or in every logit (p6). p1 and p2
// compare the logits too, to say at which finer level a passing case parted.
#pragma once
#include "props/case_property.h"

namespace miniinfer::props {

class CachedEqualsUncached final : public CaseProperty<CaseCore> {
 public:
  CachedEqualsUncached(PropertyInfo info, int new_tokens, bool logits)
      : CaseProperty(std::move(info)), new_tokens_(new_tokens), logits_(logits) {}
  CaseCore draw() const override { return draw_single(new_tokens_); }
  std::optional<std::string> check(EngineUnderTest& e, CaseCore& c) const override {
    return check_cached_equals_uncached(e, c, logits_);
  }
  std::vector<Scenario> scenarios(const CaseCore& c) const override { return generate_scenarios(c); }
  CaseCore read(const CaseFields& f) const override { return f.core; }

 private:
  int new_tokens_;
  bool logits_;
};

}  // namespace miniinfer::props
