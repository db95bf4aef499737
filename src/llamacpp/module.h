// The llama.cpp module: LlamaCpp and the GGUF export, the only code that calls llama.cpp or
// ggml, built as a shared library (libminiinfer_llamacpp.so, cmake/llamacpp.cmake) that minigpt
// and props load at run time, the first time a command asks for llama.cpp. So a program that
// never asks runs without llama.cpp's libraries, and one that asks gets a one-line Error naming
// the library that is missing, instead of the dynamic loader's exit 127 before main.
#pragma once
#include <memory>
#include <string>

#include "llamacpp/llamacpp_engine.h"
#include "model/model.h"

namespace miniinfer {

// What the module hands out. Both sides are built by the same compiler in the same build and
// share libstdc++, so C++ types cross, and an Error thrown inside is caught outside as one.
struct LlamaCppModule {
  // LlamaCpp(gguf_path, options) (llamacpp_engine.h).
  std::unique_ptr<LlamaCppCalls> (*open)(const std::string& gguf_path, const LlamaCppOptions& options);
  // write_gguf(path, model) (gguf_export.h).
  void (*write_gguf)(const std::string& path, const Model& model);
};

// The module, loaded on the first call: the copy next to the program if there is one, else the
// one the build made. Throws Error "cannot load llama.cpp: " and dlerror()'s line, which names
// the file it could not open ("libllama.v0.4.0.so: cannot open shared object file: ...").
const LlamaCppModule& llamacpp_module();

}  // namespace miniinfer

// The module's one exported symbol; llamacpp_module() finds it with dlsym.
extern "C" const miniinfer::LlamaCppModule* miniinfer_llamacpp_module();
