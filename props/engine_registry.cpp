#include "props/engine_registry.h"

#include <fmt/format.h>

#include "base/error.h"

namespace miniinfer::props {

const std::vector<const EngineDecl*>& engines() {
  static const std::vector<const EngineDecl*> list = {&kMiniInfer, &kLlamaCpp, &kProcess};
  return list;
}

const EngineDecl* find_engine(const std::string& name) {
  for (const EngineDecl* e : engines())
    if (name == e->name) return e;
  return nullptr;
}

std::string engine_names() {
  std::string out;
  const auto& list = engines();
  for (size_t i = 0; i < list.size(); ++i)
    out += (i == 0 ? "" : i + 1 == list.size() ? " or " : ", ") + std::string(list[i]->name);
  return out;
}

std::string flag_value(const RunConfig& run, const std::string& flag) {
  for (const EngineDecl* e : engines())
    for (const EngineFlag& f : e->flags) {
      if (flag != f.name) continue;
      if (f.field) return run.*f.field;
      const auto it = run.engine_flags.find(flag);
      return it == run.engine_flags.end() ? f.fallback : it->second;
    }
  fail("flag_value: {} is no engine's flag", flag);
}

nlohmann::json settings_from_flags(const EngineDecl& engine, const RunConfig& run) {
  for (const EngineFlag& f : engine.flags)
    if (f.required && flag_value(run, f.name).empty())
      fail("--engine {} needs {}{} ({})", engine.name, f.name, f.arg, f.required);
  for (const EngineDecl* other : engines()) {
    if (other == &engine) continue;
    for (const EngineFlag& f : other->flags) {
      if (!f.elsewhere) continue;
      const std::string value = flag_value(run, f.name);
      if (value != f.fallback) fail("{} {}: {}", f.name, value, fmt::format(fmt::runtime(f.elsewhere), engine.name));
    }
  }
  return engine.settings(run);
}

}  // namespace miniinfer::props
