// The engine interface on ours: trace_call records exactly the call it names, labelled with
// sequence and position, also inside generate(); cache_rows and recompute_rows agree where
// the cache is exact; the registry knows every engine and refuses another engine's flags.
#include "props/engines.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <set>

#include "base/error.h"
#include "engine/engine_test_util.h"
#include "props/engine_registry.h"

using namespace miniinfer;
using namespace miniinfer::props;

namespace {

Model small_model() {
  return init_model(testing::make_config(16, 32, 2, 2, 64, 32), testing::made_up_vocab(16), 7);
}

// The (seq, pos) of every layer-0 block output of call `call`.
std::set<std::pair<int, int>> rows_of(const Trace& t, int call) {
  std::set<std::pair<int, int>> rows;
  for (const TraceRecord& r : t.records)
    if (r.call == call && r.layer == 0 && r.kind == TraceKind::BlockOut) rows.insert({r.seq, r.pos});
  return rows;
}

}  // namespace

TEST_CASE("trace_call records the nth forward call from now, and only that one", "[engines]") {
  const Model model = small_model();
  const nlohmann::json settings = {{"backend", "invariant"}, {"fault", "none"}};
  const auto e = find_engine("miniinfer")->make(settings, model, 2, 32);
  REQUIRE(e->has(Capability::Trace));
  Trace t;
  REQUIRE(e->trace_call(&t, 1));
  const std::vector<int> prompt = {1, 2, 3}, next = {4, 5};
  e->forward_cached(1, prompt);
  e->forward_cached(1, next);
  e->forward_cached(1, std::vector<int>{6});
  CHECK(t.calls == 1);
  CHECK(rows_of(t, 0) == std::set<std::pair<int, int>>{{1, 3}, {1, 4}});

  SECTION("inside generate(): call k computes draw k") {
    Trace g;
    g.seq = 1;
    REQUIRE(e->trace_call(&g, 2));
    GenerateOptions o;
    o.max_new_tokens = 4;
    const auto result = e->generate({{1, 2, 3}, {4, 5}}, o);
    CHECK(result.tokens[0].size() == 4);
    CHECK(g.calls == 1);
    CHECK(rows_of(g, 0) == std::set<std::pair<int, int>>{{0, 4}, {1, 3}});  // decode of draw 2
  }
  SECTION("full recompute's rows are labelled trace->seq, positions 0..T-1") {
    Trace u;
    u.seq = 3;
    REQUIRE(e->trace_call(&u, 0));
    e->forward_uncached(prompt);
    CHECK(rows_of(u, 0) == std::set<std::pair<int, int>>{{3, 0}, {3, 1}, {3, 2}});
  }
}

TEST_CASE("cache_rows holds what recompute_rows computes for the same tokens", "[engines]") {
  const Model model = small_model();
  const auto e = find_engine("miniinfer")->make({{"backend", "invariant"}, {"fault", "none"}}, model, 2, 32);
  REQUIRE(e->has(Capability::KvRows));
  e->clean_slate();
  const std::vector<int> tokens = {3, 1, 4, 1, 5};
  e->forward_cached(0, std::span<const int>(tokens).first(2));
  e->forward_cached(0, std::span<const int>(tokens).subspan(2));
  const auto held = e->cache_rows(0);
  const auto ref = e->recompute_rows(tokens);
  REQUIRE(held);
  REQUIRE(ref);
  CHECK(held->T == 5);
  CHECK(held->k.size() == ref->k.size());
  CHECK(std::memcmp(held->k.data(), ref->k.data(), held->k.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(held->v.data(), ref->v.data(), held->v.size() * sizeof(float)) == 0);
  CHECK(e->cache_rows(1)->T == 0);
}

TEST_CASE("the registry lists every engine, the default first, and refuses another engine's flags", "[engines]") {
  REQUIRE(engines().size() >= 2);
  CHECK(std::string(engines()[0]->name) == "miniinfer");
  CHECK(engine_names() == "miniinfer, llamacpp or process");
  CHECK(find_engine("vllm") == nullptr);
  RunConfig run;
  run.engine_flags["--gguf"] = "x.gguf";
  CHECK_THROWS_WITH(settings_from_flags(*find_engine("miniinfer"), run),
                    "--gguf x.gguf: only --engine llamacpp reads a GGUF");
  RunConfig llama;
  CHECK_THROWS_WITH(settings_from_flags(*find_engine("llamacpp"), llama),
                    "--engine llamacpp needs --gguf FILE (minigpt export-gguf writes one)");
  llama.engine_flags["--gguf"] = "x.gguf";
  llama.inject = "stale-cache";
  CHECK_THROWS_WITH(settings_from_flags(*find_engine("llamacpp"), llama),
                    "--inject stale-cache: faults are our engine's; llamacpp has none");
  CHECK(settings_from_flags(*find_engine("miniinfer"), RunConfig{}) ==
        nlohmann::json{{"backend", "invariant"}, {"fault", "none"}});
}
