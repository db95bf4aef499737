#include "props/model_check.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "base/error.h"
#include "corpus/grammar.h"
#include "engine/engine.h"

namespace miniinfer::props {
namespace {

void check_vocabulary(const Model& model, const std::string& label) {
  const std::unordered_set<std::string> has(model.vocab.begin(), model.vocab.end());
  std::vector<std::string> missing;
  for (const std::string& word : Grammar::builtin().vocabulary())
    if (!has.count(word)) missing.push_back(word);
  if (missing.empty()) return;
  std::string shown;
  for (size_t i = 0; i < std::min<size_t>(missing.size(), 5); ++i) shown += (i ? ", '" : "'") + missing[i] + "'";
  fail("model {}: its vocabulary lacks {} word{} the grammar's prompts use ({}{}): it was not trained on this corpus",
       label, missing.size(), missing.size() == 1 ? "" : "s", shown, missing.size() > 5 ? ", ..." : "");
}

// Every token id once, in full recomputes of at most max_seq_len tokens: every row's logits
// must be finite (weights can be finite and still overflow).
void check_logits(const Model& model, const std::string& label) {
  Engine engine(model);
  const int V = model.config.vocab_size, T = std::min(V, model.config.max_seq_len);
  std::vector<int> tokens(static_cast<size_t>(T));
  for (int first = 0; first < V; first += T) {
    std::iota(tokens.begin(), tokens.end(), first);
    for (int& t : tokens) t %= V;
    const std::vector<float> logits = engine.forward_uncached(tokens, true);
    const auto bad = std::find_if(logits.begin(), logits.end(), [](float x) { return !std::isfinite(x); });
    if (bad != logits.end()) {
      const size_t row = static_cast<size_t>(bad - logits.begin()) / static_cast<size_t>(V);
      fail("model {}: its logits are not finite ({} after token '{}' at position {}): the weights overflow", label,
           *bad, model.vocab[static_cast<size_t>(tokens[row])], row);
    }
  }
}

}  // namespace

void check_model_serves_properties(const Model& model, const std::string& label) {
  check_vocabulary(model, label);
  if (model.config.max_seq_len < kLongestCase)
    fail("model {}: max_seq_len {} is shorter than the longest case ({} positions: a prompt of up to 32 words and "
         "p2's 256 new tokens)", label, model.config.max_seq_len, kLongestCase);
  check_logits(model, label);
}

}  // namespace miniinfer::props
