// compare_artifacts: do regenerated experiment files match the committed ones? JSON files are
// compared as values after removing every "date" and "wall_time_seconds" key, at any depth (the
// only things a rerun may change); every other file (.npz, .md) must match byte for byte.
// Used by the experiments_regenerate test (regen_check.cmake).
#include <cstdio>
#include <string>

#include "base/atomic_file.h"
#include "base/error.h"
#include "lab_common.h"

namespace {

using miniinfer::lab::Json;

void strip_volatile(Json& j) {
  if (j.is_object()) {
    j.erase("date");
    j.erase("wall_time_seconds");
    for (auto& item : j.items()) strip_volatile(item.value());
  } else if (j.is_array()) {
    for (auto& value : j) strip_volatile(value);
  }
}

Json parse(const std::string& path) {
  try {
    return Json::parse(miniinfer::read_file(path));
  } catch (const Json::exception& e) {
    miniinfer::fail("{}: not JSON ({})", path, e.what());
  }
}

// True if the two files match; prints what differs otherwise.
bool same_file(const std::string& committed, const std::string& fresh, const std::string& name) {
  const std::string a = committed + "/" + name, b = fresh + "/" + name;
  if (name.ends_with(".json")) {
    Json ja = parse(a), jb = parse(b);
    strip_volatile(ja);
    strip_volatile(jb);
    if (ja == jb) return true;
    const Json patch = Json::diff(ja, jb);
    std::printf("%s differs from the regenerated file in %zu place(s); first: %s\n", a.c_str(), patch.size(),
                patch.empty() ? "?" : patch[0].dump().substr(0, 400).c_str());
    return false;
  }
  const std::string ba = miniinfer::read_file(a), bb = miniinfer::read_file(b);
  if (ba == bb) return true;
  size_t i = 0;
  while (i < ba.size() && i < bb.size() && ba[i] == bb[i]) ++i;
  std::printf("%s differs from the regenerated file from byte %zu (sizes %zu and %zu)\n", a.c_str(), i,
              ba.size(), bb.size());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: compare_artifacts COMMITTED_DIR REGENERATED_DIR FILE...\n");
    return 2;
  }
  try {
    int differing = 0;
    for (int i = 3; i < argc; ++i) {
      const bool same = same_file(argv[1], argv[2], argv[i]);
      if (same) std::printf("%s/%s: matches\n", argv[1], argv[i]);
      differing += !same;
    }
    return differing == 0 ? 0 : 1;
  } catch (const miniinfer::Error& e) {
    std::fprintf(stderr, "compare_artifacts: %s\n", e.what());
    return 2;
  }
}
