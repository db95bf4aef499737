// Word-level tokenizer over a model's vocabulary (the grammar's words, "<bos>" and "."),
// UTF-8 throughout. Matching ignores case (the vocabulary keeps one canonical spelling per
// word: "I" upper case, everything else lower case), "." is its own token wherever it
// stands, and nothing silently becomes <unk>: an unknown word is an Error naming it and its
// nearest known words.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace miniinfer {

class Tokenizer {
 public:
  explicit Tokenizer(std::vector<std::string> vocab);  // throws Error on duplicates

  // Throws Error: "unknown word 'wrked' (nearest: worked, work, walked)", or
  // "invalid UTF-8 at byte 7". Does not add <bos>.
  std::vector<int> encode(std::string_view text) const;
  std::vector<int> encode_words(std::span<const std::string> words) const;
  // Canonical words joined by single spaces. Throws Error on an id out of range.
  std::string decode(std::span<const int> ids) const;
  std::vector<std::string> words(std::span<const int> ids) const;
  // What decode(encode(text)) gives for a text that encodes: canonical case, "." split off,
  // single spaces.
  std::string normalize(std::string_view text) const;

  int size() const { return static_cast<int>(vocab_.size()); }
  const std::string& token(int id) const;
  int bos_id() const;
  int end_id() const;  // "."
  const std::vector<std::string>& vocab() const { return vocab_; }

 private:
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int> by_folded_;  // case-folded word -> id
};

}  // namespace miniinfer
