// .npy and .npz writing and reading. The formats: numpy's NEP 1 ("A simple file format for
// NumPy arrays") and PKWARE's APPNOTE (local headers, central directory, end record); we use
// only what numpy.savez writes: STORED members, no ZIP64, no data descriptors.
#include "base/npy.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "base/atomic_file.h"
#include "base/error.h"

namespace miniinfer {

namespace {

// ---- little-endian bytes ----------------------------------------------------------------------

void put_u16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put_u32(std::string& out, uint32_t v) {
  put_u16(out, v & 0xffff);
  put_u16(out, v >> 16);
}
uint32_t get_u16(std::string_view b, size_t at) {
  return uint32_t{static_cast<uint8_t>(b[at])} | (uint32_t{static_cast<uint8_t>(b[at + 1])} << 8);
}
uint32_t get_u32(std::string_view b, size_t at) { return get_u16(b, at) | (get_u16(b, at + 2) << 16); }

template <typename T>
void append_le(std::vector<uint8_t>& out, T value) {
  using U = std::conditional_t<sizeof(T) == 1, uint8_t,
                               std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
  const U bits = std::bit_cast<U>(value);
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
}

template <typename T>
T read_le(const uint8_t* p) {
  using U = std::conditional_t<sizeof(T) == 1, uint8_t,
                               std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
  U bits = 0;
  for (size_t i = 0; i < sizeof(T); ++i) bits = static_cast<U>(bits | (static_cast<U>(p[i]) << (8 * i)));
  return std::bit_cast<T>(bits);
}

// product(shape), or -1 if a dimension is negative or the product overflows int64. A zero
// dimension makes the product 0 whatever the others are.
int64_t checked_elements(const std::vector<int64_t>& shape) {
  for (int64_t d : shape)
    if (d < 0) return -1;
  for (int64_t d : shape)
    if (d == 0) return 0;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

template <typename T>
NpyArray build(NpyDtype dtype, std::vector<int64_t> shape, std::span<const T> values) {
  const int64_t n = checked_elements(shape);
  if (n < 0 || static_cast<uint64_t>(n) != values.size())
    fail("npy: shape has {} elements but {} values were given", n, values.size());
  NpyArray a{dtype, std::move(shape), {}};
  a.bytes.reserve(values.size() * sizeof(T));
  for (T v : values) append_le(a.bytes, v);
  return a;
}

template <typename T>
std::vector<T> extract(const NpyArray& a, NpyDtype want) {
  if (a.dtype != want) fail("npy: array has dtype {}, not {}", npy_descr(a.dtype), npy_descr(want));
  std::vector<T> out(a.bytes.size() / sizeof(T));
  for (size_t i = 0; i < out.size(); ++i) out[i] = read_le<T>(a.bytes.data() + i * sizeof(T));
  return out;
}

// ---- the .npy header dict ---------------------------------------------------------------------

std::string shape_literal(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";  // Python's one-tuple
  return s + ")";
}

// A parser for the only Python literals a .npy header holds: a dict of str keys whose values
// are str, True/False or a tuple of ints. Every read is bounds-checked.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    std::set<std::string> seen;
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      if (!seen.insert(key).second) bad("key '" + key + "' repeated");
      expect(':');
      skip_space();
      if (key == "descr") {
        descr = string_literal();
      } else if (key == "fortran_order") {
        fortran = boolean();
      } else if (key == "shape") {
        shape = tuple();
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != '}') {
        bad("expected ',' or '}'");
      }
    }
    ++i_;
    skip_space();
    if (i_ != s_.size()) bad("text after the dict");
    if (seen.size() != 3) bad("needs the keys descr, fortran_order and shape");
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail("npy {}: bad header at offset {}: {}", name_, i_, what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t')) ++i_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string_literal() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a string");
    const size_t end = s_.find(quote, i_ + 1);
    if (end == std::string_view::npos) bad("unterminated string");
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    bad("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') bad("expected a dimension");
      int64_t d = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (d > (std::numeric_limits<int64_t>::max() - digit) / 10) bad("dimension too large");
        d = d * 10 + digit;
        ++i_;
      }
      dims.push_back(d);
      skip_space();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != ')') {
        bad("expected ',' or ')'");
      }
    }
    ++i_;
    return dims;
  }

  std::string_view s_;
  const std::string& name_;
  size_t i_ = 0;
};

constexpr std::string_view kMagic("\x93NUMPY", 6);

// ---- ZIP --------------------------------------------------------------------------------------

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22;
// DOS time 00:00:00, date 1980-01-01: a fixed stamp keeps archives byte-reproducible.
constexpr uint32_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;
constexpr uint32_t kVersion = 20;  // 2.0: what STORED members need

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

void check_member_name(const std::string& key) {
  if (key.empty()) fail("npz: empty array name");
  if (key.find('/') != std::string::npos || key.find('\\') != std::string::npos ||
      key.find('\0') != std::string::npos)
    fail("npz: array name '{}' may not contain '/', '\\' or NUL", key);
}

}  // namespace

// ---- public -----------------------------------------------------------------------------------

const char* npy_descr(NpyDtype dtype) {
  switch (dtype) {
    case NpyDtype::F32: return "<f4";
    case NpyDtype::F64: return "<f8";
    case NpyDtype::I32: return "<i4";
    case NpyDtype::I64: return "<i8";
    case NpyDtype::U8: return "|u1";
  }
  return "?";
}

size_t npy_item_size(NpyDtype dtype) {
  switch (dtype) {
    case NpyDtype::F32: case NpyDtype::I32: return 4;
    case NpyDtype::F64: case NpyDtype::I64: return 8;
    case NpyDtype::U8: return 1;
  }
  return 0;
}

int64_t NpyArray::size() const { return checked_elements(shape); }

std::vector<float> NpyArray::to_f32() const { return extract<float>(*this, NpyDtype::F32); }
std::vector<double> NpyArray::to_f64() const { return extract<double>(*this, NpyDtype::F64); }
std::vector<int32_t> NpyArray::to_i32() const { return extract<int32_t>(*this, NpyDtype::I32); }
std::vector<int64_t> NpyArray::to_i64() const { return extract<int64_t>(*this, NpyDtype::I64); }
std::vector<uint8_t> NpyArray::to_u8() const { return extract<uint8_t>(*this, NpyDtype::U8); }

NpyArray npy_array(std::vector<int64_t> shape, std::span<const float> v) { return build(NpyDtype::F32, std::move(shape), v); }
NpyArray npy_array(std::vector<int64_t> shape, std::span<const double> v) { return build(NpyDtype::F64, std::move(shape), v); }
NpyArray npy_array(std::vector<int64_t> shape, std::span<const int32_t> v) { return build(NpyDtype::I32, std::move(shape), v); }
NpyArray npy_array(std::vector<int64_t> shape, std::span<const int64_t> v) { return build(NpyDtype::I64, std::move(shape), v); }
NpyArray npy_array(std::vector<int64_t> shape, std::span<const uint8_t> v) { return build(NpyDtype::U8, std::move(shape), v); }

std::string npy_bytes(const NpyArray& a) {
  const int64_t n = a.size();
  if (n < 0 || static_cast<uint64_t>(n) * npy_item_size(a.dtype) != a.bytes.size())
    fail("npy: shape {} does not match {} data bytes of {}", shape_literal(a.shape), a.bytes.size(),
         npy_descr(a.dtype));
  std::string header = std::string("{'descr': '") + npy_descr(a.dtype) +
                       "', 'fortran_order': False, 'shape': " + shape_literal(a.shape) + ", }";
  // magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64 (numpy's alignment).
  const size_t unpadded = kMagic.size() + 4 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 0xffff) fail("npy: header of {} bytes does not fit format 1.0", header.size());
  std::string out(kMagic);
  out.push_back('\x01');
  out.push_back('\x00');
  put_u16(out, static_cast<uint32_t>(header.size()));
  out += header;
  out.append(reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size());
  return out;
}

NpyArray parse_npy(std::string_view b, const std::string& name) {
  if (b.size() < 10 || b.substr(0, 6) != kMagic) fail("npy {}: not a .npy file (no \\x93NUMPY magic)", name);
  const int major = static_cast<uint8_t>(b[6]);
  size_t header_len = 0, header_at = 0;
  if (major == 1) {
    header_len = get_u16(b, 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) fail("npy {}: file ends inside the preamble", name);
    header_len = get_u32(b, 8);
    header_at = 12;
  } else {
    fail("npy {}: unsupported format version {}.{}", name, major, static_cast<uint8_t>(b[7]));
  }
  if (header_len > b.size() - header_at)
    fail("npy {}: header of {} bytes runs past the end of the file ({} bytes)", name, header_len, b.size());
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  HeaderParser(b.substr(header_at, header_len), name).parse(descr, fortran, shape);
  if (fortran) fail("npy {}: Fortran-order arrays are not supported", name);
  NpyArray a;
  if (descr == "<f4") a.dtype = NpyDtype::F32;
  else if (descr == "<f8") a.dtype = NpyDtype::F64;
  else if (descr == "<i4") a.dtype = NpyDtype::I32;
  else if (descr == "<i8") a.dtype = NpyDtype::I64;
  else if (descr == "|u1" || descr == "<u1") a.dtype = NpyDtype::U8;
  else fail("npy {}: unsupported dtype '{}'", name, descr);
  const size_t data_at = header_at + header_len;
  const size_t data_size = b.size() - data_at;
  const size_t item = npy_item_size(a.dtype);
  const int64_t n = checked_elements(shape);
  if (n < 0 || static_cast<uint64_t>(n) > data_size / item || static_cast<size_t>(n) * item != data_size)
    fail("npy {}: shape {} of {} needs {} data bytes, the file has {}", name, shape_literal(shape), descr,
         n < 0 || static_cast<uint64_t>(n) > std::numeric_limits<uint64_t>::max() / item
             ? std::string("more than 2^64")
             : std::to_string(static_cast<uint64_t>(n) * item),
         data_size);
  a.shape = std::move(shape);
  a.bytes.assign(reinterpret_cast<const uint8_t*>(b.data() + data_at),
                 reinterpret_cast<const uint8_t*>(b.data() + b.size()));
  return a;
}

uint32_t crc32(std::string_view bytes) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  uint32_t c = 0xffffffffu;
  for (char ch : bytes) c = table[(c ^ static_cast<uint8_t>(ch)) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

std::string npz_bytes(const NpzEntries& entries) {
  if (entries.size() > 0xffff) fail("npz: {} arrays is more than a ZIP without ZIP64 holds", entries.size());
  std::set<std::string> names;
  std::string out, central;
  for (const auto& [key, array] : entries) {
    check_member_name(key);
    if (!names.insert(key).second) fail("npz: array name '{}' given twice", key);
    const std::string member = key + ".npy";
    const std::string data = npy_bytes(array);
    if (data.size() >= 0xffffffffu || out.size() >= 0xffffffffu)
      fail("npz: array '{}' does not fit a ZIP without ZIP64", key);
    const uint32_t crc = crc32(data), size = static_cast<uint32_t>(data.size());
    const uint32_t offset = static_cast<uint32_t>(out.size());
    // Bit 11: the name is UTF-8 (harmless for ASCII names).
    const uint32_t flags = 1u << 11;
    put_u32(out, kLocalSig);
    put_u16(out, kVersion);
    put_u16(out, flags);
    put_u16(out, 0);  // STORED
    put_u16(out, kDosTime);
    put_u16(out, kDosDate);
    put_u32(out, crc);
    put_u32(out, size);
    put_u32(out, size);
    put_u16(out, static_cast<uint32_t>(member.size()));
    put_u16(out, 0);  // no extra field
    out += member;
    out += data;

    put_u32(central, kCentralSig);
    put_u16(central, kVersion);  // made by: MS-DOS attributes, 2.0
    put_u16(central, kVersion);
    put_u16(central, flags);
    put_u16(central, 0);
    put_u16(central, kDosTime);
    put_u16(central, kDosDate);
    put_u32(central, crc);
    put_u32(central, size);
    put_u32(central, size);
    put_u16(central, static_cast<uint32_t>(member.size()));
    put_u16(central, 0);  // extra
    put_u16(central, 0);  // comment
    put_u16(central, 0);  // disk
    put_u16(central, 0);  // internal attributes
    put_u32(central, 0);  // external attributes
    put_u32(central, offset);
    central += member;
  }
  if (out.size() + central.size() >= 0xffffffffu) fail("npz: archive does not fit a ZIP without ZIP64");
  const uint32_t central_at = static_cast<uint32_t>(out.size());
  out += central;
  put_u32(out, kEndSig);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, static_cast<uint32_t>(entries.size()));
  put_u16(out, static_cast<uint32_t>(entries.size()));
  put_u32(out, static_cast<uint32_t>(central.size()));
  put_u32(out, central_at);
  put_u16(out, 0);  // comment
  return out;
}

NpzEntries parse_npz(std::string_view b, const std::string& name) {
  // The end record is the last 22 bytes plus a comment of up to 65535 bytes.
  if (b.size() < kEndSize) fail("npz {}: too short for a ZIP archive ({} bytes)", name, b.size());
  size_t end_at = std::string_view::npos;
  const size_t lowest = b.size() > kEndSize + 0xffff ? b.size() - kEndSize - 0xffff : 0;
  for (size_t i = b.size() - kEndSize + 1; i-- > lowest;) {
    if (get_u32(b, i) == kEndSig && i + kEndSize + get_u16(b, i + 20) == b.size()) {
      end_at = i;
      break;
    }
  }
  if (end_at == std::string_view::npos) fail("npz {}: no ZIP end-of-central-directory record", name);
  const uint32_t count = get_u16(b, end_at + 10);
  const uint32_t central_size = get_u32(b, end_at + 12), central_at = get_u32(b, end_at + 16);
  if (get_u16(b, end_at + 4) != 0 || get_u16(b, end_at + 6) != 0 || get_u16(b, end_at + 8) != count)
    fail("npz {}: multi-disk ZIP archives are not supported", name);
  if (central_at == 0xffffffffu || count == 0xffff) fail("npz {}: ZIP64 archives are not supported", name);
  if (uint64_t{central_at} + central_size > end_at)
    fail("npz {}: central directory [{}, +{}) runs past the end record at {}", name, central_at, central_size, end_at);

  NpzEntries entries;
  std::set<std::string> keys;
  size_t at = central_at;
  const size_t central_end = size_t{central_at} + central_size;
  for (uint32_t k = 0; k < count; ++k) {
    if (central_end - at < kCentralSize || get_u32(b, at) != kCentralSig)
      fail("npz {}: central directory entry {} is truncated or has a bad signature", name, k);
    const uint32_t flags = get_u16(b, at + 8), method = get_u16(b, at + 10);
    const uint32_t crc = get_u32(b, at + 16), csize = get_u32(b, at + 20), usize = get_u32(b, at + 24);
    const size_t name_len = get_u16(b, at + 28), extra_len = get_u16(b, at + 30), comment_len = get_u16(b, at + 32);
    const uint32_t local_at = get_u32(b, at + 42);
    if (central_end - at - kCentralSize < name_len + extra_len + comment_len)
      fail("npz {}: central directory entry {} runs past the directory", name, k);
    const std::string member(b.substr(at + kCentralSize, name_len));
    at += kCentralSize + name_len + extra_len + comment_len;

    if (flags & 1) fail("npz {}: member {} is encrypted", name, member);
    if (method != 0) fail("npz {}: member {} is compressed (method {}); only STORED is supported", name, member, method);
    if (csize != usize) fail("npz {}: member {} is STORED but sizes differ ({} vs {})", name, member, csize, usize);
    if (csize == 0xffffffffu || local_at == 0xffffffffu) fail("npz {}: member {} needs ZIP64", name, member);
    if (member.size() < 4 || member.substr(member.size() - 4) != ".npy")
      fail("npz {}: member {} is not a .npy file", name, member);
    const std::string key = member.substr(0, member.size() - 4);
    if (!keys.insert(key).second) fail("npz {}: member {} appears twice", name, member);

    if (local_at > central_at || central_at - local_at < kLocalSize || get_u32(b, local_at) != kLocalSig)
      fail("npz {}: member {}: no local header at offset {}", name, member, local_at);
    const size_t local_name_len = get_u16(b, local_at + 26), local_extra_len = get_u16(b, local_at + 28);
    const uint64_t data_at = uint64_t{local_at} + kLocalSize + local_name_len + local_extra_len;
    if (data_at + csize > central_at)
      fail("npz {}: member {}: data [{}, +{}) runs into the central directory at {}", name, member, data_at, csize, central_at);
    if (b.substr(local_at + kLocalSize, local_name_len) != member)
      fail("npz {}: member {}: local header names '{}'", name, member, b.substr(local_at + kLocalSize, local_name_len));
    // Without a data descriptor (bit 3) the local header repeats CRC and sizes; a ZIP64 writer
    // (Python's zipfile with force_zip64) may put 0xffffffff there and the sizes in an extra field.
    auto same_size = [&](uint32_t local, uint32_t central) { return local == central || local == 0xffffffffu; };
    if (get_u16(b, local_at + 8) != method || (!(flags & 8) && (get_u32(b, local_at + 14) != crc || !same_size(get_u32(b, local_at + 18), csize) ||
                         !same_size(get_u32(b, local_at + 22), usize))))
      fail("npz {}: member {}: local header disagrees with the central directory", name, member);
    const std::string_view data = b.substr(static_cast<size_t>(data_at), csize);
    if (crc32(data) != crc)
      fail("npz {}: member {}: CRC-32 {:08x} does not match the stored {:08x}", name, member, crc32(data), crc);
    entries.emplace_back(key, parse_npy(data, name + ":" + member));
  }
  if (at != central_end) fail("npz {}: central directory has {} bytes after its {} entries", name, central_end - at, count);
  return entries;
}

void write_npy(const std::string& path, const NpyArray& array) { write_file_atomic(path, npy_bytes(array)); }
NpyArray read_npy(const std::string& path) { return parse_npy(read_file(path), path); }
void write_npz(const std::string& path, const NpzEntries& entries) { write_file_atomic(path, npz_bytes(entries)); }
NpzEntries read_npz(const std::string& path) { return parse_npz(read_file(path), path); }

}  // namespace miniinfer
