// p9: the same seed twice on one engine gives the same bytes, and the order of a batch does not
// change any sequence's tokens or logits.
#include <algorithm>

#include "props/case_property.h"

namespace miniinfer::props {
namespace {

struct OrderCase : CaseCore {
  std::vector<int> order;  // the batch order of the second run
};

class P9 final : public CaseProperty<OrderCase> {
 public:
  P9() : CaseProperty({"p9", "the same seed twice gives the same bytes, and batch order does not matter", 40}) {}

  OrderCase draw() const override {
    OrderCase c;
    c.prompts = draw_ragged_batch(4);
    c.params = *gen::genRunParams(16);
    c.order = *gen::genPermutation(static_cast<int>(c.prompts.size()));
    if (!std::is_sorted(c.order.begin(), c.order.end())) RC_TAG("reordered");
    return c;
  }
  std::optional<std::string> check(EngineUnderTest& e, OrderCase& c) const override;
  std::vector<Scenario> scenarios(const OrderCase& c) const override;
  void write(const OrderCase& c, CaseFields& f) const override { f.order = c.order; }
  OrderCase read(const CaseFields& f) const override { return {f.core, f.order}; }
};

std::optional<std::string> P9::check(EngineUnderTest& e, OrderCase& c) const {
  GenerateOptions o = options_for(c, true);
  o.return_logits = true;
  const auto first = e.generate(c.prompts, o);
  const auto second = e.generate(c.prompts, o);
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    if (auto f = judge_runs(fmt::format("the same seed twice on one engine, sequence {}", i), first.tokens[i],
                            second.tokens[i], first.logits[i], second.logits[i], e.vocab_size())) {
      c.seq = static_cast<int>(i);
      c.twice = true;
      return f;
    }
  }
  // Order: sampling coins follow the batch index, so this half runs greedy (tokens then
  // depend on logits alone) and compares each prompt with itself across the two orders.
  o.temperature = 0.0f;
  const auto in_order = e.generate(c.prompts, o);
  std::vector<std::vector<int>> permuted;
  for (int i : c.order) permuted.push_back(c.prompts[static_cast<size_t>(i)]);
  const auto reordered = e.generate(permuted, o);
  for (size_t j = 0; j < c.order.size(); ++j) {
    const size_t i = static_cast<size_t>(c.order[j]);
    if (auto f = judge_runs(fmt::format("batch order: prompt {} at batch position {} against position {}", i, j, i),
                            in_order.tokens[i], reordered.tokens[j], in_order.logits[i], reordered.logits[j],
                            e.vocab_size())) {
      c.seq = static_cast<int>(j);
      return f;
    }
  }
  return std::nullopt;
}

// The batch scenario is the failing run: the second of two on one engine, or the reordered,
// greedy one.
std::vector<Scenario> P9::scenarios(const OrderCase& c) const {
  std::vector<Scenario> out = generate_scenarios(c, true);
  Scenario& b = out.front();
  const size_t seq = static_cast<size_t>(b.seq);
  if (!c.twice) {
    b.batch.clear();
    for (int i : c.order) b.batch.push_back(c.prompts[static_cast<size_t>(i)]);
    b.batch_options.temperature = 0.0f;
    b.script = base_script(c, b.batch[seq], seq);
    b.script.sampler.temperature = 0.0f;
    b.script.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  }
  b.twice = c.twice;
  out.back() = b;
  out.back().twice = true;
  // The order half compares two batches, and either may be the wrong one: the prompt in the
  // batch in its first order, at its own position there, last (a run that the reordered batch
  // already explains never gets here).
  if (!c.twice) {
    const size_t i = static_cast<size_t>(c.order[seq]);
    Scenario first = b;
    first.batch = c.prompts;
    first.seq = static_cast<int>(i);
    first.script = base_script(c, c.prompts[i], static_cast<int>(i));
    first.script.sampler.temperature = 0.0f;
    first.script.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
    first.twice = false;
    out.push_back(first);
  }
  return out;
}

}  // namespace

const Property& p9() {
  static const P9 property;
  return property;
}

}  // namespace miniinfer::props
