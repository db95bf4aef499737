// libFuzzer target: the counterexample file that `props --replay` reads (a case, or a p11
// program), on arbitrary bytes. Parsing must return a case whose fields fit together, or throw
// Error; never crash, never let another exception type (a JSON type error, say) escape.
// Built with -DMINIINFER_FUZZ=ON (clang); see docs/fuzzing.md.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "props/cases.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace miniinfer;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;  // replay_case refuses text that is not JSON before this parser sees it
  }
  try {
    props::saved_case_from_json(j);
  } catch (const Error&) {
  }
  return 0;
}
