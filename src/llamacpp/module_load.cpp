// llamacpp_module() (module.h): dlopen and dlsym, once per process; the module stays loaded
// (the engines it made may live until exit).
#include <dlfcn.h>

#include <filesystem>
#include <string>

#include "base/error.h"
#include "llamacpp/module.h"

namespace miniinfer {
namespace {

constexpr const char* kModuleName = "libminiinfer_llamacpp.so";

// Next to the program (a copied program takes the module copied with it), else where the build
// put it (MINIINFER_LLAMACPP_MODULE, set by cmake/llamacpp.cmake: the programs of experiments/
// and bench/ sit in other folders).
std::string module_path() {
  std::error_code ec;
  const std::filesystem::path program = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path beside = program.parent_path() / kModuleName;
    if (std::filesystem::exists(beside, ec)) return beside.string();
  }
  return MINIINFER_LLAMACPP_MODULE;
}

const LlamaCppModule& load() {
  // RTLD_LOCAL: llama.cpp's and the module's symbols stay out of the program's namespace.
  void* handle = dlopen(module_path().c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!handle) fail("cannot load llama.cpp: {}", dlerror());
  void* entry = dlsym(handle, "miniinfer_llamacpp_module");
  if (!entry) fail("cannot load llama.cpp: {}", dlerror());
  return *reinterpret_cast<const LlamaCppModule* (*)()>(entry)();
}

}  // namespace

const LlamaCppModule& llamacpp_module() {
  // A load that throws leaves the static uninitialized: the next call tries again.
  static const LlamaCppModule& module = load();
  return module;
}

}  // namespace miniinfer
