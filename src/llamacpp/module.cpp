// The entry point of libminiinfer_llamacpp.so (module.h). Everything else in the module is
// built with hidden visibility: this table is all a program that loads it sees.
#include "llamacpp/module.h"

#include "llamacpp/gguf_export.h"

namespace miniinfer {
namespace {

std::unique_ptr<LlamaCppCalls> open_gguf(const std::string& gguf_path, const LlamaCppOptions& options) {
  return std::make_unique<LlamaCpp>(gguf_path, options);
}

}  // namespace
}  // namespace miniinfer

extern "C" __attribute__((visibility("default"))) const miniinfer::LlamaCppModule*
miniinfer_llamacpp_module() {
  static const miniinfer::LlamaCppModule module = {.open = miniinfer::open_gguf,
                                                   .write_gguf = miniinfer::write_gguf};
  return &module;
}
