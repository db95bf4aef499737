// NumPy .npy (format 1.0) and .npz (an uncompressed ZIP of .npy members) so that dumps from
// the engine and the checker open with a plain `numpy.load`. The readers exist for our own
// tests and tools: they validate every length and the ZIP CRCs, and name the file on error.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace miniinfer {

// The element types we write; each is little endian in the file ('<f4', '<i8', '|u1', ...).
enum class NpyDtype : uint8_t { F32, F64, I32, I64, U8 };

const char* npy_descr(NpyDtype dtype);  // "<f4", ...
size_t npy_item_size(NpyDtype dtype);   // 4, ...

// One C-order array; `bytes` holds its elements little endian, product(shape) * item size.
struct NpyArray {
  NpyDtype dtype = NpyDtype::F32;
  std::vector<int64_t> shape;  // () for a scalar
  std::vector<uint8_t> bytes;

  int64_t size() const;  // number of elements
  // The elements, checked: throws Error if the dtype differs.
  std::vector<float> to_f32() const;
  std::vector<double> to_f64() const;
  std::vector<int32_t> to_i32() const;
  std::vector<int64_t> to_i64() const;
  std::vector<uint8_t> to_u8() const;
  bool operator==(const NpyArray&) const = default;
};

// Builders; each checks that product(shape) equals the number of values (Error otherwise).
NpyArray npy_array(std::vector<int64_t> shape, std::span<const float> values);
NpyArray npy_array(std::vector<int64_t> shape, std::span<const double> values);
NpyArray npy_array(std::vector<int64_t> shape, std::span<const int32_t> values);
NpyArray npy_array(std::vector<int64_t> shape, std::span<const int64_t> values);
NpyArray npy_array(std::vector<int64_t> shape, std::span<const uint8_t> values);

// Named arrays in archive order; the names are numpy's keys (the member is NAME.npy).
using NpzEntries = std::vector<std::pair<std::string, NpyArray>>;

// The bytes of a .npy file: magic, version 1.0, header dict padded with spaces and '\n' so
// the data start at a multiple of 64, then the data.
std::string npy_bytes(const NpyArray& array);
// Parses .npy bytes (versions 1.0, 2.0, 3.0; little-endian or byte dtypes, C order only).
// `name` is used in errors only.
NpyArray parse_npy(std::string_view bytes, const std::string& name);

// The bytes of a .npz: STORED members NAME.npy with CRC-32, central directory, end record.
// Names must be unique, non-empty, without '/'; no ZIP64 (each member < 4 GiB).
std::string npz_bytes(const NpzEntries& entries);
// Parses .npz bytes: end record, central directory, local headers, CRC-32 of each member.
NpzEntries parse_npz(std::string_view bytes, const std::string& name);

// File versions; writes are atomic (base/atomic_file.h).
void write_npy(const std::string& path, const NpyArray& array);
NpyArray read_npy(const std::string& path);
void write_npz(const std::string& path, const NpzEntries& entries);
NpzEntries read_npz(const std::string& path);

// CRC-32 as ZIP uses it (reflected polynomial 0xEDB88320); crc32("123456789") == 0xCBF43926.
uint32_t crc32(std::string_view bytes);

}  // namespace miniinfer
