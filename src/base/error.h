// Errors a user can cause (a bad file, an unknown word, a bad flag) are thrown as
// miniinfer::Error, whose message is one line that names the input and the problem.
// Programmer errors are assertions, not Errors.
#pragma once
#include <stdexcept>
#include <string>

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

}  // namespace miniinfer
