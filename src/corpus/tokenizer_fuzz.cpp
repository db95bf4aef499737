// libFuzzer target: the tokenizer on arbitrary bytes, bad UTF-8 included, over the grammar's
// vocabulary. encode must return ids or throw Error; when it returns, decoding the ids and
// encoding again gives the same ids, and decode(encode(text)) is normalize(text).
// Built with -DMINIINFER_FUZZ=ON (clang); see docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/error.h"
#include "corpus/grammar.h"
#include "corpus/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace miniinfer;
  static const Tokenizer tokenizer(Grammar::builtin().vocabulary());
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<int> ids;
  try {
    ids = tokenizer.encode(text);
  } catch (const Error&) {
    return 0;
  }
  const std::string decoded = tokenizer.decode(ids);
  if (tokenizer.encode(decoded) != ids) std::abort();
  if (decoded != tokenizer.normalize(text)) std::abort();
  return 0;
}
