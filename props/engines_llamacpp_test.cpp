// llama.cpp behind EngineUnderTest as a serving engine (CTest label llamacpp, when the build has
// llama.cpp): submit() reuses the longest common prefix some sequence's cells hold (its own, or
// another's by llama_memory_seq_cp), never the prompt's last token; free() keeps the cells for a
// later submit and refuses every other call on the sequence until it is revived; the settings
// --llama-prefix-reuse off and --llama-fragment behave as documented. On the shipped model (a
// made-up one's logits are too small for a wrong prefix to show), exported to GGUF by the module.
#ifdef MINIINFER_HAVE_LLAMACPP
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/temp_dir.h"
#include "llamacpp/module.h"
#include "model/model_file.h"
#include "props/engine_registry.h"
#include "props/engines.h"

using namespace miniinfer;
using namespace miniinfer::props;

namespace {

const Model& shipped_model() {
  static const Model model = read_model(std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors");
  return model;
}

const std::string& shipped_gguf() {
  static TempDir dir("props_llamacpp_gguf");
  static const std::string path = [] {
    const std::string p = dir.file("minigpt.gguf");
    llamacpp_module().write_gguf(p, shipped_model());
    return p;
  }();
  return path;
}

std::unique_ptr<EngineUnderTest> make_llama(const std::string& reuse, const std::string& fragment, int batch = 3,
                                            int capacity = 16) {
  const nlohmann::json settings = {{"gguf", shipped_gguf()}, {"kv", "f16"},       {"threads", 1},
                                   {"flash", "off"},       {"ubatch", 0},       {"prefix_reuse", reuse},
                                   {"fragment", fragment}};
  return find_engine("llamacpp")->make(settings, shipped_model(), batch, capacity);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0.0 : 1e300;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// Within llama.cpp, cached against its own recompute: the engine tests' bound (docs/llamacpp.md).
constexpr double kWithin = 0.057;

}  // namespace

TEST_CASE("llama.cpp's submit reuses the longest common prefix, never the last token", "[llamacpp]") {
  auto e = make_llama("on", "off");
  REQUIRE(e->has(Capability::PrefixCache));
  CHECK(e->prefix_block() == 1);
  const std::vector<int> a = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<int> b(a.begin(), a.begin() + 5);
  b.insert(b.end(), {9, 10});

  const Submitted first = e->submit(0, a);
  CHECK(first.reused == 0);
  CHECK(e->cursor(0) == 8);
  // From sequence 0, by seq_cp: the 5 shared tokens.
  const Submitted hit = e->submit(1, b);
  CHECK(hit.reused == 5);
  CHECK(e->cursor(1) == 7);
  CHECK(max_abs_diff(hit.logits, e->forward_uncached(b, false)) < kWithin);
  CHECK(max_abs_diff(hit.logits, first.logits) > 0.1);  // b is not a: the check can fail
  // All of a is in sequence 0, but its last token is computed again: 7 reused.
  const Submitted whole = e->submit(1, a);
  CHECK(whole.reused == 7);
  CHECK(max_abs_diff(whole.logits, e->forward_uncached(a, false)) < kWithin);
  // Sequence 0's own cells (llama-server's slot): a, then b keeps a's first 5.
  const Submitted own = e->submit(0, b);
  CHECK(own.reused == 5);
  CHECK(e->cursor(0) == 7);
  CHECK(max_abs_diff(own.logits, e->forward_uncached(b, false)) < kWithin);
  // Sequence 1 still holds a, whatever happened to sequence 0's cells.
  const std::vector<float> next = e->forward_cached(1, std::vector<int>{11}, false);
  std::vector<int> a11 = a;
  a11.push_back(11);
  CHECK(max_abs_diff(next, e->forward_uncached(a11, false)) < kWithin);
  // Nothing shared: nothing reused.
  CHECK(e->submit(2, std::vector<int>{12, 13}).reused == 0);
  // Refused before anything changes.
  CHECK_THROWS_WITH(e->submit(3, a), "llama.cpp engine submit: sequence 3 outside 0..2");
  CHECK_THROWS_WITH(e->submit(0, std::vector<int>(17, 1)), "llama.cpp engine submit: a prompt of 17 tokens, capacity 16");
  CHECK_THROWS_WITH(e->submit(0, std::vector<int>{1, 989}), "llama.cpp engine: token id 989 outside 0..988");
  CHECK(e->cursor(0) == 7);
}

TEST_CASE("llama.cpp's free keeps the cells for a later submit and refuses other calls", "[llamacpp]") {
  auto e = make_llama("on", "off");
  const std::vector<int> a = {1, 2, 3, 4, 5, 6};
  e->submit(0, a);
  e->free(0);
  CHECK(e->cursor(0) == 0);
  CHECK_THROWS_WITH(e->forward_cached(0, std::vector<int>{1}, false),
                    "llama.cpp engine append: sequence 0 is freed (a submit, reset or fork into it revives it)");
  CHECK_THROWS_WITH(e->truncate(0, 0),
                    "llama.cpp engine truncate: sequence 0 is freed (a submit, reset or fork into it revives it)");
  CHECK_THROWS_WITH(e->fork(0, 1, 0),
                    "llama.cpp engine fork: sequence 0 is freed (a submit, reset or fork into it revives it)");
  CHECK_THROWS_WITH(e->free(0), "llama.cpp engine free: sequence 0 is freed (a submit, reset or fork into it revives it)");
  // Another sequence reuses the freed one's cells.
  const Submitted hit = e->submit(1, a);
  CHECK(hit.reused == 5);
  CHECK(max_abs_diff(hit.logits, e->forward_uncached(a, false)) < kWithin);
  // A reset revives it, empty: nothing of it is reused any more.
  e->reset(0);
  CHECK(e->cursor(0) == 0);
  e->free(1);
  e->reset(1);
  CHECK(e->submit(2, a).reused == 0);
}

TEST_CASE("llama.cpp without prefix reuse, and with a fragmented cache", "[llamacpp]") {
  auto off = make_llama("off", "off");
  CHECK_FALSE(off->has(Capability::PrefixCache));
  CHECK(off->prefix_block() == 0);
  const std::vector<int> a = {1, 2, 3, 4, 5};
  off->submit(0, a);
  CHECK(off->submit(1, a).reused == 0);
  off->free(0);  // a reset: the sequence lives on, empty
  CHECK(off->cursor(0) == 0);
  off->forward_cached(0, a, false);

  // The ballast takes cells but no sequence of the case's: the same logits, within the bound.
  for (const char* fragment : {"holes:4", "reorder:4"}) {
    auto e = make_llama("on", fragment);
    CHECK(e->batch() == 3);
    CHECK(e->cursor(0) == 0);
    std::vector<float> cached = e->forward_cached(0, std::vector<int>{1, 2, 3}, false);
    for (int t : {4, 5, 6, 7, 8, 9}) cached = e->forward_cached(0, std::vector<int>{t}, false);
    CHECK(max_abs_diff(cached, e->forward_uncached(std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}, false)) < kWithin);
  }
  // The settings name the two only when they are not their defaults, which a case file without
  // them means (experiment 23's case files replay byte for byte).
  CHECK_FALSE(make_llama("on", "off")->settings().contains("prefix_reuse"));
  CHECK_FALSE(make_llama("on", "off")->settings().contains("fragment"));
  CHECK(off->settings().at("prefix_reuse") == "off");
  CHECK(make_llama("on", "reorder:4")->settings().at("fragment") == "reorder:4");
  CHECK(find_engine("llamacpp")->read_saved(off->settings()) == off->settings());
  CHECK_THROWS_WITH(make_llama("on", "holes:9"),
                    "--llama-fragment holes:9: the ballast needs 18 cells, more than the 16 a sequence holds");
  CHECK_THROWS_WITH(make_llama("on", "holes"),
                    "engine settings: fragment: 'holes' is not off, holes:N or reorder:N (N in 1..4096)");
}

#endif
