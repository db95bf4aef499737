// The failure database (props --db DIR, docs/failure-db.md), after Hypothesis' example
// database: every counterexample a run publishes is also kept in DIR, one file per distinct
// case, and the next run replays each property's saved cases before it generates any, saying
// which still fail and which now pass. A saved case is deleted (retired) only after it passed.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "props/runner.h"
#include "props/shard.h"

namespace miniinfer::props {

// Turns the database on for this run (after load_context): makes DIR if missing and reads
// every *.case.json in it, so a damaged file is refused before any property runs (Error naming
// the file). `shard` decides which saved cases this process replays (db_shard_owns). Prints
// one line: how many cases DIR holds, and how many match this run.
void open_failure_db(const std::string& dir, ShardSpec shard);

// Keeps a published failure's case (the case file's JSON, as the report folder got it) in the
// database, atomically, unless the same case is there already. No-op without --db.
void db_store(const std::string& id, const nlohmann::json& case_json);

// Replays property `id`'s saved cases that match this run (db_key) and this shard, each a
// line, then the summary line; retires those that pass. Returns the first still-failing
// case's failure (its report published as a replay's), or nothing. No-op without --db.
std::optional<CheckResult> db_replay_first(const std::string& id);

// ---- pure parts, for the unit tests ----------------------------------------------------

// What must match for a saved case to replay in a run: property, engine, engine settings
// (llama.cpp's GGUF by its sha256, not its path), level, backend and model. The fault it was found with is recorded but not matched: it
// stands for the engine's code, which is what a fix changes (docs/failure-db.md).
nlohmann::json db_key(const nlohmann::json& case_json);
// "p6-0123456789abcdef.case.json": the property and the first 16 hex digits of the sha256 of
// the case without the machine it was found on and the paths of the model and GGUF (the same
// case found twice is one file).
std::string db_file_name(const std::string& id, const nlohmann::json& case_json);
// Whether shard K/N replays (and may retire) the saved case `file_name`: its name's sha256,
// mod N, is K - 1. Every saved case has exactly one owner among N shards.
bool db_shard_owns(const std::string& file_name, ShardSpec shard);

}  // namespace miniinfer::props
