// The machine a figure or a counterexample was made on, in one place: the CPU, the ISA flags
// that change which kernels run, the compiler and the build's ISA choice (CMakeLists.txt,
// docs/invariance.md), the threads the engine ran with, and, when llama.cpp is loaded in this
// process, the ggml build and the CPU variant (libggml-cpu-*.so) ggml picked at run time.
// Our engine's bytes are the same on every machine by construction; llama.cpp's are not (its
// AVX2 and AVX-512 variants round differently), so its figures say which machine they hold for.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace miniinfer {

struct Machine {
  std::string cpu;               // /proc/cpuinfo's "model name" ("unknown" if it has none)
  std::vector<std::string> isa;  // those of kIsaFlags the CPU has, in kIsaFlags' order
  std::string compiler;          // "gcc 12.2.0", "clang 16.0.6"
  std::string build;             // the build's ISA choice and float flags: "-march=x86-64-v3 -ffp-contract=off ..."
  int threads = 1;               // threads the engine ran with
  std::string ggml_build;        // llama.cpp's release as its VERSION file names it; empty: not loaded
  std::string ggml_cpu_variant;  // "libggml-cpu-zen4.so"; empty: llama.cpp not loaded
};

// The CPU flags (as /proc/cpuinfo spells them) that decide which SIMD kernels run: ours (AVX2,
// FMA, AVX-512F for the matmul's 16-lane tiles) and ggml's variants.
extern const std::vector<std::string> kIsaFlags;

// This process's machine: reads /proc/cpuinfo and the shared objects loaded so far (so ask it
// after llama.cpp has loaded its CPU backend, if it is to say which).
Machine this_machine(int threads);

// The parts of this_machine that come from text, for the tests: `cpuinfo` is /proc/cpuinfo's
// text, `loaded` the paths of the loaded shared objects.
Machine machine_from(const std::string& cpuinfo, const std::vector<std::string>& loaded, int threads);

// {"cpu", "isa", "compiler", "build", "threads"} and, when llama.cpp was loaded, "ggml_build"
// and "ggml_cpu_variant". Flat (no nested object): a test strips it with one pattern.
nlohmann::json to_json(const Machine& m);
// Reads what to_json wrote; a missing field stays empty. Throws Error naming a field of the
// wrong type, and no other exception.
Machine machine_from_json(const nlohmann::json& j);

// The fields in which `recorded` and `here` differ, one phrase each, e.g.
// "cpu: Intel Xeon when recorded, AMD EPYC here", "isa: avx512f only here". Empty: the same.
std::vector<std::string> machine_differences(const Machine& recorded, const Machine& here);

// What the machine is doing now, for the timings that quote it: /proc/loadavg's 1, 5 and
// 15 minute averages ("1.19 1.86 2.53", or "unknown"), and a field of /proc/self/status in MiB
// ("VmRSS", "VmHWM", "RssAnon", "RssFile"; 0 if the file or the field is missing).
std::string load_average();
double process_status_mib(const std::string& field);

}  // namespace miniinfer
