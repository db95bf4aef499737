// Words over an engine's own tokens (props/engine_tokenized.h). Every sequence keeps how many
// engine tokens each of its words took, so a word position is translated to an engine position
// by a sum, and a row of the engine is picked at each word's last token.
#include "props/engine_tokenized.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"
#include "engine/generate_loops.h"

namespace miniinfer::props {
namespace {

using Tokens = std::vector<int>;

class TokenizedEngine final : public EngineUnderTest {
 public:
  TokenizedEngine(std::unique_ptr<EngineUnderTest> inner, std::vector<Tokens> word_ids, const Config& config,
                  int capacity)
      : inner_(std::move(inner)), ids_(std::move(word_ids)), config_(config), capacity_(capacity) {
    for (const Tokens& t : ids_) longest_ = std::max(longest_, static_cast<int>(t.size()));
    words_.assign(static_cast<size_t>(inner_->batch()), {});
  }

  std::string name() const override { return inner_->name(); }
  nlohmann::json settings() const override { return inner_->settings(); }
  std::string describe() const override {
    return fmt::format(
        "{}; tokenize: a word is 1 to {} of its tokens, a word's logit its first token's at the "
        "previous word's end; K/V rows and trace withheld (its positions are not props')",
        inner_->describe(), longest_);
  }
  bool has(Capability) const override { return false; }
  std::string lacks_why(Capability c) const override {
    if (c == Capability::Threads) return inner_->lacks_why(c);
    return "a tokenize engine's K/V rows and trace are in its own positions, withheld";
  }
  const Config& config() const override { return config_; }
  int vocab_size() const override { return static_cast<int>(ids_.size()); }
  int batch() const override { return inner_->batch(); }
  int capacity() const override { return capacity_; }
  int max_seq_len() const override { return std::min(config_.max_seq_len, inner_->max_seq_len() / longest_); }
  int cursor(int seq) const override { return static_cast<int>(held(seq).size()); }

  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits) override;
  void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) override;
  std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows) override;
  std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows) override;
  void truncate(int seq, int p) override {
    if (p < 0 || p > cursor(seq))
      fail("sequence {}: cannot truncate to {} tokens, it holds {}", seq, p, cursor(seq));
    inner_->truncate(seq, engine_position(seq, p));
    held(seq).resize(static_cast<size_t>(p));
  }
  void fork(int src, int dst, int prefix_len) override {
    if (src == dst) fail("fork: source and destination are both sequence {}", src);
    if (prefix_len < 0 || prefix_len > cursor(src))
      fail("fork: sequence {} holds {} tokens, cannot fork a prefix of {}", src, cursor(src), prefix_len);
    inner_->fork(src, dst, engine_position(src, prefix_len));
    held(dst).assign(held(src).begin(), held(src).begin() + prefix_len);
  }
  void reset() override {
    inner_->reset();
    for (auto& w : words_) w.clear();
  }
  void reset(int seq) override {
    inner_->reset(seq);
    held(seq).clear();
  }
  void clean_slate() override {
    inner_->clean_slate();
    for (auto& w : words_) w.clear();
  }
  GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) override {
    detail::check_request(prompts, o, batch(), capacity());
    if (o.trace) fail("a tokenize engine traces nothing (its positions are not props')");
    reset();
    EngineUnderTest& self = *this;
    return detail::run_loops(self, prompts, o);
  }

 private:
  std::vector<int>& held(int seq) {
    if (seq < 0 || seq >= batch()) fail("sequence {} outside 0..{}", seq, batch() - 1);
    return words_[static_cast<size_t>(seq)];
  }
  const std::vector<int>& held(int seq) const {
    if (seq < 0 || seq >= batch()) fail("sequence {} outside 0..{}", seq, batch() - 1);
    return words_[static_cast<size_t>(seq)];
  }
  const Tokens& ids(int word) const {
    if (word < 0 || word >= vocab_size()) fail("token {} outside 0..{}", word, vocab_size() - 1);
    return ids_[static_cast<size_t>(word)];
  }
  // The engine's position of word position p of `seq`: the tokens its first p words took.
  int engine_position(int seq, int p) const {
    int at = 0;
    for (int i = 0; i < p; ++i) at += static_cast<int>(ids(held(seq)[static_cast<size_t>(i)]).size());
    return at;
  }
  Tokens engine_tokens(std::span<const int> words) const {
    Tokens out;
    for (int w : words) out.insert(out.end(), ids(w).begin(), ids(w).end());
    return out;
  }
  void check_room(int seq, size_t words) const {
    if (cursor(seq) + static_cast<int>(words) > capacity_)
      fail("sequence {}: {} tokens at position {} exceed the capacity of {}", seq, words, cursor(seq),
           capacity_);
  }
  void hold(int seq, std::span<const int> words) {
    std::vector<int>& h = held(seq);
    h.insert(h.end(), words.begin(), words.end());
  }
  // Word logits from one engine row: word w's is row[first id of w].
  void project(std::span<const float> row, std::span<float> out) const {
    for (size_t w = 0; w < ids_.size(); ++w) out[w] = row[static_cast<size_t>(ids_[w][0])];
  }
  // The word logits of `words`' ends from the engine's rows of all their tokens.
  std::vector<float> word_rows(std::span<const int> words, const std::vector<float>& rows) const {
    const size_t V = static_cast<size_t>(vocab_size()), Ve = static_cast<size_t>(inner_->vocab_size());
    std::vector<float> out(words.size() * V);
    size_t end = 0;
    for (size_t i = 0; i < words.size(); ++i) {
      end += ids(words[i]).size();
      project(std::span<const float>(rows).subspan((end - 1) * Ve, Ve),
              std::span<float>(out).subspan(i * V, V));
    }
    return out;
  }

  std::unique_ptr<EngineUnderTest> inner_;
  std::vector<Tokens> ids_;  // (V words) each word's engine ids
  Config config_;            // the model's
  int capacity_, longest_ = 1;
  std::vector<std::vector<int>> words_;  // (batch) the words each sequence holds
};

void TokenizedEngine::forward_batch(std::span<const Chunk> chunks, std::span<float> logits) {
  std::vector<Tokens> tokens;
  std::vector<Chunk> inner;
  for (const Chunk& c : chunks) {
    check_room(c.seq, c.tokens.size());
    tokens.push_back(engine_tokens(c.tokens));
  }
  for (size_t i = 0; i < chunks.size(); ++i) inner.push_back({chunks[i].seq, tokens[i]});
  const size_t V = static_cast<size_t>(vocab_size()), Ve = static_cast<size_t>(inner_->vocab_size());
  std::vector<float> rows(chunks.size() * Ve);
  inner_->forward_batch(inner, rows);
  for (size_t i = 0; i < chunks.size(); ++i) {
    project(std::span<const float>(rows).subspan(i * Ve, Ve), logits.subspan(i * V, V));
    hold(chunks[i].seq, chunks[i].tokens);
  }
}

// One word per sequence: the words' tokens but the last go first, in one forward_batch, so the
// engine's one-token decode still computes every row props compares.
void TokenizedEngine::decode(std::span<const int> seqs, std::span<const int> tokens,
                             std::span<float> logits) {
  if (seqs.size() != tokens.size()) fail("decode: {} sequences but {} tokens", seqs.size(), tokens.size());
  std::vector<Tokens> heads;
  std::vector<int> lasts;
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < seqs.size(); ++i) {
    check_room(seqs[i], 1);
    const Tokens& t = ids(tokens[i]);
    heads.emplace_back(t.begin(), t.end() - 1);
    lasts.push_back(t.back());
  }
  for (size_t i = 0; i < seqs.size(); ++i)
    if (!heads[i].empty()) chunks.push_back({seqs[i], heads[i]});
  const size_t V = static_cast<size_t>(vocab_size()), Ve = static_cast<size_t>(inner_->vocab_size());
  if (!chunks.empty()) {
    std::vector<float> unused(chunks.size() * Ve);
    inner_->forward_batch(chunks, unused);
  }
  std::vector<float> rows(seqs.size() * Ve);
  inner_->decode(seqs, lasts, rows);
  for (size_t i = 0; i < seqs.size(); ++i) {
    project(std::span<const float>(rows).subspan(i * Ve, Ve), logits.subspan(i * V, V));
    hold(seqs[i], tokens.subspan(i, 1));
  }
}

std::vector<float> TokenizedEngine::forward_cached(int seq, std::span<const int> tokens, bool all_rows) {
  check_room(seq, tokens.size());
  const std::vector<float> rows = inner_->forward_cached(seq, engine_tokens(tokens), all_rows);
  hold(seq, tokens);
  if (all_rows) return word_rows(tokens, rows);
  std::vector<float> out(static_cast<size_t>(vocab_size()));
  project(rows, out);
  return out;
}

std::vector<float> TokenizedEngine::forward_uncached(std::span<const int> tokens, bool all_rows) {
  if (static_cast<int>(tokens.size()) > max_seq_len())
    fail("forward_uncached: {} tokens exceed max_seq_len {}", tokens.size(), max_seq_len());
  const std::vector<float> rows = inner_->forward_uncached(engine_tokens(tokens), all_rows);
  if (all_rows) return word_rows(tokens, rows);
  std::vector<float> out(static_cast<size_t>(vocab_size()));
  project(rows, out);
  return out;
}

}  // namespace

std::unique_ptr<EngineUnderTest> tokenized_engine(std::unique_ptr<EngineUnderTest> inner,
                                                  std::vector<std::vector<int>> word_ids,
                                                  const Config& model_config, int capacity) {
  return std::make_unique<TokenizedEngine>(std::move(inner), std::move(word_ids), model_config, capacity);
}

}  // namespace miniinfer::props
