// The exit statuses of every program of the project (props, minigpt, the bench tools), in one
// table: props --help, minigpt --help and the README print it from here, and each code has a
// test. A program uses only the codes that can happen in it, always with these meanings.
#pragma once
#include <array>
#include <string>

namespace miniinfer {

enum ExitStatus : int {
  kExitOk = 0,              // everything checked held (expected failures included), or help was printed
  kExitFailed = 1,          // a property failed, a replayed case still fails, or an internal error
  kExitRefused = 2,         // a flag, a file, a filter, a command or an input was refused
  kExitOutputLost = 3,      // writing a results file, summary or JUnit file failed mid-run
  kExitEngineBroke = 4,     // --engine process: the engine broke the transport
  kExitNotConformant = 5,   // props --conform: the engine answered, but something is wrong
  kExitUnexpectedPass = 6,  // an expected failure (the expected-failures file) now passes
};

struct ExitStatusRow {
  int code;
  const char* name;     // a word for logs and JUnit: "ok", "failed", "refused", ...
  const char* meaning;  // one line
};

inline constexpr std::array<ExitStatusRow, 7> kExitStatusTable = {{
    {kExitOk, "ok", "done: every property held (expected failures too), a replay passes, or --help"},
    {kExitFailed, "failed", "a property failed, a replayed case still fails, or an internal error (a bug)"},
    {kExitRefused, "refused", "a flag, file, filter, command or input was refused (one line on stderr)"},
    {kExitOutputLost, "output-lost", "writing the results, summary or JUnit file failed mid-run (a full disk)"},
    {kExitEngineBroke, "engine-broke", "--engine process: the engine did not start, hung or broke docs/protocol.md"},
    {kExitNotConformant, "not-conformant", "props --conform: the engine answered, but an op is wrong or missing"},
    {kExitUnexpectedPass, "unexpected-pass", "an expected failure (props/expected-failures.json) now passes"},
}};

// The table as help text: "  0  ok               every property held ...\n" per code.
inline std::string exit_status_text() {
  std::string out;
  for (const ExitStatusRow& r : kExitStatusTable) {
    std::string line = "  " + std::to_string(r.code) + "  " + r.name;
    line.resize(22, ' ');
    out += line + r.meaning + "\n";
  }
  return out;
}

}  // namespace miniinfer
