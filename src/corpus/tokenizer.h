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

// Case folding used for matching: ASCII A-Z and the Spanish capitals Á É Í Ó Ú Ü Ñ become
// lower case; every other byte passes through unchanged.
std::string fold_case(std::string_view text);
// The 0-based offset of the first byte of the first ill-formed UTF-8 sequence (bad lead byte,
// stray continuation, overlong form, surrogate, above U+10FFFF, or truncated at the end), or
// std::string_view::npos if the text is valid UTF-8.
size_t find_invalid_utf8(std::string_view text);

// A vocabulary wider than the grammar's (a model of GPT-2's 50,257-token shape) ends in
// reserved tokens "<unused_ID>", named by their own id: no word of any language has that
// spelling, so they never collide with a word and no prompt the grammar writes contains one.
// A model may still predict one; it decodes to its name like any other token.
std::string reserved_token(int id);
bool is_reserved_token(std::string_view token);
// `words` followed by reserved tokens up to `size` entries. Throws Error if size < words.size().
std::vector<std::string> pad_vocabulary(std::vector<std::string> words, int size);

class Tokenizer {
 public:
  // Throws Error on duplicates (after case folding) and on an entry that could not be
  // encoded again: empty, invalid UTF-8, or containing whitespace or '.' (other than ".").
  explicit Tokenizer(std::vector<std::string> vocab);

  // Throws Error: "unknown word 'wrked' (nearest: worked, tried, walked)" (the three nearest
  // by edit distance over code points of folded words, ties to the lower id), or
  // "invalid UTF-8 at byte 7" (a 0-based offset, see find_invalid_utf8). Words are separated
  // by any whitespace (ASCII or Unicode). Does not add <bos>.
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
