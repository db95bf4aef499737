// props' command line: one table of flags, each with its help line and what it sets (props
// --help prints the table); the engines' flags come from their declarations
// (props/engine_registry.h). Every argument that is not ours goes to Catch2.
#pragma once
#include <string>
#include <vector>

#include "props/runner.h"

namespace miniinfer::props {

struct CommandLine {
  RunConfig config;
  std::string rc_params;      // RC_PARAMS as found, with the --rc-* flags appended
  bool reproducing = false;   // --rc-reproduce was given
  bool help = false;          // --help: print help_text() and stop
  bool conform = false;       // --conform: check an engine's protocol (props/conform.h), no properties
  std::string replay, summary, shard, results;  // --replay, --summary, --shard, --results
  std::string junit;                            // --junit FILE: the run as JUnit XML (props/junit.h)
  std::vector<std::string> catch_args;          // argv[0] and every argument for Catch2
  std::string db;             // --db DIR: the failure database (props/failure_db.h)
  std::string expected;       // --expected FILE: instead of props/expected-failures.json
  bool no_expected = false;   // --no-expected: no expected failures (props/expected.h)
};

// Reads argv; throws Error with one line naming the flag (unknown, missing or bad value).
CommandLine parse_command_line(int argc, char** argv);
std::string help_text();

}  // namespace miniinfer::props
