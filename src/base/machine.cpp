#include "base/machine.h"

#include <link.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/error.h"

// CMakeLists.txt sets these for this file: the flags every file of ours is built with that
// decide its floating point (the ISA choice, -ffp-contract=off), and the build type.
#ifndef MINIINFER_BUILD_FLAGS
#define MINIINFER_BUILD_FLAGS "unknown flags"
#endif
#ifndef MINIINFER_BUILD_TYPE
#define MINIINFER_BUILD_TYPE ""
#endif

namespace miniinfer {

const std::vector<std::string> kIsaFlags = {"sse4_2",   "avx",         "f16c",        "fma",         "avx2",
                                            "avx_vnni", "avx512f",     "avx512bw",    "avx512vl",    "avx512_vnni",
                                            "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"};

namespace {

std::string trim(std::string s) {
  const auto blank = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && blank(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && blank(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return __VERSION__;
#endif
}

int add_loaded(dl_phdr_info* info, size_t, void* out) {
  if (info->dlpi_name && info->dlpi_name[0]) static_cast<std::vector<std::string>*>(out)->push_back(info->dlpi_name);
  return 0;
}

// llama.cpp's release: the VERSION line scripts/fetch-llamacpp writes beside lib/ (third_party),
// else the library's own file name, which carries its version (libllama.v0.4.0.so, libllama.so.0.4.0).
std::string ggml_build_of(const std::string& library) {
  namespace fs = std::filesystem;
  const fs::path version = fs::path(library).parent_path().parent_path() / "VERSION";
  std::error_code ec;
  if (fs::is_regular_file(version, ec)) {
    try {
      std::istringstream lines(read_file(version.string()));
      std::string first;
      std::getline(lines, first);
      if (!trim(first).empty()) return trim(first);
    } catch (const Error&) {
    }
  }
  return fs::path(library).filename().string();
}

}  // namespace

Machine machine_from(const std::string& cpuinfo, const std::vector<std::string>& loaded, int threads) {
  Machine m;
  std::set<std::string> flags;
  bool have_name = false, have_flags = false;
  std::istringstream lines(cpuinfo);
  for (std::string line; std::getline(lines, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "model name" && !have_name) {
      m.cpu = value;
      have_name = true;
    } else if (key == "flags" && !have_flags) {
      std::istringstream words(value);
      for (std::string w; words >> w;) flags.insert(w);
      have_flags = true;
    }
  }
  if (m.cpu.empty()) m.cpu = "unknown";
  for (const std::string& f : kIsaFlags)
    if (flags.count(f)) m.isa.push_back(f);
  m.compiler = compiler();
  m.build = std::string(MINIINFER_BUILD_FLAGS) + (std::string(MINIINFER_BUILD_TYPE).empty() ? "" : ", ") +
            MINIINFER_BUILD_TYPE;
  m.threads = threads;
  namespace fs = std::filesystem;
  std::string llama;
  for (const std::string& path : loaded) {
    const std::string name = fs::path(path).filename().string();
    if (name.starts_with("libggml-cpu")) m.ggml_cpu_variant = name;  // a variant, or the one CPU build
    if (name.starts_with("libllama") && llama.empty()) llama = path;
  }
  if (!llama.empty()) {
    m.ggml_build = ggml_build_of(llama);
    // ggml built with its CPU backend inside libggml (no plugins): it picked no variant.
    if (m.ggml_cpu_variant.empty()) m.ggml_cpu_variant = "built in (no CPU variants)";
  }
  return m;
}

Machine this_machine(int threads) {
  std::string cpuinfo;
  try {
    cpuinfo = read_file("/proc/cpuinfo");
  } catch (const Error&) {  // not Linux, or no /proc: the CPU is "unknown", and says so
  }
  std::vector<std::string> loaded;
  dl_iterate_phdr(add_loaded, &loaded);
  return machine_from(cpuinfo, loaded, threads);
}

nlohmann::json to_json(const Machine& m) {
  nlohmann::json j = {{"cpu", m.cpu}, {"isa", m.isa}, {"compiler", m.compiler}, {"build", m.build},
                      {"threads", m.threads}};
  if (!m.ggml_build.empty() || !m.ggml_cpu_variant.empty()) {
    j["ggml_build"] = m.ggml_build;
    j["ggml_cpu_variant"] = m.ggml_cpu_variant;
  }
  return j;
}

Machine machine_from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("machine: must be a JSON object, got {}", j.type_name());
  Machine m;
  const auto text = [&](const char* key, std::string& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_string()) fail("machine: {} must be a string, got {}", key, j[key].type_name());
    out = j[key].get<std::string>();
  };
  text("cpu", m.cpu);
  text("compiler", m.compiler);
  text("build", m.build);
  text("ggml_build", m.ggml_build);
  text("ggml_cpu_variant", m.ggml_cpu_variant);
  if (j.contains("isa")) {
    if (!j["isa"].is_array()) fail("machine: isa must be an array of flags, got {}", j["isa"].type_name());
    for (const auto& f : j["isa"]) {
      if (!f.is_string()) fail("machine: isa must be an array of flags, holds a {}", f.type_name());
      m.isa.push_back(f.get<std::string>());
    }
  }
  if (j.contains("threads")) {
    if (!j["threads"].is_number_integer()) fail("machine: threads must be an integer, got {}", j["threads"].type_name());
    const auto t = j["threads"].get<int64_t>();
    if (t < 1 || t > 4096) fail("machine: threads {} outside 1..4096", t);
    m.threads = static_cast<int>(t);
  }
  return m;
}

std::vector<std::string> machine_differences(const Machine& recorded, const Machine& here) {
  std::vector<std::string> out;
  const auto text = [&](const char* field, const std::string& a, const std::string& b) {
    if (a != b)
      out.push_back(fmt::format("{}: {} when recorded, {} here", field, a.empty() ? "(none)" : a,
                                b.empty() ? "(none)" : b));
  };
  text("cpu", recorded.cpu, here.cpu);
  if (recorded.isa != here.isa) {
    const std::set<std::string> a(recorded.isa.begin(), recorded.isa.end()), b(here.isa.begin(), here.isa.end());
    std::string only_there, only_here;
    for (const auto& f : a)
      if (!b.count(f)) only_there += (only_there.empty() ? "" : " ") + f;
    for (const auto& f : b)
      if (!a.count(f)) only_here += (only_here.empty() ? "" : " ") + f;
    std::string phrase = "isa:";
    if (!only_there.empty()) phrase += " " + only_there + " only when recorded";
    if (!only_here.empty()) phrase += std::string(only_there.empty() ? " " : "; ") + only_here + " only here";
    out.push_back(phrase);
  }
  text("compiler", recorded.compiler, here.compiler);
  text("build", recorded.build, here.build);
  if (recorded.threads != here.threads)
    out.push_back(fmt::format("threads: {} when recorded, {} here", recorded.threads, here.threads));
  text("ggml_build", recorded.ggml_build, here.ggml_build);
  text("ggml_cpu_variant", recorded.ggml_cpu_variant, here.ggml_cpu_variant);
  return out;
}

std::string load_average() {
  try {
    const std::string text = read_file("/proc/loadavg");
    return text.substr(0, text.find(' ', text.find(' ', text.find(' ') + 1) + 1));
  } catch (const Error&) {
    return "unknown";
  }
}

double process_status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string key;
  long kib = 0;
  while (in >> key) {
    if (key == field + ":" && in >> kib) return static_cast<double>(kib) / 1024.0;
    in.ignore(1 << 10, '\n');
  }
  return 0.0;
}

}  // namespace miniinfer
