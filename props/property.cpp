#include "props/property.h"

#include <algorithm>

#include "base/error.h"

namespace miniinfer::props {

const Property* find_property(std::string_view id) {
  const auto all = all_properties();
  const auto it = std::find_if(all.begin(), all.end(), [&](const Property* p) { return id == p->id(); });
  return it == all.end() ? nullptr : *it;
}

std::string Property::skip_reason(const EngineUnderTest& engine) const {
  std::string missing, why;
  for (Capability c : info_.needs) {
    if (engine.has(c)) continue;
    missing += (missing.empty() ? "" : ", ") + std::string(to_string(c));
    const std::string w = engine.lacks_why(c);
    if (!w.empty() && why.find(w) == std::string::npos) why += (why.empty() ? "" : "; ") + w;
  }
  if (missing.empty()) return "";
  return "engine " + engine.name() + " has no " + missing + (why.empty() ? "" : ": " + why);
}

std::unique_ptr<LoadedCase> Property::load(const nlohmann::json& /*j*/) const {
  fail("case: unknown property '{}'", id());
}

}  // namespace miniinfer::props
