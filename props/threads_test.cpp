// Thread counts in props: --threads makes our engine's settings (1, the default, is written as
// nothing, so every case saved before the flag keeps its bytes), the engine runs its calls on
// the count and p14 changes it for a run without changing the settings a case is saved with;
// and a saved p14 case must name two different counts within 1..4.
#include <catch2/catch.hpp>

#include "engine/engine_test_util.h"
#include "props/engine_registry.h"
#include "props/property.h"

using namespace miniinfer;
using namespace miniinfer::props;

namespace {

nlohmann::json with_threads(const std::string& n) {
  RunConfig run;
  run.engine_flags["--threads"] = n;
  run.given.insert("--threads");
  return find_engine("miniinfer")->settings(run);
}

// A p14 case file with these thread counts ("threads" left out when empty).
nlohmann::json p14_case(const std::vector<int>& threads) {
  nlohmann::json j = {{"property", "p14"}, {"prompts", {{{"text", "x"}, {"ids", {1, 2}}}}},
                      {"params", {{"seed", 0}, {"max_new_tokens", 0}, {"temperature", 0.0}, {"top_k", 0}, {"top_p", 1.0}}},
                      {"k", 1}, {"chunk", nlohmann::json::array()}, {"cuts", nlohmann::json::array()},
                      {"order", nlohmann::json::array()}, {"arch", nullptr}};
  if (!threads.empty()) j["threads"] = threads;
  return j;
}

}  // namespace

TEST_CASE("props --threads: our engine's settings name a count other than 1, and the engine runs on it", "[threads]") {
  CHECK(find_engine("miniinfer")->settings(RunConfig{}) == nlohmann::json{{"backend", "invariant"}, {"fault", "none"}});
  CHECK(with_threads("1") == nlohmann::json{{"backend", "invariant"}, {"fault", "none"}});
  const nlohmann::json three = with_threads("3");
  CHECK(three == nlohmann::json{{"backend", "invariant"}, {"fault", "none"}, {"threads", 3}});
  CHECK_THROWS_WITH(with_threads("0"), "--threads: 0 is outside 1..1024");
  CHECK_THROWS_WITH(with_threads("1025"), "--threads: 1025 is outside 1..1024");

  const Model model = init_model(testing::make_config(16, 32, 2, 2, 64, 32), testing::made_up_vocab(16), 7);
  const auto e = find_engine("miniinfer")->make(three, model, 2, 32);
  CHECK(e->has(Capability::Threads));
  CHECK(e->threads() == 3);
  CHECK_THAT(e->describe(), Catch::Matchers::Contains(", 3 threads"));
  e->set_threads(2);  // as p14 does for one run: the settings a case is saved with stay the run's
  CHECK(e->threads() == 2);
  CHECK(e->settings() == three);
}

TEST_CASE("a saved p14 case names two different thread counts within 1..4", "[threads]") {
  const Property& p14 = *find_property("p14");
  CHECK(p14.info().needs == std::vector<Capability>{Capability::Threads});
  CHECK_NOTHROW(p14.load(p14_case({1, 2})));
  CHECK_THROWS_WITH(p14.load(p14_case({})), "case: p14 needs two different thread counts (threads: [t1, t2]), got 0 counts");
  CHECK_THROWS_WITH(p14.load(p14_case({2, 2})), "case: p14 needs two different thread counts (threads: [t1, t2]), got 2 counts");
  CHECK_THROWS_WITH(p14.load(p14_case({1, 5})), "case: p14 thread count 5 outside 1..4");
  nlohmann::json many = p14_case({1, 2});
  many["k"] = 4;
  CHECK_THROWS_WITH(p14.load(many), "case: p14 decodes at most 3 tokens per prompt (k), got 4");
}
