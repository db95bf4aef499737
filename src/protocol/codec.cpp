#include "protocol/codec.h"

#include <bit>
#include <cstring>

#include "base/error.h"

namespace miniinfer::protocol {
namespace {

constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int digit_value(char c) {
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

constexpr const char* kSites[] = {"q",      "k",      "v",   "probs", "attn_out", "block_out",
                                  "k_read", "v_read", "ln1", "ln2",   "mlp"};

}  // namespace

std::string base64_encode(std::span<const unsigned char> b) {
  std::string out;
  out.reserve((b.size() + 2) / 3 * 4);
  for (size_t i = 0; i < b.size(); i += 3) {
    const uint32_t n = (uint32_t{b[i]} << 16) | (i + 1 < b.size() ? uint32_t{b[i + 1]} << 8 : 0) |
                       (i + 2 < b.size() ? uint32_t{b[i + 2]} : 0);
    out += kDigits[(n >> 18) & 63];
    out += kDigits[(n >> 12) & 63];
    out += i + 1 < b.size() ? kDigits[(n >> 6) & 63] : '=';
    out += i + 2 < b.size() ? kDigits[n & 63] : '=';
  }
  return out;
}

std::vector<unsigned char> base64_decode(std::string_view s) {
  if (s.size() % 4 != 0) fail("base64: length {} is not a multiple of 4", s.size());
  std::vector<unsigned char> out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    uint32_t n = 0;
    int pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = s[i + j];
      const bool last_group = i + 4 == s.size();
      if (c == '=' && last_group && j >= 2 && (j == 3 || s[i + 3] == '=')) {
        ++pad;
        n <<= 6;
        continue;
      }
      const int d = digit_value(c);
      if (d < 0 || pad) fail("base64: bad character at offset {}", i + j);
      n = (n << 6) | static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<unsigned char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<unsigned char>(n >> 8));
    if (pad < 1) out.push_back(static_cast<unsigned char>(n));
  }
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
    const std::vector<unsigned char> bytes = base64_decode(j.at("data").get<std::string>());
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
    for (size_t i = 0; i < n; ++i) {
      if (width == 4) {
        std::memcpy(&t.data[i], &bytes[i * 4], 4);
        continue;
      }
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
  for (Pass p : {Pass::Uncached, Pass::Prefill, Pass::Decode, Pass::Resume})
    if (name == to_string(p)) return p;
  fail("trace: unknown pass '{}'", name);
}

nlohmann::json encode_record(const TraceRecord& r) {
  return {{"layer", r.layer},
          {"head", r.head},
          {"site", site_name(r.kind)},
          {"seq", r.seq},
          {"pos", r.pos},
          {"pass", to_string(r.pass)},
          {"data", encode_tensor(r.data, {static_cast<int>(r.data.size())})}};
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
  } catch (const nlohmann::json::exception& e) {
    fail("trace record: {}", e.what());
  }
  r.data = decode_tensor(j.at("data"), "trace record data").data;
  return r;
}

nlohmann::json error_reply(const nlohmann::json& id, std::string_view code, std::string_view message) {
  return {{"re", id}, {"error", {{"code", code}, {"message", message}}}};
}

}  // namespace miniinfer::protocol
