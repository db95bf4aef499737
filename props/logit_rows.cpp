#include "props/logit_rows.h"

#include <algorithm>

#include <fmt/format.h>

#include "props/case_core.h"

namespace miniinfer::props {

Closeness compare_rows(const std::vector<float>& a, const std::vector<float>& b, int V) {
  const auto greedy = [V](const std::vector<float>& l) {
    std::vector<int> t;
    for (size_t r = 0; r + static_cast<size_t>(V) <= l.size(); r += static_cast<size_t>(V))
      t.push_back(static_cast<int>(std::max_element(l.begin() + static_cast<long>(r), l.begin() + static_cast<long>(r) + V) -
                                   (l.begin() + static_cast<long>(r))));
    return t;
  };
  return compare_runs(greedy(a), greedy(b), a, b, V);
}

std::optional<RowParting> first_row_parting(const std::vector<KvRows>& a, const std::vector<KvRows>& b) {
  for (size_t s = 0; s < a.size() && s < b.size(); ++s)
    for (int slot = 0; slot < std::min(a[s].T, b[s].T); ++slot)
      for (int l = 0; l < a[s].n_layer; ++l)
        for (int h = 0; h < a[s].n_head; ++h) {
          if (!a[s].holds(slot) || !b[s].holds(slot)) continue;  // a sliding window's dropped position
          if (!rows_within(a[s].k_row(l, h, slot), b[s].k_row(l, h, slot))) return RowParting{static_cast<int>(s), l, h, slot, true};
          if (!rows_within(a[s].v_row(l, h, slot), b[s].v_row(l, h, slot))) return RowParting{static_cast<int>(s), l, h, slot, false};
        }
  return std::nullopt;
}

std::string row_text(const RowParting& p) {
  return fmt::format("cache {} row differs at layer {}, head {}, slot {} of sequence {}", p.k ? "K" : "V", p.layer, p.head,
                     p.slot, p.seq);
}

}  // namespace miniinfer::props
