// libFuzzer target: the model loader (safetensors, then the config JSON, the vocabulary and
// every tensor's name, shape and values) on arbitrary bytes. It must return a model an engine
// accepts, or throw Error; never crash, never allocate without bound.
// Built with -DMINIINFER_FUZZ=ON (clang); see docs/fuzzing.md.
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "model/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace miniinfer;
  try {
    const Model m = parse_model(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    check_weights(m.weights, m.config);  // what loaded is what an engine would accept
  } catch (const Error&) {
  }
  return 0;
}
