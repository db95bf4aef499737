// p8: truncating to position p and regenerating equals a fresh run from that prefix (and the
// whole rolled-back run equals its uncached twin).
#include "props/case_property.h"

namespace miniinfer::props {
namespace {

struct RollbackCase : CaseCore {
  int k = 0;  // the rollback point, past the prompt
};

class P8 final : public CaseProperty<RollbackCase> {
 public:
  P8() : CaseProperty({"p8", "truncating to position p and regenerating equals a fresh run from that prefix", 50}) {}

  RollbackCase draw() const override {
    RollbackCase c{draw_single(12), 0};
    // The rollback point lies before the last drawn token, so the truncation removes something.
    c.k = *rc::gen::inRange(0, c.params.max_new_tokens);
    if (c.k < c.params.max_new_tokens) RC_TAG("truncated");
    return c;
  }
  std::optional<std::string> check(EngineUnderTest& e, RollbackCase& c) const override;
  std::vector<Scenario> scenarios(const RollbackCase& c) const override {
    return standard_scenarios(c, script(c), c.prompts.size() > 1);
  }
  std::string details(const RollbackCase& c) const override { return fmt::format(" roll back to prompt+{}", c.k); }
  void write(const RollbackCase& c, CaseFields& f) const override { f.k = c.k; }
  RollbackCase read(const CaseFields& f) const override {
    if (f.k > f.core.params.max_new_tokens)
      fail("case: p8 rolls back to prompt+{}, past the {} tokens it generates", f.k, f.core.params.max_new_tokens);
    return {f.core, f.k};
  }

 private:
  static Script script(const RollbackCase& c) {
    Script s = base_script(c, c.prompts[0], 0);
    s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
    s.ops.push_back({Op::Truncate, {}, static_cast<int>(c.prompts[0].size()) + c.k, 0});
    s.ops.push_back({Op::Reseed, {}, 0, c.params.seed + 1});
    s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
    return s;
  }
};

std::optional<std::string> P8::check(EngineUnderTest& e, RollbackCase& c) const {
  const Script s = script(c);
  const ScriptRun rolled = run_script(e, s, true);
  const size_t p = c.prompts[0].size() + static_cast<size_t>(c.k);
  Script fresh =
      base_script(c, std::vector<int>(rolled.tokens.begin(), rolled.tokens.begin() + static_cast<long>(p)), 0);
  fresh.ops.push_back({Op::Reseed, {}, 0, c.params.seed + 1});
  fresh.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  const ScriptRun again = run_script(e, fresh, true);
  const size_t n = static_cast<size_t>(c.params.max_new_tokens);
  const std::vector<int> tail(rolled.generated.end() - static_cast<long>(n), rolled.generated.end());
  if (auto f = judge_runs("truncate and regenerate vs fresh run", tail, again.generated, flat_logits(rolled.logits, n),
                          flat_logits(again.logits), e.vocab_size()))
    return f;
  return check_scripts(e, s, "truncate and regenerate vs uncached");
}

}  // namespace

const Property& p8() {
  static const P8 property;
  return property;
}

}  // namespace miniinfer::props
