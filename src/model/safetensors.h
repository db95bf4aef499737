// A generic safetensors reader and writer for F32 tensors (https://huggingface.co/docs/safetensors):
// 8-byte little-endian header length, a JSON header, then the raw data. The reader trusts
// nothing in the file: every problem is a one-line Error naming the file and the tensor.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace miniinfer {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major, product(shape) values
  bool operator==(const Tensor&) const = default;
};

struct SafetensorsFile {
  // In file order: the writer lays the data out in this order, the reader returns the
  // tensors sorted by their data offsets, so a read-write round trip keeps the order.
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__"

  const Tensor* find(std::string_view name) const;  // nullptr if absent
};

// A header larger than this is refused as absurd (the same bound as the Rust reference).
constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

// The file's bytes. The header is `{"__metadata__":{...},"name":{"dtype":"F32","shape":[...],
// "data_offsets":[b,e]},...}` with tensors in the given order, contiguous data offsets, padded
// with spaces to a multiple of 8. Throws Error on an empty or repeated name, the reserved name
// "__metadata__", a negative dimension, or data whose size is not product(shape).
std::string safetensors_bytes(const SafetensorsFile& file);
// Parses and validates the bytes of a safetensors file; `name` appears in every error.
// Rejects: fewer than 8 bytes; a header length past the file or above kMaxSafetensorsHeader;
// a header that is not a JSON object (or repeats a key); metadata that is not a map of strings;
// an empty tensor name; an entry that is not an object of dtype (string), shape (array of integers) and
// data_offsets (two unsigned integers), or has other keys; a dtype other than F32; negative
// dimensions; begin > end; a byte size other than product(shape)*4; offsets past the data;
// overlapping tensors; gaps between tensors or unused bytes at the end.
SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name);

// Atomic write (base/atomic_file.h) and read of a whole file.
void write_safetensors(const std::string& path, const SafetensorsFile& file);
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace miniinfer
