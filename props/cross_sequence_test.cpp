// find_cross_sequence on our engine: a fault that makes one sequence of a batch read another's
// cache (batch-stride) is named cross-sequence with the sequence it reads; a fault that parts a
// sequence on its own (cursor-off-by-one) is not; a resident sequence the parting does not need
// is not named either.
#include "props/cross_sequence.h"

#include <catch2/catch.hpp>

#include "engine/engine_test_util.h"
#include "props/case_core.h"
#include "props/engine_registry.h"

using namespace miniinfer;
using namespace miniinfer::props;

namespace {

std::unique_ptr<EngineUnderTest> ours(const char* fault, const Model& model) {
  return find_engine("miniinfer")->make({{"backend", "invariant"}, {"fault", fault}}, model, 2, 32);
}

// Two prompts generated as one batch, sequence 1 the one reported.
Scenario batch_of_two() {
  CaseCore c;
  c.prompts = {{1, 2, 3, 4, 5}, {6, 7, 8}};
  c.params.max_new_tokens = 3;
  c.seq = 1;
  return generate_scenarios(c, true).front();
}

}  // namespace

TEST_CASE("a batch whose sequence 1 reads sequence 0's cache is named cross-sequence", "[cross-sequence]") {
  const Model model = init_model(testing::make_config(16, 32, 2, 2, 64, 32), testing::made_up_vocab(16), 7);
  const Scenario sc = batch_of_two();
  REQUIRE(sc.batch.size() == 2);
  const auto stride = ours("batch-stride", model);
  const auto found = find_cross_sequence(*stride, sc);
  REQUIRE(found);
  CHECK(found->seq == 1);
  CHECK(found->needs_seq == 0);
  CHECK(found->operation == "forward_batch");
  CHECK(found->sentence.starts_with("the parting needs sequence 0's chunk in the same call"));
  CHECK(to_json(*found) == nlohmann::json{{"seq", 1}, {"needs_seq", 0}, {"operation", "forward_batch"}});

  // A fault that parts every sequence alone needs no other; no fault, no parting.
  CHECK_FALSE(find_cross_sequence(*ours("cursor-off-by-one", model), sc));
  CHECK_FALSE(find_cross_sequence(*ours("none", model), sc));
  Scenario resident = sc;
  resident.batch.clear();
  resident.seq = 0;
  resident.resident = {{1, {9, 10, 11}}};
  CHECK_FALSE(find_cross_sequence(*ours("cursor-off-by-one", model), resident));
}
