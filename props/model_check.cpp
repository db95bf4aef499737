#include "props/model_check.h"

#include <algorithm>
#include <cmath>
#include <span>
#include <unordered_set>

#include "base/error.h"
#include "corpus/grammar.h"
#include "corpus/tokenizer.h"
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

// Every id a prompt can hold (the vocabulary's words; reserved "<unused_ID>" tokens enter a case
// only as the model's own prediction) once, in full recomputes of at most max_seq_len tokens:
// every row's logits must be finite (weights can be finite and still overflow). At GPT-2 small's
// shape the reserved tokens alone would take 49 recomputes of 1024 tokens, minutes per run.
void check_logits(const Model& model, const std::string& label) {
  Engine engine(model);
  std::vector<int> words;
  for (int id = 0; id < model.config.vocab_size; ++id)
    if (!is_reserved_token(model.vocab[static_cast<size_t>(id)])) words.push_back(id);
  const size_t V = static_cast<size_t>(model.config.vocab_size), T = static_cast<size_t>(model.config.max_seq_len);
  for (size_t first = 0; first < words.size(); first += T) {
    const std::span<const int> tokens = std::span(words).subspan(first, std::min(T, words.size() - first));
    const std::vector<float> logits = engine.forward_uncached(tokens, true);
    const auto bad = std::find_if(logits.begin(), logits.end(), [](float x) { return !std::isfinite(x); });
    if (bad != logits.end()) {
      const size_t row = static_cast<size_t>(bad - logits.begin()) / V;
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
