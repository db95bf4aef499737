#include "protocol/codec.h"

#include <array>
#include <bit>
#include <cstring>

#include "base/error.h"

namespace miniinfer::protocol {
namespace {

constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr int digit_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// IEEE half to float, exactly (subnormals, infinities and NaN included).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return std::bit_cast<float>(sign);
    exp = 113;  // renormalize: 127 - 15 + 1
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --exp;
    }
    mant &= 0x3ffu;
    return std::bit_cast<float>(sign | (exp << 23) | (mant << 13));
  }
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

// Every 12-bit value's two digits, for base64_encode.
constexpr auto kPairs = [] {
  std::array<char, 2 * 4096> t{};
  for (size_t v = 0; v < 4096; ++v) {
    t[2 * v] = kDigits[v >> 6];
    t[2 * v + 1] = kDigits[v & 63];
  }
  return t;
}();

// digit_value as a table: 64 (a bit no digit has) for every byte that is not a digit.
constexpr auto kValues = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const int d = digit_value(static_cast<char>(c));
    t[static_cast<size_t>(c)] = static_cast<uint8_t>(d < 0 ? 64 : d);
  }
  return t;
}();

constexpr const char* kSites[] = {"q",      "k",      "v",   "probs", "attn_out", "block_out",
                                  "k_read", "v_read", "ln1", "ln2",   "mlp",      "final_ln"};
// One name per TraceKind, in its order: a kind added to trace.h without a name here fails to build.
static_assert(std::size(kSites) == static_cast<size_t>(TraceKind::FinalLn) + 1);

}  // namespace

std::string base64_encode(std::span<const unsigned char> b) {
  std::string out((b.size() + 2) / 3 * 4, '=');
  char* o = out.data();
  size_t i = 0;
  for (; i + 3 <= b.size(); i += 3, o += 4) {  // 24 bits: two 12-bit halves, two digits each
    const uint32_t n = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8) | uint32_t{b[i + 2]};
    std::memcpy(o, &kPairs[2 * (n >> 12)], 2);
    std::memcpy(o + 2, &kPairs[2 * (n & 4095)], 2);
  }
  if (i < b.size()) {  // one or two bytes left: two or three digits, then '=' padding
    const uint32_t n = (uint32_t{b[i]} << 16) | (i + 1 < b.size() ? uint32_t{b[i + 1]} << 8 : 0);
    o[0] = kDigits[(n >> 18) & 63];
    o[1] = kDigits[(n >> 12) & 63];
    if (i + 1 < b.size()) o[2] = kDigits[(n >> 6) & 63];
  }
  return out;
}

std::vector<unsigned char> base64_decode(std::string_view s) {
  if (s.size() % 4 != 0) fail("base64: length {} is not a multiple of 4", s.size());
  std::vector<unsigned char> out(s.size() / 4 * 3);
  unsigned char* o = out.data();
  // Every group but the last has four digits and no padding: a table lookup each.
  const size_t body = s.empty() ? 0 : s.size() - 4;
  for (size_t i = 0; i < body; i += 4, o += 3) {
    const uint32_t a = kValues[static_cast<unsigned char>(s[i])],
                   b = kValues[static_cast<unsigned char>(s[i + 1])],
                   c = kValues[static_cast<unsigned char>(s[i + 2])],
                   d = kValues[static_cast<unsigned char>(s[i + 3])];
    if ((a | b | c | d) & 64) {
      for (size_t j = i;; ++j)
        if (digit_value(s[j]) < 0) fail("base64: bad character at offset {}", j);
    }
    const uint32_t n = (a << 18) | (b << 12) | (c << 6) | d;
    o[0] = static_cast<unsigned char>(n >> 16);
    o[1] = static_cast<unsigned char>(n >> 8);
    o[2] = static_cast<unsigned char>(n);
  }
  if (s.empty()) return out;
  // The last group, which may end in one or two '='.
  const size_t i = body;
  uint32_t n = 0;
  int pad = 0;
  for (size_t j = 0; j < 4; ++j) {
    const char c = s[i + j];
    if (c == '=' && j >= 2 && (j == 3 || s[i + 3] == '=')) {
      ++pad;
      n <<= 6;
      continue;
    }
    const int d = digit_value(c);
    if (d < 0 || pad) fail("base64: bad character at offset {}", i + j);
    n = (n << 6) | static_cast<uint32_t>(d);
  }
  o[0] = static_cast<unsigned char>(n >> 16);
  if (pad < 2) o[1] = static_cast<unsigned char>(n >> 8);
  if (pad < 1) o[2] = static_cast<unsigned char>(n);
  out.resize(out.size() - static_cast<size_t>(pad));
  return out;
}

// The host is little-endian (x86-64, as the build's -march says), so floats are copied as bytes.
nlohmann::json encode_tensor(std::span<const float> data, const std::vector<int>& shape) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  return {{"dtype", "f32"}, {"shape", shape}, {"data", base64_encode({p, data.size() * sizeof(float)})}};
}

Tensor decode_tensor(const nlohmann::json& j, std::string_view field) {
  if (!j.is_object()) fail("{}: not a tensor object", field);
  Tensor t;
  try {
    t.shape = j.at("shape").get<std::vector<int>>();
    const std::string dtype = j.at("dtype").get<std::string>();
    const nlohmann::json& data = j.at("data");
    if (!data.is_string()) (void)data.get<std::string>();  // nlohmann's type error, as it words it
    const std::vector<unsigned char> bytes = base64_decode(data.get_ref<const std::string&>());  // not copied
    size_t n = 1;
    for (int d : t.shape) {
      if (d < 0) fail("{}: negative dimension in shape", field);
      n *= static_cast<size_t>(d);
    }
    const size_t width = dtype == "f32" ? 4 : dtype == "f16" || dtype == "bf16" ? 2 : 0;
    if (!width) fail("{}: dtype '{}' is not f32, f16 or bf16", field, dtype);
    if (bytes.size() != n * width)
      fail("{}: {} bytes of data for {} {} elements", field, bytes.size(), n, dtype);
    t.data.resize(n);
    if (width == 4) {
      if (n) std::memcpy(t.data.data(), bytes.data(), n * 4);
      return t;
    }
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = static_cast<uint16_t>(bytes[i * 2] | (bytes[i * 2 + 1] << 8));
      t.data[i] = dtype == "f16" ? half_to_float(h) : std::bit_cast<float>(uint32_t{h} << 16);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}", field, e.what());
  }
  return t;
}

const char* site_name(TraceKind kind) { return kSites[static_cast<int>(kind)]; }

TraceKind site_from_name(std::string_view name) {
  for (int i = 0; i < static_cast<int>(std::size(kSites)); ++i)
    if (name == kSites[i]) return static_cast<TraceKind>(i);
  fail("trace: unknown site '{}'", name);
}

Pass pass_from_name(std::string_view name) {
  for (Pass p : {Pass::Uncached, Pass::Prefill, Pass::Decode, Pass::Resume, Pass::Verify})
    if (name == to_string(p)) return p;
  fail("trace: unknown pass '{}'", name);
}

nlohmann::json encode_record(const TraceRecord& r) {
  nlohmann::json j = {{"layer", r.layer},
          {"head", r.head},
          {"site", site_name(r.kind)},
          {"seq", r.seq},
          {"pos", r.pos},
          {"pass", to_string(r.pass)},
          {"data", encode_tensor(r.data, {static_cast<int>(r.data.size())})}};
  // Where a final_ln row came from, and whose rows a k_read/v_read row is: only when known.
  if (r.from_seq >= 0) j["from_seq"] = r.from_seq;
  if (r.from_pos >= 0) j["from_pos"] = r.from_pos;
  if (r.from_row >= 0) j["from_row"] = r.from_row;
  return j;
}

TraceRecord decode_record(const nlohmann::json& j) {
  TraceRecord r;
  try {
    r.layer = j.at("layer").get<int>();
    r.head = j.at("head").get<int>();
    r.kind = site_from_name(j.at("site").get<std::string>());
    r.seq = j.at("seq").get<int>();
    r.pos = j.at("pos").get<int>();
    r.pass = j.contains("pass") ? pass_from_name(j.at("pass").get<std::string>()) : Pass::Decode;
    r.from_seq = j.value("from_seq", -1);
    r.from_pos = j.value("from_pos", -1);
    r.from_row = j.value("from_row", -1);
  } catch (const nlohmann::json::exception& e) {
    fail("trace record: {}", e.what());
  }
  r.data = decode_tensor(j.at("data"), "trace record data").data;
  return r;
}

namespace {

// A string nlohmann writes as it is: printable ASCII, no quote, no backslash.
// Written without branches, so that the compiler vectorizes it: most of a line's bytes pass here.
bool plain(std::string_view s) {
  unsigned bad = 0;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    bad |= static_cast<unsigned>(c < 0x20) | static_cast<unsigned>(c >= 0x7f) |
           static_cast<unsigned>(c == '"') | static_cast<unsigned>(c == '\\');
  }
  return bad == 0;
}

void dump_into(std::string& out, const nlohmann::json& j) {
  if (j.is_object()) {
    out += '{';
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it != j.begin()) out += ',';
      dump_into(out, nlohmann::json(it.key()));
      out += ':';
      dump_into(out, it.value());
    }
    out += '}';
  } else if (j.is_array()) {
    out += '[';
    for (size_t i = 0; i < j.size(); ++i) {
      if (i) out += ',';
      dump_into(out, j[i]);
    }
    out += ']';
  } else if (j.is_string() && plain(j.get_ref<const std::string&>())) {
    out += '"';
    out += j.get_ref<const std::string&>();
    out += '"';
  } else {
    out += j.dump();
  }
}

// parse_line's stand-in for the long string number i: "\u0001" then i. No string of a line
// without a backslash can hold a control character, so none is mistaken for one.
void put_back(nlohmann::json& j, const std::vector<std::string_view>& cut) {
  if (j.is_structured()) {
    for (auto& x : j) put_back(x, cut);
  } else if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (!s.empty() && s[0] == '\x01') j = std::string(cut.at(std::stoul(s.substr(1))));
  }
}

}  // namespace

std::string dump_line(const nlohmann::json& j) {
  std::string out;
  dump_into(out, j);
  return out;
}

// Without a backslash in the line, every '"' opens or closes a string, so the long ones can be
// cut out by pairing quotes; a long string the lexer would refuse (a control character, a byte
// outside ASCII) or one that is an object's key stays for the lexer to judge.
nlohmann::json parse_line(std::string_view line) {
  constexpr size_t kLong = 128;
  if (line.size() < kLong || line.find('\\') != std::string_view::npos)
    return nlohmann::json::parse(line, nullptr, false);
  std::string rest;
  std::vector<std::string_view> cut;
  size_t from = 0;
  for (size_t open = line.find('"'); open != std::string_view::npos; open = line.find('"', open)) {
    const size_t close = line.find('"', open + 1);
    if (close == std::string_view::npos) break;
    const std::string_view s = line.substr(open + 1, close - open - 1);
    const size_t next = line.find_first_not_of(" \t\r\n", close + 1);
    if (s.size() >= kLong && plain(s) && (next == std::string_view::npos || line[next] != ':')) {
      rest.append(line.substr(from, open - from));
      rest += fmt::format("\"\\u0001{}\"", cut.size());
      cut.push_back(s);
      from = close + 1;
    }
    open = close + 1;
  }
  if (cut.empty()) return nlohmann::json::parse(line, nullptr, false);
  rest.append(line.substr(from));
  nlohmann::json j = nlohmann::json::parse(rest, nullptr, false);
  if (!j.is_discarded()) put_back(j, cut);
  return j;
}

nlohmann::json error_reply(const nlohmann::json& id, std::string_view code, std::string_view message) {
  return {{"re", id}, {"error", {{"code", code}, {"message", message}}}};
}

}  // namespace miniinfer::protocol
