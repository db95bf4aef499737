// p0: the generators' own property. Every generated prompt, and every shrink of it, is
// grammatical, and no shrink returns its input: the counterexamples of the other properties
// are then grammatical prompts too. It needs no engine and saves no case.
#include <rapidcheck.h>

#include "corpus/grammar.h"
#include "props/case_core.h"
#include "props/property.h"

namespace miniinfer::props {
namespace {

class P0 final : public Property {
 public:
  P0()
      : Property({"p0", "every generated prompt and every shrink of it is grammatical, and no shrink returns its input",
                  100}) {}
  void run_case() const override {
    const gen::Prompt p = *gen::genPrompt();
    tag(p);
    RC_ASSERT(Grammar::builtin().is_prefix(p.words()));
    for (const auto& q : gen::shrink_prompt(p)) {
      RC_ASSERT(Grammar::builtin().is_prefix(q.words()));
      RC_ASSERT(q.words() != p.words());
    }
  }
};

}  // namespace

const Property& p0() {
  static const P0 property;
  return property;
}

}  // namespace miniinfer::props
