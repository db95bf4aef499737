#include "props/cases.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/exit_status.h"
#include "props/context.h"
#include "props/engine_registry.h"
#include "props/level.h"

namespace miniinfer::props {
namespace {

std::string json_why(const nlohmann::json::exception& e) {
  std::string why = e.what();  // "[json.exception.out_of_range.403] key 'k' not found"
  if (const auto p = why.find("] "); why.starts_with("[json.exception") && p != std::string::npos) why = why.substr(p + 2);
  return why;
}

// The case runs as it was saved: its engine (and settings), level, backend and fault, unless
// this run's flags name others (an explicit --inject none replays without the saved fault);
// the engine says how its saved settings meet this run's flags.
void adopt_saved_settings(const std::string& path, const SavedCase& saved) {
  Context& ctx = context();
  const RunConfig& run = run_config();
  const auto given = [&](const char* flag) { return run.given.count(flag) > 0; };
  if (given("--engine") && saved.engine != run.engine)
    fail("replay {}: the case was found on engine {}, not {}", path, saved.engine, run.engine);
  if (saved.engine != "miniinfer" && (given("--backend") || given("--inject")))
    fail("replay {}: --backend and --inject are our engine's; the case was found on {}", path, saved.engine);
  if (!given("--backend")) ctx.backend = backend_from_name(saved.backend);
  if (!given("--inject")) ctx.fault = fault_from_name(saved.fault);
  const nlohmann::json settings = find_engine(saved.engine)->replay(path, saved.engine_settings, run);
  if (!given("--level")) set_run_level(level_from_name(saved.level));
  make_subject(saved.engine, settings);
}

Machine run_machine() {
  const EngineUnderTest* subject = context().subject.get();
  const nlohmann::json settings = subject ? subject->settings() : nlohmann::json::object();
  const auto threads = settings.is_object() && settings.contains("threads") && settings["threads"].is_number_integer()
                           ? settings["threads"].get<int>()
                           : 1;  // ours runs on one thread
  return this_machine(threads);
}

// replay_case's work; replay_case names the file in every Error this throws.
int replay_loaded(const std::string& path, const SavedCase& saved) {
  adopt_saved_settings(path, saved);
  const Context& ctx = context();
  std::printf("replay %s: engine %s; level %s\n", path.c_str(), ctx.subject->describe().c_str(),
              to_string(run_level()).c_str());
  if (const std::string line = machine_line(path, saved.machine, run_machine(), saved.engine); !line.empty())
    std::printf("%s\n", line.c_str());
  // A case replays only on the model that found it: other weights make other bytes.
  if (saved.model_sha256 != ctx.model_sha256)
    fail("saved against model sha256 {}, but this run's model ({}) is {}; pass --model",
         saved.model_sha256.empty() ? "(none)" : saved.model_sha256, ctx.model_label, ctx.model_sha256);
  std::printf("replay %s: %s\n", path.c_str(), saved.loaded->summary().c_str());
  if (auto what = saved.loaded->check()) {
    std::printf("FAIL  %s\n", what->c_str());
    publish_failure(saved.property->id(), saved.loaded->report(*what));
    return kExitFailed;
  }
  std::printf("ok    the %s passes now\n", saved.loaded->noun());
  return kExitOk;
}

}  // namespace

SavedCase saved_case_from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("case: must be a JSON object, got {}", j.type_name());
  try {
    SavedCase s;
    const std::string id = j.at("property").get<std::string>();
    s.property = find_property(id);
    if (!s.property) fail("case: unknown property '{}'", printable_name(id));
    s.loaded = s.property->load(j);
    s.backend = j.value("backend", std::string("invariant"));
    s.fault = j.value("fault", std::string("none"));
    s.model_sha256 = j.value("model_sha256", std::string());
    s.engine = j.value("engine", std::string("miniinfer"));
    const EngineDecl* engine = find_engine(s.engine);
    if (!engine) fail("case: engine '{}' is not {}", printable_name(s.engine), engine_names());
    // An engine without read_saved checks its saved settings in replay (ours: absent before issue 27).
    s.engine_settings = engine->read_saved ? engine->read_saved(j.at("engine_settings"))
                                           : j.value("engine_settings", nlohmann::json::object());
    s.level = j.value("level", std::string("bits"));
    level_from_name(s.level);
    if (j.contains("machine")) s.machine = machine_from_json(j["machine"]);
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("case: {}", json_why(e));
  }
}

nlohmann::json run_machine_json() { return to_json(run_machine()); }

std::string machine_line(const std::string& path, const std::optional<Machine>& recorded, const Machine& here,
                         const std::string& engine) {
  // Ours is byte-identical on every machine by construction (docs/invariance.md); an outside
  // engine's bytes may follow the CPU (llama.cpp's AVX2 and AVX-512 variants round differently).
  const std::string expect =
      engine == "miniinfer"
          ? "our engine's bytes do not depend on the machine, so the comparison must come out the same"
          : fmt::format("{}'s bytes may depend on the CPU and its build, so a different result here is expected", engine);
  if (!recorded)
    return fmt::format("replay {}: recorded on an unknown machine (the case file names none); this one is {}; {}", path,
                       here.cpu, expect);
  const std::vector<std::string> differ = machine_differences(*recorded, here);
  if (differ.empty()) return "";
  std::string fields;
  for (const std::string& d : differ) fields += (fields.empty() ? "" : "; ") + d;
  return fmt::format("replay {}: recorded on another machine or build ({}); {}", path, fields, expect);
}

std::vector<std::string> case_files_in(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().filename().string().ends_with(".case.json"))
      files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

namespace {

// --replay DIR: every *.case.json in DIR (not its subfolders), by name; all read before any
// runs, so a bad one is refused (exit 2, named) before the first report.
int replay_folder(const std::string& dir) {
  const std::vector<std::string> files = case_files_in(dir);
  if (files.empty()) fail("replay {}: the folder holds no *.case.json", dir);
  for (const std::string& f : files) {
    try {
      saved_case_from_json(nlohmann::json::parse(read_file(f)));
    } catch (const nlohmann::json::exception& e) {
      fail("replay {}: not valid JSON ({})", f, e.what());
    } catch (const Error& e) {
      fail("replay {}: {}", f, e.what());
    }
  }
  std::vector<std::pair<std::string, int>> outcomes;
  for (const std::string& f : files) {
    outcomes.emplace_back(f, replay_case(f));
    std::printf("\n");
  }
  int failing = 0;
  for (const auto& [f, status] : outcomes) {
    failing += status != 0;
    std::printf("replay %s: %s\n", f.c_str(), status ? "still fails" : "passes now");
  }
  std::printf("replay %s: %zu case%s: %d still fail%s, %zu pass%s now\n", dir.c_str(), files.size(),
              files.size() == 1 ? "" : "s", failing, failing == 1 ? "s" : "", files.size() - failing,
              files.size() - failing == 1 ? "es" : "");
  return failing ? kExitFailed : kExitOk;
}

}  // namespace

int replay_case(const std::string& path) {
  if (std::filesystem::is_directory(path)) return replay_folder(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("replay {}: not valid JSON ({})", path, e.what());
  }
  SavedCase saved;
  try {
    saved = saved_case_from_json(j);
  } catch (const Error& e) {
    fail("replay {}: {}", path, e.what());
  }
  try {
    return replay_loaded(path, saved);
  } catch (const Error& e) {
    const std::string prefix = "replay " + path + ": ";
    if (std::string_view(e.what()).starts_with(prefix)) throw;
    fail("{}{}", prefix, e.what());
  }
}

}  // namespace miniinfer::props
