// The safetensors layer: exact bytes of a small file, bit-exact round trips of random files,
// one test per kind of damage with the message it must give, and a fuzz loop that flips and
// truncates bytes of valid files (the reader must return or throw Error, never crash; the CI
// runs it under ASan and UBSan).
#include "model/safetensors.h"

#include <catch2/catch.hpp>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "base/error.h"
#include "base/rng.h"

namespace miniinfer {
namespace {

// Bitwise equality: NaN payloads and -0.0 count, float == would not.
bool same_bits(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& [na, ta] = a.tensors[i];
    const auto& [nb, tb] = b.tensors[i];
    if (na != nb || ta.shape != tb.shape || ta.data.size() != tb.data.size()) return false;
    if (!ta.data.empty() && std::memcmp(ta.data.data(), tb.data.data(), ta.data.size() * 4) != 0) return false;
  }
  return true;
}

// Any bit pattern, NaNs and infinities included; one in four values is a special case.
float random_float(Rng& rng) {
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min(),
                            std::bit_cast<float>(0x7fc00001u), std::bit_cast<float>(0xff800123u)};
  if (rng.below(4) == 0) return specials[rng.below(6)];
  return std::bit_cast<float>(rng.next_u32());
}

SafetensorsFile random_file(Rng& rng) {
  SafetensorsFile f;
  const uint32_t n = rng.below(6);
  for (uint32_t i = 0; i < n; ++i) {
    Tensor t;
    const uint32_t rank = rng.below(4);
    int64_t count = 1;
    for (uint32_t r = 0; r < rank; ++r) {
      t.shape.push_back(rng.below(5));
      count *= t.shape.back();
    }
    for (int64_t k = 0; k < count; ++k) t.data.push_back(random_float(rng));
    // Names in no particular order, some with characters JSON must escape.
    const char* stems[] = {"w", "layer.\"q\"", "b\\ias", "ünï", "tab\there"};
    f.tensors.emplace_back(std::string(stems[rng.below(5)]) + "." + std::to_string(i), std::move(t));
  }
  if (rng.below(2)) f.metadata["config"] = "{\"a\": 1}";
  if (rng.below(2)) f.metadata["note"] = "line\nbreak \"quoted\"";
  return f;
}

// A file from a hand-written header and `data_bytes` zero bytes of data.
std::string craft(const std::string& header, size_t data_bytes) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i)));
  return out + header + std::string(data_bytes, '\0');
}

std::string error_of(const std::string& bytes) {
  try {
    parse_safetensors(bytes, "t.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST_CASE("safetensors_bytes lays out header length, padded compact JSON, then little-endian F32", "[safetensors]") {
  SafetensorsFile f;
  f.metadata["k"] = "v";
  f.tensors.emplace_back("b", Tensor{{2}, {1.0f, -2.0f}});
  f.tensors.emplace_back("a", Tensor{{}, {0.5f}});
  const std::string header =
      R"({"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"F32","shape":[],"data_offsets":[8,12]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const std::string bytes = safetensors_bytes(f);
  REQUIRE(bytes.size() == 8 + padded.size() + 12);
  CHECK(padded.size() % 8 == 0);
  CHECK(padded.size() == 136);
  CHECK(bytes.substr(0, 8) == std::string("\x88\x00\x00\x00\x00\x00\x00\x00", 8));  // 136 = padded length
  CHECK(bytes.substr(8, padded.size()) == padded);
  CHECK(bytes.substr(8 + padded.size()) == std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x00\x00\x00\x3f", 12));
}

TEST_CASE("writing then reading gives the same tensors bit for bit, and the same bytes again", "[safetensors]") {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    Rng rng(seed);
    const SafetensorsFile f = random_file(rng);
    const std::string bytes = safetensors_bytes(f);
    const SafetensorsFile back = parse_safetensors(bytes, "round.safetensors");
    INFO("seed " << seed);
    REQUIRE(same_bits(f, back));
    REQUIRE(safetensors_bytes(back) == bytes);
  }
}

TEST_CASE("the reader returns tensors in data order whatever the header order", "[safetensors]") {
  const std::string header =
      R"({"z":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"shape":[1],"data_offsets":[0,4],"dtype":"F32"}})";
  const SafetensorsFile f = parse_safetensors(craft(header, 8), "t");
  REQUIRE(f.tensors.size() == 2);
  CHECK(f.tensors[0].first == "a");
  CHECK(f.tensors[1].first == "z");
  CHECK(f.find("z") == &f.tensors[1].second);
  CHECK(f.find("y") == nullptr);
}

TEST_CASE("empty tensors keep their order through a round trip", "[safetensors]") {
  SafetensorsFile f;
  f.tensors.emplace_back("e2", Tensor{{0}, {}});
  f.tensors.emplace_back("e1", Tensor{{3, 0}, {}});
  f.tensors.emplace_back("x", Tensor{{1}, {7.0f}});
  f.tensors.emplace_back("e0", Tensor{{0}, {}});
  const std::string bytes = safetensors_bytes(f);
  CHECK(same_bits(parse_safetensors(bytes, "t"), f));
}

// ---- one test per kind of damage --------------------------------------------------------------

const std::string kEntry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";

TEST_CASE("a file shorter than 8 bytes is refused", "[safetensors][corrupt]") {
  CHECK(error_of("") == "safetensors t.safetensors: file has 0 bytes, fewer than the 8-byte header length");
  CHECK(error_of(std::string("\x02\x00\x00", 3)) == "safetensors t.safetensors: file has 3 bytes, fewer than the 8-byte header length");
}

TEST_CASE("a header length past the end of the file is refused", "[safetensors][corrupt]") {
  std::string bytes = craft("{}", 0);
  bytes[0] = 3;
  CHECK(error_of(bytes) == "safetensors t.safetensors: header length 3 runs past the end of the file (10 bytes)");
}

TEST_CASE("an absurd header length is refused before anything is allocated", "[safetensors][corrupt]") {
  CHECK(error_of(std::string(8, '\xff') + "{}") ==
        "safetensors t.safetensors: header length 18446744073709551615 is absurd (limit 100000000)");
  std::string bytes = craft("{}", 0);
  bytes[3] = 0x10;  // 268435458
  CHECK_THAT(error_of(bytes), Catch::Contains("header length 268435458 is absurd"));
}

TEST_CASE("a header that is not valid JSON is refused", "[safetensors][corrupt]") {
  CHECK_THAT(error_of(craft(R"({"a":{)", 0)), Catch::StartsWith("safetensors t.safetensors: header is not valid JSON: parse error"));
  CHECK_THAT(error_of(craft(R"({} trailing)", 0)), Catch::Contains("header is not valid JSON"));
  CHECK_THAT(error_of(craft("{\"\xff\":1}", 0)), Catch::Contains("header is not valid JSON"));  // bad UTF-8
  CHECK_THAT(error_of(craft(std::string(100000, '['), 0)), Catch::Contains("header is not valid JSON"));  // deep nesting
}

TEST_CASE("a header that is not an object is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft("[1, 2]", 0)) == "safetensors t.safetensors: header is a JSON array, not an object");
  CHECK(error_of(craft("   7    ", 0)) == "safetensors t.safetensors: header is a JSON number, not an object");
}

TEST_CASE("a repeated key is refused instead of silently keeping one", "[safetensors][corrupt]") {
  CHECK(error_of(craft("{\"w\":{" + kEntry + "},\"w\":{" + kEntry + "}}", 8)) ==
        "safetensors t.safetensors: header repeats the key 'w'");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: header repeats the key 'dtype'");
}

TEST_CASE("metadata that is not a map of strings is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"__metadata__":[1]})", 0)) ==
        "safetensors t.safetensors: __metadata__ is a JSON array, not an object of strings");
  CHECK(error_of(craft(R"({"__metadata__":{"config":{"d_model":64}}})", 0)) ==
        "safetensors t.safetensors: __metadata__ entry 'config' is a JSON object, not a string");
}

TEST_CASE("a tensor entry that is not an object is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":"F32"})", 0)) == "safetensors t.safetensors: tensor w: entry is a JSON string, not an object");
}

TEST_CASE("a tensor entry missing dtype, shape or data_offsets is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8)) == "safetensors t.safetensors: tensor w: missing 'dtype'");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8)) == "safetensors t.safetensors: tensor w: missing 'shape'");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[2]}})", 8)) == "safetensors t.safetensors: tensor w: missing 'data_offsets'");
}

TEST_CASE("a tensor with an empty name is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft("{\"\":{" + kEntry + "}}", 8)) == "safetensors t.safetensors: a tensor has an empty name");
}

TEST_CASE("a tensor entry with an unexpected key is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft("{\"w\":{" + kEntry + ",\"offset\":0}}", 8)) == "safetensors t.safetensors: tensor w: unexpected key 'offset'");
}

TEST_CASE("a tensor entry with the wrong JSON types is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: dtype is a JSON number, not a string");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: shape is a JSON string, not an array");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: shape element is a JSON number, not an integer");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: shape element is a JSON array, not an integer");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":{"begin":0}}})", 8)) ==
        R"(safetensors t.safetensors: tensor w: data_offsets {"begin":0} is not [begin, end] of two non-negative integers)");
  CHECK_THAT(error_of(craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", 8)), Catch::Contains("is not [begin, end]"));
  CHECK_THAT(error_of(craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", 8)), Catch::Contains("is not [begin, end]"));
  CHECK_THAT(error_of(craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8)), Catch::Contains("is not [begin, end]"));
  CHECK_THAT(error_of(craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}})", 8)), Catch::Contains("is not [begin, end]"));
  CHECK_THAT(error_of(craft(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("tensor w: dimension 9223372036854775808 is too large"));
}

TEST_CASE("a dtype other than F32 is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: dtype F16 is not supported (only F32)");
}

TEST_CASE("a negative dimension is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: negative dimension -2 in shape");
}

TEST_CASE("data_offsets with begin after end are refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)) ==
        "safetensors t.safetensors: tensor w: data_offsets [8, 0] has begin > end");
}

TEST_CASE("a byte size other than product(shape) * 4 is refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: shape [2, 3] needs 24 bytes of F32 but data_offsets [0, 8] hold 8");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor w: shape [4294967296, 4294967296] needs too many bytes of F32 but data_offsets [0, 8] hold 8");
  // A zero dimension after a huge one is an empty tensor, not an overflow.
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0)) == "no error");
}

TEST_CASE("data_offsets outside the data section are refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8)) ==
        "safetensors t.safetensors: tensor w: data_offsets [4, 12] run past the data section of 8 bytes");
  CHECK(error_of(craft(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})", 8)) ==
        "safetensors t.safetensors: tensor w: data_offsets [18446744073709551615, 18446744073709551615] run past the data section of 8 bytes");
}

TEST_CASE("overlapping tensors are refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)) ==
        "safetensors t.safetensors: tensor b: data_offsets [4, 12] overlap tensor a (ends at 8)");
  CHECK(error_of(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)) ==
        "safetensors t.safetensors: tensor b: data_offsets [0, 8] overlap tensor a (ends at 8)");
}

TEST_CASE("gaps between tensors and unused bytes at the end are refused", "[safetensors][corrupt]") {
  CHECK(error_of(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12)) ==
        "safetensors t.safetensors: tensor b: gap of 4 unused bytes before its data_offsets [8, 12]");
  CHECK(error_of(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12)) ==
        "safetensors t.safetensors: 8 bytes after the last tensor are not used by any tensor");
}

TEST_CASE("names from the file are escaped so an error stays one line", "[safetensors][corrupt]") {
  const std::string e = error_of(craft(R"({"bad\nname":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}})", 8));
  CHECK(e == "safetensors t.safetensors: tensor bad\\x0aname: dtype F16 is not supported (only F32)");
  CHECK(e.find('\n') == std::string::npos);
}

TEST_CASE("the writer refuses tensors it could not describe", "[safetensors]") {
  SafetensorsFile f;
  f.tensors.emplace_back("w", Tensor{{2, 2}, {1.0f}});
  CHECK_THROWS_WITH(safetensors_bytes(f), "safetensors: tensor w has 1 values but shape [2, 2]");
  f.tensors = {{"w", Tensor{{1}, {1.0f}}}, {"w", Tensor{{1}, {1.0f}}}};
  CHECK_THROWS_WITH(safetensors_bytes(f), "safetensors: tensor w appears twice");
  f.tensors = {{"__metadata__", Tensor{{1}, {1.0f}}}};
  CHECK_THROWS_WITH(safetensors_bytes(f), "safetensors: '__metadata__' is not a valid tensor name");
  f.tensors = {{"bad\xff", Tensor{{1}, {1.0f}}}};
  CHECK_THROWS_WITH(safetensors_bytes(f), Catch::Contains("is not valid UTF-8"));
}

// ---- fuzz -------------------------------------------------------------------------------------

// Damages `bytes` with 1-4 edits: bit flips, random bytes, digit swaps in the header (which
// reach the offset and shape checks), and truncation.
void damage(std::string& bytes, Rng& rng) {
  const uint32_t edits = 1 + rng.below(4);
  for (uint32_t e = 0; e < edits && !bytes.empty(); ++e) {
    const size_t at = rng.below(static_cast<uint32_t>(bytes.size()));
    switch (rng.below(5)) {
      case 0: bytes[at] = static_cast<char>(bytes[at] ^ (1 << rng.below(8))); break;
      case 1: bytes[at] = static_cast<char>(rng.next_u32()); break;
      case 2: bytes.resize(at); break;
      case 3: bytes[rng.below(8)] = static_cast<char>(rng.next_u32()); break;  // the header length
      default: {
        const size_t digit = bytes.find_first_of("0123456789", 8 + at % 200);
        if (digit != std::string::npos) bytes[digit] = static_cast<char>('0' + rng.below(10));
      }
    }
  }
}

TEST_CASE("damaged files are read or refused with an Error, and what is read writes back", "[safetensors][fuzz]") {
  int accepted = 0, refused = 0;
  for (uint64_t seed = 1; seed <= 6000; ++seed) {
    Rng rng = Rng::stream(2024, seed);
    const std::string good = safetensors_bytes(random_file(rng));
    std::string bytes = good;
    damage(bytes, rng);
    INFO("seed " << seed);
    try {
      const SafetensorsFile f = parse_safetensors(bytes, "fuzz.safetensors");
      ++accepted;
      // Whatever the reader accepts is a well-formed file: it writes and reads back the same.
      REQUIRE(same_bits(parse_safetensors(safetensors_bytes(f), "again"), f));
    } catch (const Error&) {
      ++refused;
    }
  }
  std::printf("safetensors fuzz: %d damaged files accepted, %d refused with an Error\n", accepted, refused);
  CHECK(refused > 3000);
  CHECK(accepted + refused == 6000);
}

}  // namespace
}  // namespace miniinfer
