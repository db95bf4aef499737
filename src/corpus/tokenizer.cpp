// The word-level tokenizer: strict UTF-8 validation, whitespace and "." splitting, case
// folding for matching, and "did you mean" suggestions by edit distance for unknown words.
#include "corpus/tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "base/error.h"

namespace miniinfer {

namespace {

// Length of the well-formed UTF-8 sequence starting at text[i], or 0 if it is ill-formed.
// The second-byte ranges exclude overlong forms, surrogates and code points above U+10FFFF
// (Unicode 15, table 3-7).
size_t utf8_sequence_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < length; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return length;
}

// The code point of a well-formed sequence of `length` bytes at text[i].
char32_t decode_code_point(std::string_view text, size_t i, size_t length) {
  const auto byte = [&](size_t k) { return static_cast<char32_t>(static_cast<uint8_t>(text[k])); };
  if (length == 1) return byte(i);
  char32_t cp = byte(i) & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
  return cp;
}

bool is_space(char32_t cp) {
  switch (cp) {
    case U' ':
    case U'\t':
    case U'\n':
    case U'\v':
    case U'\f':
    case U'\r':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::vector<char32_t> code_points(std::string_view text) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_sequence_length(text, i);
    out.push_back(decode_code_point(text, i, length));
    i += length;
  }
  return out;
}

// Levenshtein distance over code points (one row of the table at a time).
size_t edit_distance(const std::vector<char32_t>& a, const std::vector<char32_t>& b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// Splits valid UTF-8 text into words at whitespace, with every "." a word of its own.
std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t start = 0, i = 0;
  const auto flush = [&](size_t end) {
    if (end > start) words.push_back(text.substr(start, end - start));
  };
  while (i < text.size()) {
    const size_t length = utf8_sequence_length(text, i);
    const char32_t cp = decode_code_point(text, i, length);
    if (cp == U'.') {
      flush(i);
      words.push_back(text.substr(i, 1));
      start = i + 1;
    } else if (is_space(cp)) {
      flush(i);
      start = i + length;
    }
    i += length;
  }
  flush(text.size());
  return words;
}

}  // namespace

std::string fold_case(std::string_view text) {
  std::string out(text);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<uint8_t>(out[i]);
    if (c >= 'A' && c <= 'Z') {
      out[i] = static_cast<char>(c + ('a' - 'A'));
    } else if (c == 0xC3 && i + 1 < out.size()) {
      // Á É Í Ñ Ó Ú Ü are C3 81/89/8D/91/93/9A/9C; their lower case is 0x20 above.
      const auto next = static_cast<uint8_t>(out[i + 1]);
      switch (next) {
        case 0x81:
        case 0x89:
        case 0x8D:
        case 0x91:
        case 0x93:
        case 0x9A:
        case 0x9C:
          out[i + 1] = static_cast<char>(next + 0x20);
          break;
        default:
          break;
      }
      ++i;
    }
  }
  return out;
}

size_t find_invalid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_sequence_length(text, i);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

std::string reserved_token(int id) { return "<unused_" + std::to_string(id) + ">"; }

bool is_reserved_token(std::string_view token) { return token.starts_with("<unused_") && token.ends_with(">"); }

std::vector<std::string> pad_vocabulary(std::vector<std::string> words, int size) {
  if (size < static_cast<int>(words.size()))
    fail("vocab_size {} is smaller than the {} words it must hold", size, words.size());
  words.reserve(static_cast<size_t>(size));
  for (int id = static_cast<int>(words.size()); id < size; ++id) words.push_back(reserved_token(id));
  return words;
}

Tokenizer::Tokenizer(std::vector<std::string> vocab) : vocab_(std::move(vocab)) {
  for (size_t id = 0; id < vocab_.size(); ++id) {
    const std::string& word = vocab_[id];
    if (word.empty()) fail("vocabulary entry {} is empty", id);
    if (const size_t bad = find_invalid_utf8(word); bad != std::string_view::npos)
      fail("vocabulary entry {}: invalid UTF-8 at byte {}", id, bad);
    // A word the splitter would cut apart could be decoded but never encoded again.
    if (split_words(word).size() != 1 || split_words(word)[0] != word)
      fail("vocabulary entry {} '{}' contains whitespace or '.'", id, word);
    const auto [it, inserted] = by_folded_.emplace(fold_case(word), static_cast<int>(id));
    if (!inserted)
      fail("vocabulary has '{}' twice after case folding (ids {} and {})", word, it->second, id);
  }
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    fail("invalid UTF-8 at byte {}", bad);
  std::vector<int> ids;
  for (std::string_view word : split_words(text)) {
    const auto it = by_folded_.find(fold_case(word));
    if (it == by_folded_.end()) {
      // Suggest the three nearest words by edit distance on folded text; ties go to the
      // lower id. "<bos>" and reserved tokens are never suggested: nobody means to type them.
      const std::vector<char32_t> typed = code_points(fold_case(word));
      std::vector<std::pair<size_t, int>> ranked;
      for (size_t id = 0; id < vocab_.size(); ++id) {
        if (vocab_[id] == "<bos>" || is_reserved_token(vocab_[id])) continue;
        ranked.emplace_back(edit_distance(typed, code_points(fold_case(vocab_[id]))),
                            static_cast<int>(id));
      }
      const size_t shown = std::min<size_t>(3, ranked.size());
      std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(shown),
                        ranked.end());
      std::string nearest;
      for (size_t k = 0; k < shown; ++k)
        nearest += (k ? ", " : "") + vocab_[static_cast<size_t>(ranked[k].second)];
      fail("unknown word '{}' (nearest: {})", printable_name(word), nearest);
    }
    ids.push_back(it->second);
  }
  return ids;
}

std::vector<int> Tokenizer::encode_words(std::span<const std::string> words) const {
  std::vector<int> ids;
  ids.reserve(words.size());
  for (size_t k = 0; k < words.size(); ++k) {
    if (const size_t bad = find_invalid_utf8(words[k]); bad != std::string_view::npos)
      fail("invalid UTF-8 at byte {} of word {}", bad, k);
    const auto it = by_folded_.find(fold_case(words[k]));
    if (it != by_folded_.end()) {
      ids.push_back(it->second);
      continue;
    }
    const std::vector<int> one = encode(words[k]);  // throws the unknown-word message
    if (one.size() != 1) fail("word {} '{}' is not a single word", k, words[k]);
    ids.push_back(one[0]);
  }
  return ids;
}

const std::string& Tokenizer::token(int id) const {
  if (id < 0 || id >= size())
    fail("token id {} out of range (the vocabulary has {} tokens)", id, size());
  return vocab_[static_cast<size_t>(id)];
}

std::vector<std::string> Tokenizer::words(std::span<const int> ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int id : ids) out.push_back(token(id));
  return out;
}

std::string Tokenizer::decode(std::span<const int> ids) const {
  std::string out;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k) out += ' ';
    out += token(ids[k]);
  }
  return out;
}

std::string Tokenizer::normalize(std::string_view text) const {
  const std::vector<int> ids = encode(text);
  return decode(ids);
}

int Tokenizer::bos_id() const {
  const auto it = by_folded_.find("<bos>");
  if (it == by_folded_.end()) fail("the vocabulary has no '<bos>' token");
  return it->second;
}

int Tokenizer::end_id() const {
  const auto it = by_folded_.find(".");
  if (it == by_folded_.end()) fail("the vocabulary has no '.' token");
  return it->second;
}

}  // namespace miniinfer
