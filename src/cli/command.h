// The `minigpt` subcommand registry and a small flag parser shared by every subcommand.
// Each subcommand lives in its own cmd_*.cpp and registers itself with MINIGPT_COMMAND.
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace miniinfer::cli {

struct Command {
  std::string name;
  std::string summary;  // one line for `minigpt --help`
  std::string usage;    // full help for `minigpt NAME --help`
  int (*run)(const std::vector<std::string>& args);
};

std::map<std::string, Command>& commands();
bool register_command(Command command);

// Flags of the form --name value, --name=value, or a bare --switch. Every flag must be
// declared; an unknown or repeated flag, or a missing value, throws Error naming it.
class Args {
 public:
  Args(const std::vector<std::string>& argv, std::set<std::string> valued,
       std::set<std::string> switches);
  bool has(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  std::string require(const std::string& name) const;
  int get_int(const std::string& name, int fallback) const;
  double get_double(const std::string& name, double fallback) const;
  uint64_t get_u64(const std::string& name, uint64_t fallback) const;

 private:
  std::map<std::string, std::string> values_;
};

// The shipped model, found from any working directory (source tree, then next to the binary).
std::string default_model_path();

}  // namespace miniinfer::cli

#define MINIGPT_CONCAT2(a, b) a##b
#define MINIGPT_CONCAT(a, b) MINIGPT_CONCAT2(a, b)
#define MINIGPT_COMMAND(...)                                                         \
  static const bool MINIGPT_CONCAT(minigpt_registered_, __LINE__) [[maybe_unused]] = \
      ::miniinfer::cli::register_command(::miniinfer::cli::Command{__VA_ARGS__})
