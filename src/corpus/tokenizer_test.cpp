// Tokenizer properties (round trips over sampled sentences and random id sequences, seeded
// with our own Rng) and its one-line errors: unknown words, invalid UTF-8, duplicates.
#include "corpus/tokenizer.h"

#include <catch2/catch.hpp>

#include "base/error.h"
#include "base/rng.h"
#include "corpus/grammar.h"

using namespace miniinfer;

namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer t(Grammar::builtin().vocabulary());
  return t;
}

int id_of(const std::string& word) {
  const auto& v = tokenizer().vocab();
  const auto it = std::find(v.begin(), v.end(), word);
  REQUIRE(it != v.end());
  return static_cast<int>(it - v.begin());
}

std::vector<int> ids_of(std::initializer_list<const char*> words) {
  std::vector<int> ids;
  for (const char* w : words) ids.push_back(id_of(w));
  return ids;
}

std::string error_of(std::string_view text) {
  try {
    (void)tokenizer().encode(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Upper-cases ASCII and the Spanish lower-case letters (the inverse of fold_case).
std::string upper(const std::string& word) {
  std::string out = word;
  for (size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    if (c >= 'a' && c <= 'z') out[i] = static_cast<char>(c - 32);
    if (c == 0xC3 && i + 1 < out.size()) {
      const auto n = static_cast<unsigned char>(out[i + 1]);
      if (n == 0xA1 || n == 0xA9 || n == 0xAD || n == 0xB1 || n == 0xB3 || n == 0xBA || n == 0xBC)
        out[i + 1] = static_cast<char>(n - 0x20);
      ++i;
    }
  }
  return out;
}

// The sentence as a person might type it: random case per word, assorted whitespace, and
// "." sometimes glued to the word before it.
std::string messy(const std::vector<std::string>& words, Rng& rng) {
  const char* spaces[] = {" ", "  ", "\t", "\n", "\r\n", "\xC2\xA0", "\xE3\x80\x80"};
  std::string out = rng.below(2) ? " " : "";
  for (size_t i = 0; i < words.size(); ++i) {
    const bool glue = words[i] == "." && rng.below(2);
    if (i > 0 && !glue) out += spaces[rng.below(7)];
    out += rng.below(3) == 0 ? upper(words[i]) : words[i];
  }
  return out;
}

}  // namespace

TEST_CASE("decode(encode(s)) is normalize(s), the canonical sentence, for sampled sentences") {
  const Grammar& g = Grammar::builtin();
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    Rng rng(seed);
    const Sentence s = g.sample(rng);
    std::string canonical;
    for (const std::string& w : s.words) canonical += (canonical.empty() ? "" : " ") + w;
    const std::string typed = messy(s.words, rng);
    INFO("seed " << seed << ": '" << typed << "'");
    const std::vector<int> ids = tokenizer().encode(typed);
    REQUIRE(tokenizer().decode(ids) == tokenizer().normalize(typed));
    REQUIRE(tokenizer().decode(ids) == canonical);
    REQUIRE(tokenizer().words(ids) == s.words);
    REQUIRE(tokenizer().encode_words(s.words) == ids);
  }
}

TEST_CASE("encode(decode(ids)) == ids for random id sequences") {
  const int n = tokenizer().size();
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    Rng rng(seed);
    std::vector<int> ids(rng.below(20));
    for (int& id : ids) id = static_cast<int>(rng.below(static_cast<uint32_t>(n)));
    INFO("seed " << seed);
    REQUIRE(tokenizer().encode(tokenizer().decode(ids)) == ids);
  }
}

TEST_CASE("the lab's prompts tokenize as written, in any case") {
  CHECK(tokenizer().encode("Yesterday I") == ids_of({"yesterday", "I"}));
  CHECK(tokenizer().encode("yesterday i") == ids_of({"yesterday", "I"}));
  CHECK(tokenizer().encode("Tomorrow he") == ids_of({"tomorrow", "he"}));
  CHECK(tokenizer().encode("Now you") == ids_of({"now", "you"}));
  CHECK(tokenizer().encode("I am going to") == ids_of({"I", "am", "going", "to"}));
  CHECK(tokenizer().encode("Ayer yo") == ids_of({"ayer", "yo"}));
  CHECK(tokenizer().encode("Mañana él") == ids_of({"mañana", "él"}));
  CHECK(tokenizer().encode("MAÑANA ÉL") == ids_of({"mañana", "él"}));
  CHECK(tokenizer().encode("AYER TÚ TRABAJASTE.") == ids_of({"ayer", "tú", "trabajaste", "."}));
  CHECK(tokenizer().encode("EL AÑO PASADO VOSOTROS COMISTEIS") ==
        ids_of({"el", "año", "pasado", "vosotros", "comisteis"}));
  CHECK(tokenizer().encode("") == std::vector<int>{});
  CHECK(tokenizer().encode(" \t\n") == std::vector<int>{});
  CHECK(tokenizer().bos_id() == 0);
  CHECK(tokenizer().end_id() == 1);
}

TEST_CASE("'.' is split off wherever it stands") {
  CHECK(tokenizer().encode("worked.") == ids_of({"worked", "."}));
  CHECK(tokenizer().encode(".worked") == ids_of({".", "worked"}));
  CHECK(tokenizer().encode("I.worked") == ids_of({"I", ".", "worked"}));
  CHECK(tokenizer().encode("worked..") == ids_of({"worked", ".", "."}));
  CHECK(tokenizer().normalize("Yesterday I worked.Now you are working.") ==
        "yesterday I worked . now you are working .");
}

TEST_CASE("whitespace of any kind separates words") {
  const std::vector<int> expected = ids_of({"I", "worked", "."});
  for (const char* space :
       {" ", "\t", "\n", "\r\n", "\v", "\f", "\xC2\x85", "\xC2\xA0", "\xE1\x9A\x80", "\xE2\x80\x80",
        "\xE2\x80\x83", "\xE2\x80\x8A", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x80\xAF",
        "\xE2\x81\x9F", "\xE3\x80\x80"}) {
    INFO("separator bytes of length " << std::string(space).size());
    CHECK(tokenizer().encode(std::string("I") + space + "worked" + space + ".") == expected);
  }
  // Control bytes are shown escaped, never sent to the terminal as they are.
  CHECK(error_of("I \x1b[31mworked").rfind("unknown word '\\x1b[31mworked'", 0) == 0);
  // A zero-width space is not whitespace: the word is unknown, not split.
  CHECK(error_of("I\xE2\x80\x8Bworked").rfind("unknown word 'I\xE2\x80\x8Bworked'", 0) == 0);
}

TEST_CASE("fold_case lowers ASCII and the Spanish capitals only") {
  CHECK(fold_case("ÁÉÍÓÚÜÑ") == "áéíóúüñ");
  CHECK(fold_case("MAÑANA Él") == "mañana él");
  CHECK(fold_case("ÀÇ") == "ÀÇ");  // not Spanish: left alone
  CHECK(fold_case("áéíóúüñ abc") == "áéíóúüñ abc");
}

TEST_CASE("an unknown word is a one-line error naming it and its three nearest words") {
  // Levenshtein over code points of the folded words; ties go to the lower id (byte order).
  CHECK(error_of("Yesterday I wrked .") == "unknown word 'wrked' (nearest: worked, tried, walked)");
  CHECK(error_of("Ayer yo trabaje") ==
        "unknown word 'trabaje' (nearest: trabaja, trabajo, trabajé)");
  CHECK(error_of("I <unk>") == "unknown word '<unk>' (nearest: drunk, run, runs)");
  CHECK(error_of("WRKED") == "unknown word 'WRKED' (nearest: worked, tried, walked)");
  CHECK(error_of("ÀÇ").rfind("unknown word 'ÀÇ' (nearest: ", 0) == 0);
  CHECK(error_of("I worked, you worked").rfind("unknown word 'worked,'", 0) == 0);
  CHECK_THROWS_WITH(tokenizer().encode_words(std::vector<std::string>{"I", "wrked"}),
                    "unknown word 'wrked' (nearest: worked, tried, walked)");
}

TEST_CASE("invalid UTF-8 is a one-line error with the byte offset") {
  using namespace std::string_literals;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"I \xC3"s, "invalid UTF-8 at byte 2"},             // truncated 2-byte sequence
      {"ma\xC3 ana"s, "invalid UTF-8 at byte 2"},         // 2-byte lead, then a space
      {"I \xE2\x82"s, "invalid UTF-8 at byte 2"},         // truncated 3-byte sequence
      {"ab\x80"s, "invalid UTF-8 at byte 2"},             // stray continuation byte
      {"\xBF"s, "invalid UTF-8 at byte 0"},               // stray continuation byte
      {"I \xC0\xAF"s, "invalid UTF-8 at byte 2"},         // overlong '/'
      {"\xC1\x81"s, "invalid UTF-8 at byte 0"},           // overlong 'A'
      {"I am \xE0\x80\xAE"s, "invalid UTF-8 at byte 5"},  // overlong 3-byte '.'
      {"\xF0\x82\x82\xAC"s, "invalid UTF-8 at byte 0"},   // overlong 4-byte
      {"yo \xED\xA0\x80"s, "invalid UTF-8 at byte 3"},    // UTF-16 surrogate
      {"\xF4\x90\x80\x80"s, "invalid UTF-8 at byte 0"},   // above U+10FFFF
      {"\xF5\x80\x80\x80"s, "invalid UTF-8 at byte 0"},   // no such lead byte
      {"\xFF"s, "invalid UTF-8 at byte 0"},
      {"mañana \xC3\xB1\xC3"s, "invalid UTF-8 at byte 10"},  // after valid multibyte text
  };
  for (const auto& [text, message] : cases) {
    INFO("message " << message);
    CHECK(error_of(text) == message);
  }
  // Valid 4-byte text is not a UTF-8 error, just an unknown word.
  CHECK(error_of("I \xF0\x9F\x98\x80").rfind("unknown word '\xF0\x9F\x98\x80'", 0) == 0);
  CHECK(find_invalid_utf8("Mañana él trabajará.") == std::string_view::npos);
  CHECK_THROWS_WITH(tokenizer().encode_words(std::vector<std::string>{"I", "\xC3"}),
                    "invalid UTF-8 at byte 0 of word 1");
}

TEST_CASE("a vocabulary with duplicates after case folding is rejected") {
  CHECK_THROWS_WITH(Tokenizer({"<bos>", ".", "I", "i"}),
                    "vocabulary has 'i' twice after case folding (ids 2 and 3)");
  CHECK_THROWS_WITH(Tokenizer({"mañana", "MAÑANA"}),
                    "vocabulary has 'MAÑANA' twice after case folding (ids 0 and 1)");
  CHECK_THROWS_WITH(Tokenizer({"a", "b", "a"}),
                    "vocabulary has 'a' twice after case folding (ids 0 and 2)");
  CHECK_THROWS_AS(Tokenizer({"two words"}), Error);
  CHECK_THROWS_AS(Tokenizer({"worked."}), Error);
  CHECK_THROWS_AS(Tokenizer({""}), Error);
  CHECK_NOTHROW(Tokenizer({"<bos>", ".", "I", "él"}));
}

TEST_CASE("ids out of range are errors, not crashes") {
  const std::vector<int> bad = {0, tokenizer().size()};
  CHECK_THROWS_WITH(tokenizer().decode(bad), "token id " + std::to_string(tokenizer().size()) +
                                                 " out of range (the vocabulary has " +
                                                 std::to_string(tokenizer().size()) + " tokens)");
  CHECK_THROWS_AS(tokenizer().token(-1), Error);
  const Tokenizer small({"a", "b"});
  CHECK_THROWS_WITH(small.bos_id(), "the vocabulary has no '<bos>' token");
  CHECK_THROWS_WITH(small.end_id(), "the vocabulary has no '.' token");
}

TEST_CASE("a padded vocabulary keeps the grammar's ids, ends in reserved tokens named by id, and round-trips") {
  const auto& words = Grammar::builtin().vocabulary();
  const std::vector<std::string> padded = pad_vocabulary(words, 50257);
  REQUIRE(padded.size() == 50257);
  CHECK(std::equal(words.begin(), words.end(), padded.begin()));
  CHECK(padded[words.size()] == "<unused_" + std::to_string(words.size()) + ">");
  CHECK(padded.back() == "<unused_50256>");
  CHECK(is_reserved_token(padded.back()));
  CHECK_FALSE(is_reserved_token("<bos>"));
  const Tokenizer t(padded);  // no collision with a word, even after case folding
  const std::vector<int> ids = {0, 50256, static_cast<int>(words.size()), 1};
  CHECK(t.encode(t.decode(ids)) == ids);
  // Nobody means to type a reserved token: suggestions come from the words.
  CHECK_THROWS_WITH(t.encode("<unused_5>"), Catch::Matchers::Matches("unknown word '<unused_5>' \\(nearest: [^<]*\\)"));
  CHECK_THROWS_WITH(pad_vocabulary(words, 10),
                    "vocab_size 10 is smaller than the " + std::to_string(words.size()) + " words it must hold");
}
