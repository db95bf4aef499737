// libFuzzer target: the results file a restarted shard reads (props --results), on arbitrary
// bytes. parse_results and check_results_lines must return or throw Error, never crash; what
// parse_results keeps is whole lines (the kept bytes end with a newline and hold one per line)
// of JSON objects, the first of them props' header, and only a tail without a newline, or a
// last line that is not an object, is dropped as torn.
// Built with -DMINIINFER_FUZZ=ON (clang); see docs/fuzzing.md.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/error.h"
#include "props/results.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace miniinfer;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const props::ParsedResults parsed = props::parse_results(bytes, "fuzz.jsonl");
    const std::string_view kept = bytes.substr(0, parsed.good_bytes);
    if (!kept.empty() && kept.back() != '\n') std::abort();
    if (static_cast<size_t>(std::count(kept.begin(), kept.end(), '\n')) != parsed.lines.size()) std::abort();
    for (const auto& j : parsed.lines)
      if (!j.is_object()) std::abort();
    if (!parsed.lines.empty() && !parsed.lines.front().contains("props_results")) std::abort();
    // What is dropped holds at most one newline: the torn last line's own.
    const std::string_view dropped = bytes.substr(parsed.good_bytes);
    if (std::count(dropped.begin(), dropped.end(), '\n') > 1) std::abort();
    props::check_results_lines(parsed.lines, "fuzz.jsonl");
  } catch (const Error&) {
  }
  return 0;
}
