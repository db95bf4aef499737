// Numbers read from a file, each checked as its own type: nlohmann's get<int> wraps
// 4294967298 to 2 and turns 7.7e33 into undefined behaviour. A value that does not fit throws
// Error "case: WHAT: VALUE is not ..." naming the field.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace miniinfer::props {

int json_int(const nlohmann::json& v, const std::string& what);            // an int
uint64_t json_u64(const nlohmann::json& v, const std::string& what);       // a uint64_t
float json_float(const nlohmann::json& v, const std::string& what);        // a finite float
std::vector<int> json_ints(const nlohmann::json& v, const std::string& what);  // an array of ints

}  // namespace miniinfer::props
