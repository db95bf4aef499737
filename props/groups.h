// Groups of failures: one injected bug fails many properties, and their reports differ only
// in the case. A run's failures are grouped by cause: the first parting site (layer, head,
// component), the verdict (verdict.h) and the cause; the run ends with one block per group,
// its count, its properties and its smallest case (fewest tokens) with its replay command,
// and the summary JSON (--summary) holds the same groups for the nightly page.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace miniinfer::props {

struct Failure;  // props/report.h

struct GroupMember {
  std::string property;
  std::string headline;
  int tokens = 0;        // the case's size: prompt tokens, program tokens and tokens drawn
  std::string replay;    // the command that replays it
};
struct FailureGroup {
  std::string site;      // "layer 0, head 2, k-read", "sampler", "not located"
  nlohmann::json first_parting;  // as the reports give it (null: not located)
  std::string verdict;   // verdict.h's word, or "none" when the report gives no verdict
  std::string cause;     // the report's cause, or what its first parting names
  std::vector<GroupMember> members;  // in the order they failed
  const GroupMember& smallest() const;  // fewest tokens; the first of those
};

// What a failure's report says, in the groups' words: the first parting site, the cause, the
// verdict ("none" when the report gives none) and the headline.
struct FailureSite {
  std::string site, cause, verdict, headline;
};
FailureSite failure_site(const Failure& failure);

// The tokens a case holds (its prompts' ids, a program's tokens, plus the tokens it draws).
int case_tokens(const nlohmann::json& case_json);
// Records a published failure of property `id`; `replay` is the command that replays it.
void record_group_member(const std::string& id, const Failure& failure, const std::string& replay);
// Groups of the failures recorded so far, in the order their first member failed.
std::vector<FailureGroup> failure_groups();
// The closing block: "" when fewer than two failures were recorded.
std::string groups_text();
nlohmann::json groups_json();

}  // namespace miniinfer::props
