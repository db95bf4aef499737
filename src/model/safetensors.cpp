// safetensors for F32 tensors. The reader parses the header with nlohmann::json (its parser
// is not recursive, so a hostile nesting depth cannot overflow the stack) and checks every
// offset against the buffer before touching data; the writer is deterministic, so writing a
// read file again gives the same bytes.
#include "model/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/error.h"

namespace miniinfer {

namespace {

using nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";

}  // namespace

namespace {

// "[64, 32]" for messages; the header itself uses compact JSON, "[64,32]".
std::string shape_text(const std::vector<int64_t>& shape, const char* separator = ", ") {
  return "[" + fmt::format("{}", fmt::join(shape, separator)) + "]";
}

// product(shape) * 4, or -1 when a dimension is negative or the size overflows int64. A zero
// dimension makes the size 0 whatever the others are.
int64_t byte_size(const std::vector<int64_t>& shape) {
  for (int64_t d : shape)
    if (d < 0) return -1;
  for (int64_t d : shape)
    if (d == 0) return 0;
  int64_t n = 4;
  for (int64_t d : shape) {
    if (n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

std::string json_string(const std::string& s, const char* what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    fail("safetensors: {} '{}' is not valid UTF-8", what, printable_name(s));
  }
}

void append_floats(std::string& out, const std::vector<float>& data) {
  if constexpr (std::endian::native == std::endian::little) {
    out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  } else {
    for (float f : data) {
      const uint32_t bits = std::bit_cast<uint32_t>(f);
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
    }
  }
}

std::vector<float> load_floats(std::string_view bytes) {
  std::vector<float> out(bytes.size() / 4);
  if constexpr (std::endian::native == std::endian::little) {
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  } else {
    for (size_t i = 0; i < out.size(); ++i) {
      uint32_t bits = 0;
      for (int k = 0; k < 4; ++k) bits |= uint32_t{static_cast<uint8_t>(bytes[4 * i + k])} << (8 * k);
      out[i] = std::bit_cast<float>(bits);
    }
  }
  return out;
}

// The JSON header as a tree plus the order of its top-level keys (json objects are sorted
// maps; the order breaks ties between empty tensors at one offset). Repeated keys at any
// depth are an error: nlohmann would silently keep one of them.
struct Header {
  json tree;
  std::vector<std::string> order;
};

Header parse_header(std::string_view text, const std::string& name) {
  Header h;
  std::vector<std::set<std::string>> keys_at_depth;
  std::string repeated;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    const size_t d = static_cast<size_t>(depth);
    if (event == json::parse_event_t::object_start) {
      if (keys_at_depth.size() < d + 2) keys_at_depth.resize(d + 2);
      keys_at_depth[d + 1].clear();
    } else if (event == json::parse_event_t::key && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (keys_at_depth.size() < d + 1) keys_at_depth.resize(d + 1);
      if (!keys_at_depth[d].insert(key).second && repeated.empty()) repeated = key;
      if (depth == 1) h.order.push_back(key);
    }
    return true;
  };
  try {
    h.tree = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    std::string why = e.what();
    if (auto p = why.find("] "); why.starts_with("[json.exception") && p != std::string::npos) why = why.substr(p + 2);
    fail("safetensors {}: header is not valid JSON: {}", name, printable_name(why));
  }
  if (!repeated.empty()) fail("safetensors {}: header repeats the key '{}'", name, printable_name(repeated));
  if (!h.tree.is_object()) fail("safetensors {}: header is a JSON {}, not an object", name, h.tree.type_name());
  return h;
}

std::map<std::string, std::string> parse_metadata(const json& m, const std::string& name) {
  if (!m.is_object()) fail("safetensors {}: __metadata__ is a JSON {}, not an object of strings", name, m.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : m.items()) {
    if (!value.is_string())
      fail("safetensors {}: __metadata__ entry '{}' is a JSON {}, not a string", name, printable_name(key), value.type_name());
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& tensor, const json& e, uint64_t data_size, const std::string& file) {
  const std::string t = printable_name(tensor);
  if (!e.is_object()) fail("safetensors {}: tensor {}: entry is a JSON {}, not an object", file, t, e.type_name());
  for (const auto& [key, value] : e.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail("safetensors {}: tensor {}: unexpected key '{}'", file, t, printable_name(key));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) fail("safetensors {}: tensor {}: missing '{}'", file, t, key);
  const json& dtype = e.at("dtype");
  if (!dtype.is_string()) fail("safetensors {}: tensor {}: dtype is a JSON {}, not a string", file, t, dtype.type_name());
  if (dtype.get<std::string>() != "F32")
    fail("safetensors {}: tensor {}: dtype {} is not supported (only F32)", file, t, printable_name(dtype.get<std::string>()));

  Entry out{tensor, {}, 0, 0};
  const json& shape = e.at("shape");
  if (!shape.is_array()) fail("safetensors {}: tensor {}: shape is a JSON {}, not an array", file, t, shape.type_name());
  for (const json& d : shape) {
    if (!d.is_number_integer())
      fail("safetensors {}: tensor {}: shape element is a JSON {}, not an integer", file, t, d.type_name());
    if (d.is_number_unsigned() && d.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})
      fail("safetensors {}: tensor {}: dimension {} is too large", file, t, d.get<uint64_t>());
    const int64_t v = d.get<int64_t>();
    if (v < 0) fail("safetensors {}: tensor {}: negative dimension {} in shape", file, t, v);
    out.shape.push_back(v);
  }

  const json& off = e.at("data_offsets");
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    fail("safetensors {}: tensor {}: data_offsets {} is not [begin, end] of two non-negative integers", file, t,
         printable_name(off.dump()));
  out.begin = off[0].get<uint64_t>();
  out.end = off[1].get<uint64_t>();
  if (out.begin > out.end)
    fail("safetensors {}: tensor {}: data_offsets [{}, {}] has begin > end", file, t, out.begin, out.end);
  const int64_t need = byte_size(out.shape);
  if (need < 0 || static_cast<uint64_t>(need) != out.end - out.begin)
    fail("safetensors {}: tensor {}: shape {} needs {} bytes of F32 but data_offsets [{}, {}] hold {}", file, t,
         shape_text(out.shape), need < 0 ? std::string("too many") : std::to_string(need), out.begin, out.end,
         out.end - out.begin);
  if (out.end > data_size)
    fail("safetensors {}: tensor {}: data_offsets [{}, {}] run past the data section of {} bytes", file, t, out.begin,
         out.end, data_size);
  return out;
}

}  // namespace

const Tensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

std::string safetensors_bytes(const SafetensorsFile& file) {
  std::string header = "{";
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : file.metadata) {
      if (!first) header += ",";
      first = false;
      header += json_string(key, "metadata key") + ":" + json_string(value, "metadata value");
    }
    header += "}";
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    if (name.empty() || name == kMetadataKey) fail("safetensors: '{}' is not a valid tensor name", name);
    if (!names.insert(name).second) fail("safetensors: tensor {} appears twice", printable_name(name));
    const int64_t bytes = byte_size(t.shape);
    if (bytes < 0 || static_cast<uint64_t>(bytes) != t.data.size() * 4)
      fail("safetensors: tensor {} has {} values but shape {}", printable_name(name), t.data.size(), shape_text(t.shape));
    if (header.size() > 1) header += ",";
    header += json_string(name, "tensor name") + ":{\"dtype\":\"F32\",\"shape\":" + shape_text(t.shape, ",") +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + static_cast<uint64_t>(bytes)) +
              "]}";
    offset += static_cast<uint64_t>(bytes);
  }
  header += "}";
  // Spaces pad the header so the data start 8-byte aligned (as the Rust writer does).
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header.size() + offset);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  out += header;
  for (const auto& entry : file.tensors) append_floats(out, entry.second.data);
  return out;
}

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 8) fail("safetensors {}: file has {} bytes, fewer than the 8-byte header length", name, bytes.size());
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t{static_cast<uint8_t>(bytes[static_cast<size_t>(i)])} << (8 * i);
  if (header_len > kMaxSafetensorsHeader)
    fail("safetensors {}: header length {} is absurd (limit {})", name, header_len, kMaxSafetensorsHeader);
  if (header_len > bytes.size() - 8)
    fail("safetensors {}: header length {} runs past the end of the file ({} bytes)", name, header_len, bytes.size());
  const std::string_view data = bytes.substr(8 + header_len);
  Header header = parse_header(bytes.substr(8, header_len), name);

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const std::string& key : header.order) {
    const json& value = header.tree.at(key);
    if (key == kMetadataKey) {
      file.metadata = parse_metadata(value, name);
    } else if (key.empty()) {
      fail("safetensors {}: a tensor has an empty name", name);
    } else {
      entries.push_back(parse_entry(key, value, data.size(), name));
    }
  }

  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < covered)
      fail("safetensors {}: tensor {}: data_offsets [{}, {}] overlap tensor {} (ends at {})", name, printable_name(e.name),
           e.begin, e.end, printable_name(previous->name), covered);
    if (e.begin > covered)
      fail("safetensors {}: tensor {}: gap of {} unused bytes before its data_offsets [{}, {}]", name,
           printable_name(e.name), e.begin - covered, e.begin, e.end);
    covered = e.end;
    previous = &e;
  }
  if (covered != data.size())
    fail("safetensors {}: {} bytes after the last tensor are not used by any tensor", name, data.size() - covered);

  for (Entry& e : entries) {
    file.tensors.emplace_back(std::move(e.name), Tensor{std::move(e.shape), load_floats(data.substr(e.begin, e.end - e.begin))});
  }
  return file;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  write_file_atomic(path, safetensors_bytes(file));
}

SafetensorsFile read_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

}  // namespace miniinfer
