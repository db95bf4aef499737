// libFuzzer target: the safetensors reader on arbitrary bytes. It must return a file or throw
// Error, never crash or read out of bounds; what it returns must write and read back to the
// same tensors (the writer's bytes are canonical, so a second round trip is byte-identical).
// Built with -DMINIINFER_FUZZ=ON (clang); see docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/error.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace miniinfer;
  SafetensorsFile file;
  try {
    file = parse_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const Error&) {
    return 0;  // refused with a message: what the reader is for
  }
  const std::string once = safetensors_bytes(file);
  if (safetensors_bytes(parse_safetensors(once, "round trip")) != once) std::abort();
  return 0;
}
