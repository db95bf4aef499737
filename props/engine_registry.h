// The engines props can check. Each declares itself in its own file (engine_miniinfer.cpp,
// engines_llamacpp.cpp): its name, its flags with their help lines, how its settings are
// built from those flags and reconciled when a saved case is replayed, and how it is made.
// Adding an engine is one such declaration and one line in engines() (engine_registry.cpp).
// Settings travel as JSON the engine owns; props only records and hands them back.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "props/engines.h"
#include "props/runner.h"

namespace miniinfer::props {

struct EngineFlag {
  const char* name;     // "--llama-kv"
  const char* arg;      // how help shows its value: " f16|f32", " FILE"
  const char* help;     // the help text after "ENGINE: "; '\n' starts a continuation line
  const char* fallback;  // the value when the flag is not given
  bool number = false;  // a decimal number, checked as the flag is read
  // Given (not the fallback) while another engine runs: a one-line refusal ("{}" is that
  // engine's name), or nullptr to ignore it.
  const char* elsewhere = nullptr;
  // Needed by this engine: the refusal's hint, as in "--engine E needs --gguf FILE (HINT)".
  const char* required = nullptr;
  // Where the value goes when the whole run needs it (ours: --backend, --inject); otherwise
  // RunConfig::engine_flags[name].
  std::string RunConfig::* field = nullptr;
};

struct EngineDecl {
  const char* name;  // as --engine and the case files name it
  const char* note;  // shown after the name in --engine's help ("ours, the default"), or ""
  std::vector<EngineFlag> flags;
  const char* flag_prefix;  // unknown flags with this prefix are refused, not passed to Catch2
  // This run's settings from its flags (flag_value), checked: throws Error naming the flag.
  nlohmann::json (*settings)(const RunConfig& run);
  // A saved case's engine_settings, checked (throws Error naming the field); nullptr: the
  // engine keeps nothing there that a replay needs.
  nlohmann::json (*read_saved)(const nlohmann::json& saved);
  // The settings to replay a case saved with `saved` under this run: throws Error, prefixed
  // "replay PATH: ", when the case cannot run here (ours: the backend and fault replay_case
  // chose; llama.cpp: --gguf may say where the GGUF is now, and its sha256 must match).
  nlohmann::json (*replay)(const std::string& path, const nlohmann::json& saved, const RunConfig& run);
  // The engine, with `batch` sequences of `capacity` positions; throws Error naming the flag
  // or file at fault.
  std::unique_ptr<EngineUnderTest> (*make)(const nlohmann::json& settings, const Model& model, int batch,
                                           int capacity);
  // The settings p11 makes its engines with (sequences of `capacity` slots, a serving pool of
  // `pool_slots`), and its placement twin's (`placement` != 0: the same program must give the
  // same bytes wherever the rows lie); nullptr: the subject's settings as they are.
  nlohmann::json (*for_programs)(const nlohmann::json& settings, int capacity, int pool_slots,
                                 uint64_t placement) = nullptr;
  // True: the engine's sizes are its own (a process engine's hello); make() only checks it
  // holds at least `batch` sequences of `capacity` positions, and p11 runs on the subject.
  bool fixed_size = false;
};

extern const EngineDecl kMiniInfer;  // engine_miniinfer.cpp
extern const EngineDecl kLlamaCpp;   // engines_llamacpp.cpp
extern const EngineDecl kProcess;    // engine_process.cpp

// Ours on an Engine the adapter borrows, with the given backend and fault (p10's engines for a
// random architecture; the reporter's own runs).
std::unique_ptr<EngineUnderTest> wrap_engine(Engine& engine, Backend backend, Fault fault);

// Every engine, the default first.
const std::vector<const EngineDecl*>& engines();
const EngineDecl* find_engine(const std::string& name);  // nullptr if none has that name
std::string engine_names();                              // "miniinfer or llamacpp"

// The value of `flag` (an engine flag) in this run: as given, or its fallback.
std::string flag_value(const RunConfig& run, const std::string& flag);
// The chosen engine's settings from this run's flags: its required flags, then every other
// engine's flags it was given (refused where they say so), then its own settings().
nlohmann::json settings_from_flags(const EngineDecl& engine, const RunConfig& run);

}  // namespace miniinfer::props
