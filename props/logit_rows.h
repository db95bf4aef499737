// Comparisons of logits rows and cache rows that several properties share (p14's thread counts,
// p17's speculation): rows of logits judged with the token each gives, and the first K or V row
// where two sets of sequences' cache rows part at the run's level.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "props/level.h"

namespace miniinfer::props {

// Two runs' logits rows, with the token each row gives (greedy): at the tokens level two rows
// agree when that token does (compare_logits alone draws no tokens: every pair would pass).
Closeness compare_rows(const std::vector<float>& a, const std::vector<float>& b, int V);

// The first K or V row of two sets of sequences' cache rows that differs at the run's level.
struct RowParting {
  int seq = 0, layer = 0, head = 0, slot = 0;
  bool k = true;
};
std::optional<RowParting> first_row_parting(const std::vector<KvRows>& a, const std::vector<KvRows>& b);
// "cache K row differs at layer 1, head 0, slot 3 of sequence 0"
std::string row_text(const RowParting& p);

}  // namespace miniinfer::props
