// minigpt eval's measurements on an untrained model: the counts add up, the figures do not
// depend on how many sequences share an engine call, and chance-level output fails.
#include "train/eval.h"

#include <catch2/catch.hpp>

#include "corpus/grammar.h"
#include "model/model.h"

using namespace miniinfer;
using namespace miniinfer::train;

namespace {
Model untrained() {
  const Grammar& g = Grammar::builtin();
  Config c{.vocab_size = static_cast<int>(g.vocabulary().size()),
           .d_model = 16,
           .n_layer = 1,
           .n_head = 2,
           .d_ff = 32,
           .max_seq_len = 32,
           .train_ctx = 16};
  return init_model(c, g.vocabulary(), 7);
}
}  // namespace

TEST_CASE("eval counts every sample and every past adverbial + pronoun pair") {
  EvalOptions o;
  o.samples = 40;
  const EvalReport r = evaluate(untrained(), Grammar::builtin(), o);
  CHECK(r.grammatical.total == 40);
  int past = 0;
  for (const auto& t : r.past_by_tense) past += t.total;
  CHECK(r.past_agreement.total == past);
  CHECK(r.past_by_tense.size() == 3);  // past-simple, preterito, imperfecto
  CHECK(r.past_agreement.total > 100);
  CHECK(r.all_agreement.total > r.past_agreement.total);
  // An untrained model emits near-uniform words: almost nothing it says is a sentence.
  CHECK(r.grammatical.percent() < 20.0);
  CHECK(r.past_agreement.percent() < 20.0);
  CHECK_FALSE(r.yesterday_i_past);
  CHECK(r.yesterday_i.rfind("yesterday I", 0) == 0);
}

TEST_CASE("eval figures do not depend on how many sequences share an engine call") {
  EvalOptions a;
  a.samples = 30;
  a.batch = 64;
  EvalOptions b = a;
  b.batch = 7;
  const Model m = untrained();
  const EvalReport ra = evaluate(m, Grammar::builtin(), a), rb = evaluate(m, Grammar::builtin(), b);
  CHECK(ra.samples == rb.samples);  // sample i draws from stream i, whichever call it is in
  CHECK(format_report(ra) == format_report(rb));
  EvalOptions c = a;
  c.seed = 2;  // and the seed matters
  CHECK(ra.samples != evaluate(m, Grammar::builtin(), c).samples);
}
