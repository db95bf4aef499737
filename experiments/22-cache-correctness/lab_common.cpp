// Flags, paths, versions and comparisons shared by the lab-22 programs (see lab_common.h).
#include "lab_common.h"

#include <fmt/format.h>

#include <Eigen/Core>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/machine.h"

#ifndef MINIINFER_SOURCE_DIR
#error "MINIINFER_SOURCE_DIR must be defined by the build"
#endif
#ifndef LAB_CATCH2_VERSION
#error "LAB_CATCH2_VERSION must be defined by the build (CMake's Catch2_VERSION)"
#endif

namespace miniinfer::lab {

namespace fs = std::filesystem;

std::string source_dir() { return MINIINFER_SOURCE_DIR; }

std::string default_model_path() {
  return (fs::path(source_dir()) / "experiments/17-minigpt/minigpt.safetensors").string();
}

std::string experiment_dir(const std::string& name) {
  return (fs::path(source_dir()) / "experiments" / name).string();
}

Json lab22_results(const std::string& model_path, const std::string& model_sha) {
  const std::string path = experiment_dir("22-cache-correctness") + "/results.json";
  Json r22 = Json::parse(read_file(path));
  if (r22.at("model_sha256").get<std::string>() != model_sha)
    fail("{}: made with model sha256 {}, but --model {} is {}; regenerate it first (scripts/regen-experiments)", path,
         r22.at("model_sha256").get<std::string>(), model_path, model_sha);
  if (r22.at("prompts").size() != 50) fail("{}: {} prompts, expected 50", path, r22.at("prompts").size());
  return r22;
}

std::string display_path(const std::string& path) {
  std::error_code ec;
  const fs::path abs = fs::weakly_canonical(fs::absolute(path), ec);
  const fs::path root = fs::weakly_canonical(fs::path(source_dir()), ec);
  if (ec) return path;
  const fs::path rel = abs.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..") return path;
  return rel.generic_string();
}

Json versions() {
  Json v;
  v["compiler"] = this_machine(1).compiler;  // as case files name it (base/machine.h)
  v["eigen"] = fmt::format("{}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
  // RapidCheck has no version macro; this is the Debian package the build found
  // (librapidcheck-dev, `dpkg -s librapidcheck-dev`).
  v["rapidcheck"] = "0~1033-08b5058-3 (Debian librapidcheck-dev)";
  v["fmt"] = fmt::format("{}.{}.{}", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  v["nlohmann_json"] = fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                   NLOHMANN_JSON_VERSION_PATCH);
  v["catch2"] = LAB_CATCH2_VERSION;
  return v;
}

std::string today_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

void ensure_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("output folder {}: {}", dir, ec.message());
}

namespace {
// Like dump(2), except that an array of scalars stays on one line: token lists read as a row
// and a regenerated file diffs line by line.
void pretty(std::string& out, const Json& j, int depth) {
  const std::string pad(static_cast<size_t>(2 * (depth + 1)), ' '),
      close(static_cast<size_t>(2 * depth), ' ');
  if (j.is_object() && !j.empty()) {
    out += "{\n";
    size_t i = 0;
    for (const auto& item : j.items()) {
      out += pad + Json(item.key()).dump() + ": ";
      pretty(out, item.value(), depth + 1);
      out += ++i < j.size() ? ",\n" : "\n";
    }
    out += close + "}";
  } else if (j.is_array() &&
             std::any_of(j.begin(), j.end(), [](const Json& x) { return x.is_structured(); })) {
    out += "[\n";
    for (size_t i = 0; i < j.size(); ++i) {
      out += pad;
      pretty(out, j[i], depth + 1);
      out += i + 1 < j.size() ? ",\n" : "\n";
    }
    out += close + "]";
  } else {
    out += j.dump(-1, ' ', false, Json::error_handler_t::strict);
  }
}
}  // namespace

std::string to_pretty_json(const Json& json) {
  std::string out;
  pretty(out, json, 0);
  return out + "\n";
}

void write_json(const std::string& path, const Json& json) { write_file_atomic(path, to_pretty_json(json)); }

Flags::Flags(int argc, char** argv, std::set<std::string> valued, std::set<std::string> switches) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) fail("unexpected argument '{}' (flags start with --; see --help)", arg);
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (values_.count(name)) fail("flag --{} given twice", name);
    if (valued.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argc) fail("flag --{} needs a value", name);
        value = argv[++i];
      }
      values_[name] = value;
    } else if (switches.count(name)) {
      if (inline_value) fail("flag --{} takes no value", name);
      values_[name] = "";
    } else {
      fail("unknown flag --{} (see --help)", name);
    }
  }
}

std::string Flags::get(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

uint64_t ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return UINT64_MAX;
  // Map the sign-magnitude bits onto a line where adjacent floats are adjacent integers.
  auto ordered = [](float x) {
    const int64_t bits = std::bit_cast<int32_t>(x);
    return bits < 0 ? -(bits & 0x7fffffff) : bits;
  };
  const int64_t d = ordered(a) - ordered(b);
  return static_cast<uint64_t>(d < 0 ? -d : d);
}

ByteDiff compare_floats(std::span<const float> a, std::span<const float> b) {
  ByteDiff diff;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) == 0) continue;
    ++diff.differing;
    const auto* pa = reinterpret_cast<const unsigned char*>(&a[i]);
    const auto* pb = reinterpret_cast<const unsigned char*>(&b[i]);
    for (size_t k = 0; k < sizeof(float); ++k) diff.differing_bytes += pa[k] != pb[k];
    diff.max_ulp = std::max(diff.max_ulp, ulp_distance(a[i], b[i]));
  }
  const auto extra = static_cast<int64_t>(std::max(a.size(), b.size()) - n);
  diff.differing += extra;
  diff.differing_bytes += extra * static_cast<int64_t>(sizeof(float));
  if (extra > 0) diff.max_ulp = UINT64_MAX;
  return diff;
}

std::optional<size_t> first_byte_difference(std::span<const float> a, std::span<const float> b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
  if (a.size() != b.size()) return n;
  return std::nullopt;
}

}  // namespace miniinfer::lab
