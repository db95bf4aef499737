// .npy and .npz: exact bytes against files numpy 1.24 wrote, round trips of every dtype,
// and a reader that refuses every corruption with an Error instead of reading out of bounds.
#include "base/npy.h"
#include "base/temp_dir.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/rng.h"

namespace miniinfer {
namespace {

namespace fs = std::filesystem;

// Written by numpy 1.24.2: np.save(f, np.arange(6, dtype='<i4').reshape(2, 3)).
const std::string kNumpyNpy(
    "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00\x7b\x27\x64\x65\x73\x63\x72\x27\x3a\x20\x27\x3c\x69\x34\x27\x2c\x20\x27\x66\x6f\x72\x74"
    "\x72\x61\x6e\x5f\x6f\x72\x64\x65\x72\x27\x3a\x20\x46\x61\x6c\x73\x65\x2c\x20\x27\x73\x68\x61\x70\x65\x27\x3a\x20\x28\x32\x2c\x20"
    "\x33\x29\x2c\x20\x7d\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x0a"
    "\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05\x00\x00\x00"
    , 152);

// Written by numpy 1.24.2: np.savez(f, a=np.arange(3, dtype='<f4'),
// b=np.array([[1, 2], [3, 4]], dtype='<i8')). Its local headers carry a ZIP64 extra field.
const std::string kNumpyNpz(
    "\x50\x4b\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00\xb6\x8c\x86\x53\x8c\x00\x00\x00\x8c\x00\x00\x00\x05\x00\x14\x00\x61\x2e"
    "\x6e\x70\x79\x01\x00\x10\x00\x8c\x00\x00\x00\x00\x00\x00\x00\x8c\x00\x00\x00\x00\x00\x00\x00\x93\x4e\x55\x4d\x50\x59\x01\x00\x76"
    "\x00\x7b\x27\x64\x65\x73\x63\x72\x27\x3a\x20\x27\x3c\x66\x34\x27\x2c\x20\x27\x66\x6f\x72\x74\x72\x61\x6e\x5f\x6f\x72\x64\x65\x72"
    "\x27\x3a\x20\x46\x61\x6c\x73\x65\x2c\x20\x27\x73\x68\x61\x70\x65\x27\x3a\x20\x28\x33\x2c\x29\x2c\x20\x7d\x20\x20\x20\x20\x20\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x0a\x00\x00\x00\x00\x00\x00\x80\x3f\x00"
    "\x00\x00\x40\x50\x4b\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00\xa0\x44\x4b\x5b\xa0\x00\x00\x00\xa0\x00\x00\x00\x05\x00\x14"
    "\x00\x62\x2e\x6e\x70\x79\x01\x00\x10\x00\xa0\x00\x00\x00\x00\x00\x00\x00\xa0\x00\x00\x00\x00\x00\x00\x00\x93\x4e\x55\x4d\x50\x59"
    "\x01\x00\x76\x00\x7b\x27\x64\x65\x73\x63\x72\x27\x3a\x20\x27\x3c\x69\x38\x27\x2c\x20\x27\x66\x6f\x72\x74\x72\x61\x6e\x5f\x6f\x72"
    "\x64\x65\x72\x27\x3a\x20\x46\x61\x6c\x73\x65\x2c\x20\x27\x73\x68\x61\x70\x65\x27\x3a\x20\x28\x32\x2c\x20\x32\x29\x2c\x20\x7d\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x0a\x01\x00\x00\x00\x00\x00"
    "\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x50\x4b\x01\x02\x14\x03"
    "\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00\xb6\x8c\x86\x53\x8c\x00\x00\x00\x8c\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x80\x01\x00\x00\x00\x00\x61\x2e\x6e\x70\x79\x50\x4b\x01\x02\x14\x03\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00\xa0\x44\x4b"
    "\x5b\xa0\x00\x00\x00\xa0\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\xc3\x00\x00\x00\x62\x2e\x6e\x70\x79"
    "\x50\x4b\x05\x06\x00\x00\x00\x00\x02\x00\x02\x00\x66\x00\x00\x00\x9a\x01\x00\x00\x00\x00"
    , 534);


NpyArray random_array(Rng& rng) {
  const NpyDtype dtypes[] = {NpyDtype::F32, NpyDtype::F64, NpyDtype::I32, NpyDtype::I64, NpyDtype::U8};
  NpyArray a;
  a.dtype = dtypes[rng.below(5)];
  const uint32_t rank = rng.below(4);
  for (uint32_t i = 0; i < rank; ++i) a.shape.push_back(rng.below(6));
  a.bytes.resize(static_cast<size_t>(a.size()) * npy_item_size(a.dtype));
  for (auto& b : a.bytes) b = static_cast<uint8_t>(rng.next_u32());
  return a;
}

TEST_CASE("crc32 gives the standard check value", "[npy]") {
  CHECK(crc32("123456789") == 0xCBF43926u);
  CHECK(crc32("") == 0u);
}

TEST_CASE("npy_bytes writes exactly what numpy writes", "[npy]") {
  const std::vector<int32_t> values = {0, 1, 2, 3, 4, 5};
  CHECK(npy_bytes(npy_array({2, 3}, values)) == kNumpyNpy);
}

TEST_CASE("parse_npy and parse_npz read files numpy wrote", "[npy]") {
  const NpyArray a = parse_npy(kNumpyNpy, "numpy.npy");
  CHECK(a.shape == std::vector<int64_t>{2, 3});
  CHECK(a.to_i32() == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  const NpzEntries z = parse_npz(kNumpyNpz, "numpy.npz");
  REQUIRE(z.size() == 2);
  CHECK(z[0].first == "a");
  CHECK(z[0].second.shape == std::vector<int64_t>{3});
  CHECK(z[0].second.to_f32() == std::vector<float>{0.0f, 1.0f, 2.0f});
  CHECK(z[1].first == "b");
  CHECK(z[1].second.shape == std::vector<int64_t>{2, 2});
  CHECK(z[1].second.to_i64() == std::vector<int64_t>{1, 2, 3, 4});
}

TEST_CASE("npy headers end in a newline and put the data at a multiple of 64", "[npy]") {
  Rng rng(11);
  for (int i = 0; i < 200; ++i) {
    NpyArray a = random_array(rng);
    for (size_t r = a.shape.size(); r < 1 + rng.below(8); ++r) a.shape.push_back(1);  // long shapes too
    const std::string bytes = npy_bytes(a);
    const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    INFO("shape rank " << a.shape.size());
    CHECK((10 + header_len) % 64 == 0);
    CHECK(bytes[10 + header_len - 1] == '\n');
    CHECK(bytes.size() == 10 + header_len + a.bytes.size());
  }
}

TEST_CASE("scalar, empty and one-element shapes are written as Python tuples", "[npy]") {
  const float one = 1.5f;
  CHECK_THAT(npy_bytes(npy_array({}, std::span<const float>(&one, 1))), Catch::Contains("'shape': (), }"));
  CHECK_THAT(npy_bytes(npy_array({1}, std::span<const float>(&one, 1))), Catch::Contains("'shape': (1,), }"));
  CHECK_THAT(npy_bytes(npy_array({0, 4}, std::span<const float>())), Catch::Contains("'shape': (0, 4), }"));
}

TEST_CASE("npy and npz round trip every dtype and shape, through bytes and files", "[npy]") {
  TempDir dir("npy");
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    Rng rng(seed);
    const NpyArray a = random_array(rng);
    INFO("seed " << seed << " dtype " << npy_descr(a.dtype));
    CHECK(parse_npy(npy_bytes(a), "x.npy") == a);
    NpzEntries entries;
    const uint32_t n = rng.below(5);
    for (uint32_t i = 0; i < n; ++i) entries.emplace_back("arr_" + std::to_string(i), random_array(rng));
    CHECK(parse_npz(npz_bytes(entries), "x.npz") == entries);
    write_npz(dir.file("x.npz"), entries);
    CHECK(read_npz(dir.file("x.npz")) == entries);
    write_npy(dir.file("x.npy"), a);
    CHECK(read_npy(dir.file("x.npy")) == a);
  }
}

TEST_CASE("typed accessors give back the values and refuse another dtype", "[npy]") {
  const std::vector<float> f = {1.0f, -0.0f, 3.5f, 1e-40f};
  const std::vector<double> d = {1.0, -2.25};
  const std::vector<int64_t> l = {-1, int64_t{1} << 40};
  const std::vector<uint8_t> u = {0, 255};
  CHECK(npy_array({2, 2}, f).to_f32() == f);
  CHECK(npy_array({2}, d).to_f64() == d);
  CHECK(npy_array({2}, l).to_i64() == l);
  CHECK(npy_array({2}, u).to_u8() == u);
  CHECK_THROWS_WITH(npy_array({2}, l).to_i32(), "npy: array has dtype <i8, not <i4");
  CHECK_THROWS_WITH(npy_array({3}, d), "npy: shape has 3 elements but 2 values were given");
}

TEST_CASE("npz_bytes refuses repeated, empty and path-like names", "[npy]") {
  const std::vector<float> v = {1.0f};
  const NpyArray a = npy_array({1}, v);
  CHECK_THROWS_WITH(npz_bytes({{"k", a}, {"k", a}}), "npz: array name 'k' given twice");
  CHECK_THROWS_WITH(npz_bytes({{"", a}}), "npz: empty array name");
  CHECK_THROWS_WITH(npz_bytes({{"a/b", a}}), Catch::Contains("may not contain '/'"));
}

// Replaces bytes [at, at + text.size()) of `bytes`.
std::string patched(std::string bytes, size_t at, const std::string& text) {
  bytes.replace(at, text.size(), text);
  return bytes;
}

TEST_CASE("parse_npy names each kind of bad file", "[npy]") {
  const std::string good = kNumpyNpy;
  const auto error = [](const std::string& bytes) {
    try {
      parse_npy(bytes, "bad.npy");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error("\x93NUMP"), Catch::Contains("bad.npy: not a .npy file"));
  CHECK_THAT(error(patched(good, 0, "PK")), Catch::Contains("not a .npy file"));
  CHECK_THAT(error(patched(good, 6, "\x07")), Catch::Contains("unsupported format version 7.0"));
  CHECK_THAT(error(good.substr(0, 100)), Catch::Contains("header of 118 bytes runs past the end"));
  CHECK_THAT(error(good.substr(0, 140)), Catch::Contains("needs 24 data bytes, the file has 12"));
  CHECK_THAT(error(good + "x"), Catch::Contains("needs 24 data bytes, the file has 25"));
  CHECK_THAT(error(patched(good, 20, "'>i4'")), Catch::Contains("unsupported dtype '>i4'"));
  CHECK_THAT(error(patched(good, 44, "True ")), Catch::Contains("Fortran-order arrays are not supported"));
  CHECK_THAT(error(patched(good, 10, "[")), Catch::Contains("bad header at offset 0: expected '{'"));
  CHECK_THAT(error(patched(good, 11, "'descX'")), Catch::Contains("unexpected key 'descX'"));
  CHECK_THAT(error(patched(good, 60, "(2; 3)")), Catch::Contains("expected ',' or ')'"));
  CHECK_THAT(error(patched(good, 60, "(99999999999999999999")), Catch::Contains("dimension too large"));
  CHECK_THAT(error(patched(good, 60, "(4294967296, 4294967296), }")), Catch::Contains("needs more than 2^64 data bytes"));
  CHECK_THAT(error(patched(good, 60, "(1000000, 1000), }")), Catch::Contains("needs 4000000000 data bytes, the file has 24"));
  CHECK_THAT(error(patched(good, 127, "x")), Catch::Contains("text after the dict"));
}

TEST_CASE("parse_npz names each kind of bad archive", "[npy]") {
  const std::string good = kNumpyNpz;
  const auto error = [](const std::string& bytes) {
    try {
      parse_npz(bytes, "bad.npz");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error("PK"), Catch::Contains("bad.npz: too short for a ZIP archive"));
  CHECK_THAT(error(good.substr(0, 500)), Catch::Contains("no ZIP end-of-central-directory record"));
  // A flipped data byte: value 1.0f of member a.npy sits at offset 0xbd.
  CHECK_THAT(error(patched(good, 0xbd, "\x81")), Catch::Contains("member a.npy: CRC-32"));
  CHECK_THAT(error(patched(good, 0x08, "\x08")), Catch::Contains("member a.npy: local header disagrees"));
  std::string compressed = good;
  compressed[0x19a + 10] = 8;  // the central entry of a.npy says DEFLATE
  CHECK_THAT(error(compressed), Catch::Contains("member a.npy is compressed (method 8)"));
}

// Flips, overwrites and truncations of valid files: the readers must answer with data or an
// Error, never crash or read outside the buffer (the CI runs this under ASan and UBSan).
TEST_CASE("parse_npz and parse_npy survive random corruption", "[npy][fuzz]") {
  Rng build(5);
  NpzEntries entries;
  for (int i = 0; i < 3; ++i) entries.emplace_back("x" + std::to_string(i), random_array(build));
  const std::vector<std::string> npz_files = {kNumpyNpz, npz_bytes(entries)};
  const std::vector<std::string> npy_files = {kNumpyNpy, npy_bytes(entries[0].second)};
  int accepted = 0, refused = 0;
  for (uint64_t seed = 1; seed <= 4000; ++seed) {
    Rng rng = Rng::stream(99, seed);
    const bool zip = seed % 2 == 0;
    const auto& sources = zip ? npz_files : npy_files;
    std::string bytes = sources[rng.below(static_cast<uint32_t>(sources.size()))];
    const uint32_t edits = 1 + rng.below(4);
    for (uint32_t e = 0; e < edits && !bytes.empty(); ++e) {
      const size_t at = rng.below(static_cast<uint32_t>(bytes.size()));
      switch (rng.below(3)) {
        case 0: bytes[at] = static_cast<char>(bytes[at] ^ (1 << rng.below(8))); break;
        case 1: bytes[at] = static_cast<char>(rng.next_u32()); break;
        default: bytes.resize(at);
      }
    }
    INFO("seed " << seed);
    try {
      if (zip) {
        parse_npz(bytes, "fuzz.npz");
      } else {
        parse_npy(bytes, "fuzz.npy");
      }
      ++accepted;
    } catch (const Error&) {
      ++refused;
    }
  }
  std::printf("npy/npz fuzz: %d corrupted files accepted, %d refused with an Error\n", accepted, refused);
  CHECK(refused > 1000);
  CHECK(accepted + refused == 4000);
}

}  // namespace
}  // namespace miniinfer
