// minigpt: the command-line front of the library. Subcommands register themselves.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "base/exit_status.h"
#include "cli/command.h"

namespace miniinfer::cli {

std::map<std::string, Command>& commands() {
  static std::map<std::string, Command> all;
  return all;
}

bool register_command(Command command) {
  commands().emplace(command.name, std::move(command));
  return true;
}

Args::Args(const std::vector<std::string>& argv, std::set<std::string> valued,
           std::set<std::string> switches) {
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) fail("unexpected argument '{}' (flags start with --)", arg);
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (values_.count(name)) fail("flag --{} given twice", name);
    if (switches.count(name)) {
      if (inline_value) fail("flag --{} takes no value", name);
      values_[name] = "1";
    } else if (valued.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) fail("flag --{} needs a value", name);
        value = argv[++i];
      }
      values_[name] = value;
    } else {
      fail("unknown flag --{} (see --help)", name);
    }
  }
}

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::require(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) fail("missing required flag --{}", name);
  return it->second;
}

namespace {
template <typename T, typename Parse>
T parse_number(const Args& args, const std::string& name, T fallback, Parse parse) {
  if (!args.has(name)) return fallback;
  const std::string text = args.get(name, "");
  try {
    size_t used = 0;
    T value = parse(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    return value;
  } catch (const std::exception&) {
    fail("flag --{}: '{}' is not a valid number", name, text);
  }
}
}  // namespace

int Args::get_int(const std::string& name, int fallback) const {
  return parse_number<int>(*this, name, fallback,
                           [](const std::string& s, size_t* used) { return std::stoi(s, used); });
}
double Args::get_double(const std::string& name, double fallback) const {
  return parse_number<double>(*this, name, fallback,
                              [](const std::string& s, size_t* used) { return std::stod(s, used); });
}
uint64_t Args::get_u64(const std::string& name, uint64_t fallback) const {
  return parse_number<uint64_t>(*this, name, fallback, [](const std::string& s, size_t* used) {
    if (!s.empty() && s[0] == '-') throw std::invalid_argument(s);
    return static_cast<uint64_t>(std::stoull(s, used));
  });
}

std::string default_model_path() {
  const std::string relative = "experiments/17-minigpt/minigpt.safetensors";
  const std::filesystem::path source = std::filesystem::path(MINIINFER_SOURCE_DIR) / relative;
  if (std::filesystem::exists(source)) return source.string();
  return relative;
}

}  // namespace miniinfer::cli

namespace {
void print_help() {
  std::printf(
      "minigpt: the MiniGPT engine, trainer and corpus tools.\n\n"
      "usage: minigpt COMMAND [flags]   (minigpt COMMAND --help for its flags)\n\ncommands:\n");
  for (const auto& [name, command] : miniinfer::cli::commands())
    std::printf("  %-10s %s\n", name.c_str(), command.summary.c_str());
  std::printf("\nexit status (the same table for props and the bench tools):\n%s",
              miniinfer::exit_status_text().c_str());
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help();
    if (!args.empty()) return miniinfer::kExitOk;
    std::fprintf(stderr, "minigpt: no command given (the commands are listed above)\n");
    return miniinfer::kExitRefused;
  }
  auto& all = miniinfer::cli::commands();
  auto it = all.find(args[0]);
  if (it == all.end()) {
    std::fprintf(stderr, "minigpt: unknown command '%s' (see minigpt --help)\n", args[0].c_str());
    return miniinfer::kExitRefused;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const auto& a : rest) {
    if (a == "--help" || a == "-h") {
      std::printf("%s\n", it->second.usage.c_str());
      return miniinfer::kExitOk;
    }
  }
  try {
    return it->second.run(rest);
  } catch (const miniinfer::Error& e) {
    std::fprintf(stderr, "minigpt %s: %s\n", args[0].c_str(), e.what());
    return miniinfer::kExitRefused;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "minigpt %s: internal error: %s\n", args[0].c_str(), e.what());
    return miniinfer::kExitFailed;
  }
}
