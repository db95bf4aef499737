// Errors a user can cause (a bad file, an unknown word, a bad flag) are thrown as
// miniinfer::Error, whose message is one line that names the input and the problem.
// Programmer errors are assertions, not Errors.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace miniinfer {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// fail("model {}: tensor {} missing", path, name) throws Error with the formatted line.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// An input's text as an error shows it: control bytes escaped (\x1b), cut after 120 bytes, so
// the error stays one line and a terminal never runs what a file or a flag held.
inline std::string printable_name(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 120)) {
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out.push_back(static_cast<char>(c));
  }
  if (s.size() > 120) out += "...";
  return out;
}

}  // namespace miniinfer
