#include "props/failure_db.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using namespace miniinfer::props;

namespace {

nlohmann::json a_case() {
  return {{"property", "p6"},
          {"prompts", {{{"text", "I"}, {"ids", {4}}}}},
          {"engine", "miniinfer"},
          {"engine_settings", {{"backend", "invariant"}, {"fault", "cursor-off-by-one"}}},
          {"level", "bits"},
          {"backend", "invariant"},
          {"fault", "cursor-off-by-one"},
          {"model_sha256", "ab12"}};
}

}  // namespace

TEST_CASE("a saved case is named by its property and content, not by the machine or the paths it was found with",
          "[db]") {
  nlohmann::json c = a_case();
  const std::string name = db_file_name("p6", c);
  CHECK(name.starts_with("p6-"));
  CHECK(name.ends_with(".case.json"));
  CHECK(name.size() == std::string("p6-0123456789abcdef.case.json").size());
  c["machine"] = {{"cpu", "elsewhere"}};
  c["model"] = "/elsewhere/minigpt.safetensors";
  CHECK(db_file_name("p6", c) == name);
  c["prompts"][0]["ids"] = {5};
  CHECK(db_file_name("p6", c) != name);
}

TEST_CASE("a saved case's key is what it was found with, less the fault a fix removes", "[db]") {
  nlohmann::json c = a_case();
  const nlohmann::json key = db_key(c);
  CHECK(key == nlohmann::json{{"property", "p6"},
                              {"engine", "miniinfer"},
                              {"engine_settings", nlohmann::json::object()},
                              {"level", "bits"},
                              {"backend", "invariant"},
                              {"model_sha256", "ab12"}});
  nlohmann::json unfaulted = c;
  unfaulted["fault"] = "none";
  unfaulted["engine_settings"]["fault"] = "none";
  CHECK(db_key(unfaulted) == key);
  for (const char* field : {"level", "backend", "model_sha256", "engine", "property"}) {
    nlohmann::json other = c;
    other[field] = "other";
    CHECK(db_key(other) != key);
  }
  nlohmann::json moved = c;  // a GGUF elsewhere is the same GGUF: its sha256 says so
  moved["engine_settings"]["gguf"] = "/elsewhere/minigpt.gguf";
  CHECK(db_key(moved) == key);
  nlohmann::json paged = c;
  paged["engine_settings"]["kv_cache"] = "paged";
  CHECK(db_key(paged) != key);
}

TEST_CASE("every saved case has exactly one shard, whatever the number of shards", "[db]") {
  for (int n : {1, 2, 3, 7}) {
    std::set<int> owners_seen;
    for (int i = 0; i < 50; ++i) {
      const std::string name = "p6-" + std::to_string(i) + ".case.json";
      int owners = 0;
      for (int k = 1; k <= n; ++k)
        if (db_shard_owns(name, {k, n})) owners += 1, owners_seen.insert(k);
      CHECK(owners == 1);
    }
    CHECK(static_cast<int>(owners_seen.size()) == n);  // 50 names reach every shard
  }
}
