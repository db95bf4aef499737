#include "props/failure_db.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/sha256.h"
#include "props/cases.h"
#include "props/context.h"
#include "props/groups.h"
#include "props/level.h"
#include "props/results.h"

namespace miniinfer::props {
namespace {

struct Db {
  std::string dir;  // empty: no --db
  ShardSpec shard;
};
Db& db() {
  static Db d;
  return d;
}

// This run's key for property `id`, built as a case file records the run (case_file_json).
nlohmann::json run_key(const std::string& id) {
  const Context& ctx = context();
  return db_key({{"property", id},
                 {"engine", ctx.subject->name()},
                 {"engine_settings", ctx.subject->settings()},
                 {"level", to_string(run_level())},
                 {"backend", to_string(ctx.backend)},
                 {"model_sha256", ctx.model_sha256}});
}

struct Saved {
  std::string path;
  nlohmann::json json;
  SavedCase saved;
};
// A case file of the database, read and checked; Error names the file. Nothing when the file
// is gone: its shard retired it after this run listed the folder. With `property`, a case of
// another property is nothing too, unchecked (each property's check reads only its own).
std::optional<Saved> read_saved(const std::filesystem::path& path, const std::string& property = "") {
  Saved s{path.string(), {}, {}};
  std::string text;
  try {
    text = read_file(s.path);
  } catch (const Error& e) {
    if (!std::filesystem::exists(path)) return std::nullopt;
    fail("--db {}: {}", db().dir, e.what());
  }
  try {
    s.json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("--db {}: {}: not valid JSON ({}); fix or remove it", db().dir, s.path, e.what());
  }
  if (!property.empty() && s.json.is_object() && s.json.value("property", nlohmann::json()) != property)
    return std::nullopt;
  try {
    s.saved = saved_case_from_json(s.json);
  } catch (const Error& e) {
    fail("--db {}: {}: {}; fix or remove it", db().dir, s.path, e.what());
  }
  return s;
}

std::string cases_text(int n) { return fmt::format("{} saved case{}", n, n == 1 ? "" : "s"); }

// The property's outcome when saved case `s` still fails: its report, published as a replay's.
CheckResult saved_failure(const std::string& id, const Saved& s, const std::string& what) {
  const Failure report = s.saved.loaded->report(what);
  CheckResult out;
  out.counterexample = fmt::format("saved case {} still fails: {}", s.path, what);
  out.reproduce = shell_quote(run_config().program) + " --replay " + shell_quote(s.path);
  publish_check_failure(id, report, out);
  record_group_member(id, report, out.reproduce);
  return out;
}

}  // namespace

nlohmann::json db_key(const nlohmann::json& case_json) {
  nlohmann::json settings = case_json.value("engine_settings", nlohmann::json::object());
  // Ours records backend and fault among its settings too; the backend is matched on its own.
  // llama.cpp's GGUF is matched by its sha256, wherever the file lies now.
  if (settings.is_object()) settings.erase("backend"), settings.erase("fault"), settings.erase("gguf");
  return {{"property", case_json.value("property", "")},
          {"engine", case_json.value("engine", "miniinfer")},
          {"engine_settings", settings},
          {"level", case_json.value("level", "bits")},
          {"backend", case_json.value("backend", "invariant")},
          {"model_sha256", case_json.value("model_sha256", "")}};
}

std::string db_file_name(const std::string& id, const nlohmann::json& case_json) {
  // Where it was found, and where the model files lay then, are not the case.
  nlohmann::json content = case_json;
  content.erase("machine");
  content.erase("model");  // the path; the model is its sha256
  if (content.contains("engine_settings") && content["engine_settings"].is_object())
    content["engine_settings"].erase("gguf");
  return fmt::format("{}-{}.case.json", id, sha256_hex(content.dump()).substr(0, 16));
}

bool db_shard_owns(const std::string& file_name, ShardSpec shard) {
  const uint64_t h = std::stoull(sha256_hex(file_name).substr(0, 15), nullptr, 16);
  return static_cast<int>(h % static_cast<uint64_t>(shard.n)) == shard.k - 1;
}

void open_failure_db(const std::string& dir, ShardSpec shard) {
  db() = {dir, shard};
  int matching = 0, total = 0;
  for (const std::filesystem::path path : case_files_in(dir)) {
    const std::optional<Saved> s = read_saved(path);
    if (!s) continue;
    ++total;
    matching += db_key(s->json) == run_key(s->saved.property->id());
  }
  std::printf(
      "props: db %s: %s, %d of them found with this run's engine, settings, level, backend and model\n",
      dir.c_str(), cases_text(total).c_str(), matching);
}

void db_store(const std::string& id, const nlohmann::json& case_json) {
  if (db().dir.empty()) return;
  const std::string path = db().dir + "/" + db_file_name(id, case_json);
  if (std::filesystem::exists(path)) {
    std::printf("  db:      %s (saved before)\n", path.c_str());
    return;
  }
  nlohmann::json j = case_json;
  j["machine"] = run_machine_json();
  try {
    write_file_atomic(path, j.dump(2) + "\n");
  } catch (const Error& e) {
    throw OutputError(fmt::format("--db {}: {}", db().dir, e.what()));
  }
  std::printf("  db:      %s (saved)\n", path.c_str());
}

std::optional<CheckResult> db_replay_first(const std::string& id) {
  if (db().dir.empty()) return std::nullopt;
  const nlohmann::json key = run_key(id);
  const auto start = std::chrono::steady_clock::now();
  int replayed = 0, failing = 0, retired = 0, elsewhere = 0;
  std::optional<CheckResult> first;
  for (const std::filesystem::path path : case_files_in(db().dir)) {
    const std::optional<Saved> read = read_saved(path, id);
    if (!read || db_key(read->json) != key) continue;
    const Saved& s = *read;
    if (!db_shard_owns(path.filename().string(), db().shard)) {
      ++elsewhere;
      continue;
    }
    ++replayed;
    std::printf("db: %s: %s: %s\n", id.c_str(), s.path.c_str(), s.saved.loaded->summary().c_str());
    const CaseOutcome r = run_engine_case(s.path, [&s] { return s.saved.loaded->check(); });
    if (!r.what) {
      std::filesystem::remove(path);  // retired: it passed, just now
      ++retired;
      std::printf("db: %s: %s passes now (retired)\n", id.c_str(), s.path.c_str());
      continue;
    }
    ++failing;
    std::printf("db: %s: %s still fails: %s\n", id.c_str(), s.path.c_str(), r.what->c_str());
    if (!first) first = saved_failure(id, s, *r.what);
  }
  if (replayed + elsewhere == 0) return std::nullopt;
  const std::string others = elsewhere ? cases_text(elsewhere) + " left to the other shards" : "";
  if (replayed == 0)
    std::printf("db: %s: %s\n", id.c_str(), others.c_str());
  else
    std::printf("db: %s: %s replayed first: %d still fail%s, %d now pass%s (retired)%s\n", id.c_str(),
                cases_text(replayed).c_str(), failing, failing == 1 ? "s" : "", retired,
                retired == 1 ? "es" : "", others.empty() ? "" : ("; " + others).c_str());
  std::fflush(stdout);
  if (first) {
    first->cases = replayed;
    first->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return first;
}

}  // namespace miniinfer::props
