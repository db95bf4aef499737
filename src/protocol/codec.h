// The engine protocol's codec (docs/protocol.md), shared by both sides: minigpt serve and
// props' process engine. Tensors travel as base64 of little-endian bytes; trace records as
// named fields. Decoding throws Error with a one-line message naming the field at fault.
#pragma once
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/trace.h"

namespace miniinfer::protocol {

constexpr int kVersion = 1;

std::string base64_encode(std::span<const unsigned char> bytes);
std::vector<unsigned char> base64_decode(std::string_view text);  // throws Error on a bad digit

// A float tensor: (shape...) of f32, row-major.
struct Tensor {
  std::vector<int> shape;
  std::vector<float> data;
};
nlohmann::json encode_tensor(std::span<const float> data, const std::vector<int>& shape);
// f32, f16 or bf16, widened to f32; throws Error if the data's length does not match the shape.
Tensor decode_tensor(const nlohmann::json& j, std::string_view field);

const char* site_name(TraceKind kind);            // "q", "k_read", ...
TraceKind site_from_name(std::string_view name);  // throws Error
Pass pass_from_name(std::string_view name);       // throws Error

nlohmann::json encode_record(const TraceRecord& r);
// step, call are the caller's to stamp.
TraceRecord decode_record(const nlohmann::json& j);

// One line of the protocol, written and read as json::dump() and json::parse would (the same
// bytes; the same value, or a discarded one for a line that is not JSON), but without walking
// the long base64 strings that make up most of a line one character at a time: nlohmann's
// writer and lexer do, and over the protocol that cost more than the forward passes did.
std::string dump_line(const nlohmann::json& j);
nlohmann::json parse_line(std::string_view line);

// {"re": id, "error": {"code": code, "message": message}}
nlohmann::json error_reply(const nlohmann::json& id, std::string_view code, std::string_view message);

}  // namespace miniinfer::protocol
