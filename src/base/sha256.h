// SHA-256 (FIPS 180-4), so a model file or a dump can be named by its content in reports and
// manifests. Own code rather than a crypto library: it is short and the tests pin it.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace miniinfer {

// Incremental hashing: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();
  void update(std::span<const uint8_t> bytes);
  void update(std::string_view bytes);
  std::array<uint8_t, 32> digest();  // finishes the hash; the object is spent afterwards

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> block_{};
  size_t block_used_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lower-case hex of the digest: 64 characters.
std::string to_hex(std::span<const uint8_t> bytes);
std::string sha256_hex(std::string_view bytes);
// The hex SHA-256 of a file's content, read in chunks. Throws Error naming the path.
std::string file_sha256(const std::string& path);

}  // namespace miniinfer
