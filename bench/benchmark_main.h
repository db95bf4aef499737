// The Google Benchmark programs' main: BENCHMARK_MAIN's, with the project's exit statuses
// (src/base/exit_status.h) instead of Google Benchmark's 1 for everything: --help prints its
// flags and exits 0 (Google Benchmark does that itself), and an unknown flag, a flag value it
// cannot read or a --benchmark_out whose folder is missing is refused, with one line, before any
// benchmark runs.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/exit_status.h"

namespace miniinfer::bench {

inline int benchmark_main(int argc, char** argv) {
  const std::string program = std::filesystem::path(argv[0]).filename().string();
  for (int i = 1; i < argc; ++i) {
    // Google Benchmark would find out only after the run, and exit 1.
    if (const std::string_view a = argv[i]; a.starts_with("--benchmark_out=")) {
      const std::filesystem::path parent = std::filesystem::path(a.substr(16)).parent_path();
      std::error_code ec;
      if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
        std::fprintf(stderr, "%s: --benchmark_out: the folder %s does not exist\n", program.c_str(),
                     parent.c_str());
        return kExitRefused;
      }
    }
  }
  benchmark::Initialize(&argc, argv);  // takes its own flags out of argv
  if (argc > 1) {  // what is left is no flag of Google Benchmark's, or a value it could not read
    std::fprintf(stderr, "%s: unknown flag or bad value '%s' (see %s --help)\n", program.c_str(), argv[1],
                 program.c_str());
    return kExitRefused;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return kExitOk;
}

}  // namespace miniinfer::bench
