#include "props/groups.h"

#include <fmt/format.h>

#include "props/report.h"

namespace miniinfer::props {
namespace {

struct Recorded {
  std::string property;
  nlohmann::json json;
  int tokens = 0;
  std::string replay;
};

std::vector<Recorded>& recorded() {
  static std::vector<Recorded> r;
  return r;
}

std::string site_of(const nlohmann::json& fp) {
  if (!fp.is_object()) return "not located";
  const std::string component = fp.value("component", std::string("?"));
  const int layer = fp.value("layer", -1), head = fp.value("head", -1);
  if (layer < 0) return component;
  return fmt::format("layer {}, {}, {}", layer, head < 0 ? std::string("all heads") : fmt::format("head {}", head),
                     component);
}

// The report's cause; where it gives none, what its first parting names.
std::string cause_of(const nlohmann::json& j) {
  if (j.contains("cause") && j["cause"].is_string()) return j["cause"].get<std::string>();
  if (j.contains("error")) return "engine-error";
  if (!j.contains("first_parting")) return "not located";
  const std::string c = j["first_parting"].value("component", std::string());
  if (c == "sampler" || c == "cursor") return c;
  if (c == "pool" || c == "prefix") return "bookkeeping";
  return "forward";
}

// The part of a first parting that names the site, not the case: layer, head, component.
nlohmann::json site_json(const nlohmann::json& j) {
  if (!j.contains("first_parting") || !j["first_parting"].is_object()) return nullptr;
  const auto& fp = j["first_parting"];
  return {{"layer", fp.value("layer", -1)}, {"head", fp.value("head", -1)},
          {"component", fp.value("component", std::string("?"))}};
}

void count_tokens(const nlohmann::json& j, int& n) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if ((key == "ids" || key == "tokens") && value.is_array()) {
        for (const auto& t : value) t.is_array() ? (void)(n += static_cast<int>(t.size())) : (void)(n += t.is_number());
      } else if ((key == "max_new_tokens" || key == "n") && value.is_number_integer()) {
        n += value.get<int>();
      } else {
        count_tokens(value, n);
      }
    }
  } else if (j.is_array()) {
    for (const auto& v : j) count_tokens(v, n);
  }
}

}  // namespace

int case_tokens(const nlohmann::json& case_json) {
  int n = 0;
  count_tokens(case_json, n);
  return n;
}

const GroupMember& FailureGroup::smallest() const {
  size_t best = 0;
  for (size_t i = 1; i < members.size(); ++i)
    if (members[i].tokens < members[best].tokens) best = i;
  return members[best];
}

FailureSite failure_site(const Failure& f) {
  return {site_of(site_json(f.json)), cause_of(f.json), f.json.value("verdict", std::string("none")),
          f.json.value("headline", f.headline)};
}

void record_group_member(const std::string& id, const Failure& f, const std::string& replay) {
  recorded().push_back({id, f.json, case_tokens(f.case_json), replay});
}

std::vector<FailureGroup> failure_groups() {
  std::vector<FailureGroup> groups;
  for (const Recorded& r : recorded()) {
    const nlohmann::json site = site_json(r.json);
    const std::string verdict = r.json.value("verdict", std::string("none"));
    const std::string cause = cause_of(r.json);
    FailureGroup* g = nullptr;
    for (FailureGroup& x : groups)
      if (x.first_parting == site && x.verdict == verdict && x.cause == cause) g = &x;
    if (!g) {
      groups.push_back({site_of(site), site, verdict, cause, {}});
      g = &groups.back();
    }
    g->members.push_back({r.property, r.json.value("headline", std::string()), r.tokens, r.replay});
  }
  return groups;
}

std::string groups_text() {
  const std::vector<FailureGroup> groups = failure_groups();
  if (recorded().size() < 2) return "";
  std::string text = fmt::format("props: {} failures in {} group{} (by first parting site, verdict and cause):\n",
                                 recorded().size(), groups.size(), groups.size() == 1 ? "" : "s");
  for (size_t i = 0; i < groups.size(); ++i) {
    const FailureGroup& g = groups[i];
    std::string ids;
    for (const GroupMember& m : g.members) ids += (ids.empty() ? "" : " ") + m.property;
    const GroupMember& s = g.smallest();
    text += fmt::format("  group {}: {}; verdict {}; cause {}: {} failure{} ({})\n    smallest: {}, {} tokens: {}\n",
                        i + 1, g.site, g.verdict, g.cause, g.members.size(), g.members.size() == 1 ? "" : "s", ids,
                        s.property, s.tokens, s.replay);
  }
  return text;
}

namespace {
nlohmann::json to_json(const FailureGroup& g) {
  nlohmann::json props = nlohmann::json::array();
  for (const GroupMember& m : g.members) props.push_back(m.property);
  const GroupMember& s = g.smallest();
  return {{"site", g.site}, {"first_parting", g.first_parting}, {"verdict", g.verdict}, {"cause", g.cause},
          {"count", g.members.size()}, {"properties", props},
          {"smallest", {{"property", s.property}, {"tokens", s.tokens}, {"replay", s.replay}, {"headline", s.headline}}}};
}
}  // namespace

nlohmann::json groups_json() {
  nlohmann::json out = nlohmann::json::array();
  for (const FailureGroup& g : failure_groups()) out.push_back(to_json(g));
  return out;
}

}  // namespace miniinfer::props
