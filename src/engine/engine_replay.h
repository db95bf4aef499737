// A test aid: operations on an engine that keep, per sequence, the tokens it should hold, and
// check every call's logits and (on request) every sequence's cache rows against full
// recompute of those tokens. The first difference is kept as one line (empty: none yet).
#pragma once
#include <fmt/format.h>

#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/engine_test_util.h"

namespace miniinfer::testing {

class Replay {
 public:
  explicit Replay(Engine& engine) : e_(engine), held_(static_cast<size_t>(engine.batch())) {}

  const std::string& first() const { return first_; }
  const std::vector<int>& held(int seq) const { return held_[static_cast<size_t>(seq)]; }
  int calls() const { return calls_; }

  int submit(int seq, std::span<const int> prompt) {
    std::vector<float> logits(static_cast<size_t>(e_.vocab_size()));
    const int hit = e_.submit(seq, prompt, logits);
    held_[static_cast<size_t>(seq)].assign(prompt.begin(), prompt.end());
    check_logits(seq, logits, fmt::format("submit on sequence {}", seq));
    return hit;
  }
  void append(int seq, std::span<const int> tokens) {
    const auto logits = e_.forward_cached(seq, tokens);
    auto& h = held_[static_cast<size_t>(seq)];
    h.insert(h.end(), tokens.begin(), tokens.end());
    check_logits(seq, logits, fmt::format("append of {} tokens to sequence {}", tokens.size(), seq));
  }
  void decode(std::span<const int> seqs, std::span<const int> tokens) {
    const size_t V = static_cast<size_t>(e_.vocab_size());
    std::vector<float> logits(seqs.size() * V);
    e_.decode(seqs, tokens, logits);
    for (size_t i = 0; i < seqs.size(); ++i) {
      held_[static_cast<size_t>(seqs[i])].push_back(tokens[i]);
      check_logits(seqs[i], std::span<const float>(logits).subspan(i * V, V),
                   fmt::format("decode of sequence {}", seqs[i]));
    }
  }
  void truncate(int seq, int p) {
    e_.truncate(seq, p);
    held_[static_cast<size_t>(seq)].resize(static_cast<size_t>(p));
  }
  void fork(int src, int dst, int n) {
    e_.fork(src, dst, n);
    const auto& s = held_[static_cast<size_t>(src)];
    held_[static_cast<size_t>(dst)].assign(s.begin(), s.begin() + n);
  }
  void free(int seq) {
    e_.free(seq);
    held_[static_cast<size_t>(seq)].clear();
  }
  // The cache rows of `seq` against full recompute of the tokens it holds.
  void check_rows(int seq) {
    const auto& h = held_[static_cast<size_t>(seq)];
    if (!first_.empty() || h.empty() || e_.freed(seq)) return;
    if (e_.cursor(seq) != static_cast<int>(h.size())) {
      first_ = fmt::format("sequence {} holds {} tokens, its cursor says {}", seq, h.size(), e_.cursor(seq));
      return;
    }
    KvRows expected;
    e_.forward_uncached(h, false, &expected);
    const KvRows got = e_.cache_rows(seq);
    if (!same_bytes(got.k, expected.k) || !same_bytes(got.v, expected.v))
      first_ = fmt::format("cache rows of sequence {} differ from full recompute", seq);
  }
  void check_all_rows() {
    for (int seq = 0; seq < e_.batch(); ++seq) check_rows(seq);
  }

 private:
  void check_logits(int seq, std::span<const float> got, const std::string& what) {
    ++calls_;
    if (!first_.empty()) return;
    const auto expected = e_.forward_uncached(held_[static_cast<size_t>(seq)]);
    if (!same_bytes(got, expected)) first_ = what + ": logits differ from full recompute";
  }

  Engine& e_;
  std::vector<std::vector<int>> held_;
  std::string first_;
  int calls_ = 0;
};

}  // namespace miniinfer::testing
