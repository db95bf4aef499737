// SHA-256 against the FIPS 180-2 appendix vectors, and incremental hashing against one-shot.
#include "base/sha256.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/rng.h"

namespace miniinfer {
namespace {

TEST_CASE("sha256 matches the FIPS 180 test vectors", "[sha256]") {
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(sha256_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("a million 'a' fed in odd-sized pieces gives the FIPS digest", "[sha256]") {
  Sha256 h;
  const std::string piece(997, 'a');
  size_t fed = 0;
  while (fed + piece.size() <= 1000000) {
    h.update(piece);
    fed += piece.size();
  }
  h.update(std::string(1000000 - fed, 'a'));
  CHECK(to_hex(h.digest()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("hashing in any split equals hashing at once, around every block boundary", "[sha256]") {
  Rng rng(20240601);
  for (size_t length = 0; length <= 200; ++length) {
    std::string text(length, '\0');
    for (char& c : text) c = static_cast<char>(rng.next_u32());
    const std::string once = sha256_hex(text);
    for (int trial = 0; trial < 4; ++trial) {
      Sha256 h;
      size_t at = 0;
      while (at < length) {
        const size_t take = std::min<size_t>(length - at, rng.below(70));
        h.update(std::string_view(text).substr(at, take));
        at += take;
      }
      INFO("length " << length << " trial " << trial);
      REQUIRE(to_hex(h.digest()) == once);
    }
  }
}

TEST_CASE("file_sha256 hashes the file's bytes and names a missing file", "[sha256]") {
  const auto dir = std::filesystem::temp_directory_path() / ("miniinfer_sha256_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "abc.bin").string();
  std::string content(200000, '\0');
  Rng rng(7);
  for (char& c : content) c = static_cast<char>(rng.next_u32());
  write_file_atomic(path, content);
  CHECK(file_sha256(path) == sha256_hex(content));
  write_file_atomic(path, "abc");
  CHECK(file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string missing = (dir / "missing.bin").string();
  CHECK_THROWS_WITH(file_sha256(missing), Catch::Contains(missing) && Catch::Contains("No such file"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace miniinfer
