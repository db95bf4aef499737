#include "props/expected.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "props/context.h"
#include "props/engine_registry.h"
#include "props/level.h"
#include "props/property.h"

namespace miniinfer::props {
namespace {

std::vector<ExpectedFailure>& entries() {
  static std::vector<ExpectedFailure> list;
  return list;
}
std::string& entries_file() {
  static std::string file;
  return file;
}

const std::set<std::string>& fields() {
  static const std::set<std::string> f = {"engine", "settings", "property", "level", "reason", "link",
                                          "strict"};
  return f;
}

// Field `name` of `j` as a non-empty string; `where` prefixes the refusal.
std::string text_field(const nlohmann::json& j, const std::string& name, const std::string& where) {
  if (!j.contains(name)) fail("{}: the field '{}' is missing", where, name);
  if (!j[name].is_string() || j[name].get_ref<const std::string&>().empty())
    fail("{}: '{}' must be a non-empty string", where, name);
  return j[name].get<std::string>();
}

ExpectedFailure parse_entry(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: must be a JSON object, got {}", where, j.type_name());
  for (const auto& [name, value] : j.items())
    if (!fields().count(name))
      fail("{}: unknown field '{}' (the fields: engine, settings, property, level, reason, link, strict)",
           where, printable_name(name));
  ExpectedFailure e;
  e.engine = text_field(j, "engine", where);
  if (!find_engine(e.engine))
    fail("{}: engine '{}' is not {}", where, printable_name(e.engine), engine_names());
  if (!j.contains("settings") || !j["settings"].is_object())
    fail("{}: 'settings' must be an object (the engine settings that must match; {{}} for any)", where);
  e.settings = j["settings"];
  e.property = text_field(j, "property", where);
  if (!find_property(e.property)) fail("{}: unknown property id '{}'", where, printable_name(e.property));
  e.level = text_field(j, "level", where);
  try {
    level_from_name(e.level);
  } catch (const Error& err) {
    fail("{}: level: {}", where, err.what());
  }
  e.reason = text_field(j, "reason", where);
  e.link = text_field(j, "link", where);
  if (j.contains("strict") && !j["strict"].is_boolean()) fail("{}: 'strict' must be true or false", where);
  e.strict = j.value("strict", true);
  const bool url = e.link.starts_with("https://") || e.link.starts_with("http://");
  if (!url && !std::filesystem::exists(std::filesystem::path(MINIINFER_SOURCE_DIR) / e.link))
    fail("{}: link '{}' is neither a URL nor a file of the source tree", where, printable_name(e.link));
  return e;
}

bool same_case(const ExpectedFailure& a, const ExpectedFailure& b) {
  return a.engine == b.engine && a.settings == b.settings && a.property == b.property &&
         to_string(level_from_name(a.level)) == to_string(level_from_name(b.level));
}

// The entry's settings are among the run's, with the same values.
bool settings_match(const nlohmann::json& want, const nlohmann::json& have) {
  for (const auto& [key, value] : want.items())
    if (!have.is_object() || !have.contains(key) || have[key] != value) return false;
  return true;
}

}  // namespace

std::vector<ExpectedFailure> parse_expected(const std::string& file, const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", file, e.what());
  }
  if (!j.is_array()) fail("{}: must be a JSON list of entries, got {}", file, j.type_name());
  std::vector<ExpectedFailure> out;
  for (size_t i = 0; i < j.size(); ++i) {
    std::string where = fmt::format("{}: entry {}", file, i + 1);
    if (j[i].is_object() && j[i].contains("property") && j[i]["property"].is_string())
      where += fmt::format(" ({})", printable_name(j[i]["property"].get<std::string>()));
    out.push_back(parse_entry(j[i], where));
    // Two entries for one engine, settings, property and level: the second would never count.
    for (size_t k = 0; k < i; ++k)
      if (same_case(out[k], out[i])) fail("{}: repeats entry {}", where, k + 1);
  }
  return out;
}

std::string default_expected_file() {
  const std::string shipped = std::string(MINIINFER_SOURCE_DIR) + "/props/expected-failures.json";
  return std::filesystem::exists(shipped) ? shipped : "";
}

void load_expected(const std::string& file) {
  entries().clear();
  entries_file().clear();
  if (file.empty()) return;
  std::vector<ExpectedFailure> list = parse_expected(file, read_file(file));
  const nlohmann::json have = context().subject->settings();
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].engine != context().subject->name()) continue;
    for (const auto& [key, value] : list[i].settings.items())
      if (!have.contains(key))
        fail("{}: entry {} ({}): '{}' is not one of {}'s settings ({})", file, i + 1, list[i].property,
             printable_name(key), list[i].engine, have.dump());
  }
  entries() = std::move(list);
  entries_file() = file;
}

const ExpectedFailure* expected_for(const std::string& id) {
  const Context& ctx = context();
  const std::string level = to_string(run_level());
  for (const ExpectedFailure& e : entries())
    if (e.property == id && e.engine == ctx.subject->name() && to_string(level_from_name(e.level)) == level &&
        settings_match(e.settings, ctx.subject->settings()))
      return &e;
  return nullptr;
}

std::string describe(const ExpectedFailure& e) { return e.reason + " (" + e.link + ")"; }

void settle_expected(PropertyOutcome& o) {
  const ExpectedFailure* e = o.status == "failed" || o.status == "passed" ? expected_for(o.id) : nullptr;
  if (!e) return;
  if (o.status == "failed") {
    o.status = "expected-failure";
    o.expected = e;
    std::printf("XFAIL %-4s expected on %s at level %s: %s\n      see %s\n", o.id.c_str(), e->engine.c_str(),
                e->level.c_str(), e->reason.c_str(), e->link.c_str());
  } else if (!e->strict) {
    std::printf("      expected to fail for some seeds on %s at level %s (not strict): %s\n",
                e->engine.c_str(), e->level.c_str(), e->reason.c_str());
  } else {
    o.status = "unexpected-pass";
    o.expected = e;
    std::printf(
        "XPASS %-4s expected to fail on %s at level %s (%s), but it passed: remove its entry from %s\n",
        o.id.c_str(), e->engine.c_str(), e->level.c_str(), e->reason.c_str(), entries_file().c_str());
  }
  std::fflush(stdout);
}

}  // namespace miniinfer::props
