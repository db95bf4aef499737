// The committed slots.npz, read back with our own npy reader: the arrays report.md names, with
// the dtypes and shapes it gives (L, H and d_head from manifest.json), and path A's K/V rows
// byte-identical to path B's. A second case corrupts copies to show each check can fail.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "base/npy.h"
#include "base/sha256.h"
#include "lab_common.h"

using namespace miniinfer;
using lab::Json;

namespace {

const std::string kDir = std::string(MINIINFER_SOURCE_DIR) + "/experiments/22-yesterday-worked";

// Everything wrong with a dump, one line each; empty when it is as report.md describes.
std::vector<std::string> problems(const NpzEntries& entries, const Json& manifest) {
  std::vector<std::string> out;
  const Json& mc = manifest.at("config").at("model_config");
  const int64_t L = mc.at("n_layer"), H = mc.at("n_head"), d = mc.at("d_head");
  const std::vector<std::string> names = {"A_K",       "A_V",       "B_K",       "B_V",    "A_K_slot2",
                                          "A_V_slot2", "B_K_slot2", "B_V_slot2", "tokens", "word"};
  std::vector<std::string> got;
  for (const auto& [name, array] : entries) got.push_back(name);
  if (got != names)
    out.push_back(
        fmt::format("arrays are [{}], expected [{}]", fmt::join(got, ", "), fmt::join(names, ", ")));
  auto find = [&](const std::string& name) -> const NpyArray* {
    for (const auto& [n, a] : entries)
      if (n == name) return &a;
    return nullptr;
  };
  auto expect = [&](const std::string& name, NpyDtype dtype, std::vector<int64_t> shape) -> const NpyArray* {
    const NpyArray* a = find(name);
    if (!a) return nullptr;
    if (a->dtype != dtype)
      out.push_back(fmt::format("{}: dtype {}, expected {}", name, npy_descr(a->dtype), npy_descr(dtype)));
    if (a->shape != shape)
      out.push_back(fmt::format("{}: shape [{}], expected [{}]", name, fmt::join(a->shape, ", "),
                                fmt::join(shape, ", ")));
    return a;
  };
  for (const char* t : {"K", "V"})
    for (const std::string suffix : {"", "_slot2"}) {
      const std::vector<int64_t> shape = {L, H, suffix.empty() ? 2 : 1, d};
      const NpyArray* a = expect(fmt::format("A_{}{}", t, suffix), NpyDtype::F32, shape);
      const NpyArray* b = expect(fmt::format("B_{}{}", t, suffix), NpyDtype::F32, shape);
      if (a && b && a->bytes != b->bytes)
        out.push_back(fmt::format("A_{0}{1} and B_{0}{1} differ in their bytes", t, suffix));
    }
  const NpyArray* tokens = expect("tokens", NpyDtype::I32, {3});
  if (tokens && tokens->shape == std::vector<int64_t>{3}) {
    const auto ids = tokens->to_i32();
    const std::vector<int> prompt = manifest.at("prompt_ids");
    if (ids[0] != prompt.at(0) || ids[1] != prompt.at(1) ||
        ids[2] != manifest.at("decoded_token_id").get<int>())
      out.push_back("tokens do not match manifest.json's prompt_ids and decoded_token_id");
  }
  const NpyArray* word = find("word");
  if (word) {
    const std::string w(word->bytes.begin(), word->bytes.end());
    expect("word", NpyDtype::U8, {static_cast<int64_t>(w.size())});
    if (w != manifest.at("decoded_word").get<std::string>())
      out.push_back("word is not manifest.json's decoded_word");
  }
  return out;
}

Json manifest() { return Json::parse(read_file(kDir + "/manifest.json")); }

}  // namespace

TEST_CASE("slots.npz holds the arrays report.md names, and path A's rows equal path B's byte for byte",
          "[lab22]") {
  const std::string path = kDir + "/slots.npz";
  const NpzEntries entries = read_npz(path);
  const Json m = manifest();
  const std::vector<std::string> found = problems(entries, m);
  for (const auto& p : found) UNSCOPED_INFO(p);
  CHECK(found.empty());
  CHECK(file_sha256(path) == m.at("files").at("slots.npz").at("sha256").get<std::string>());
  INFO("checked " << entries.size() << " arrays of " << path);
  SUCCEED();
}

TEST_CASE("the slots.npz checks fail on a corrupted dump", "[lab22]") {
  const NpzEntries good = read_npz(kDir + "/slots.npz");
  const Json m = manifest();
  REQUIRE(problems(good, m).empty());

  NpzEntries flipped = good;  // one bit of path B's V, slot 1 of the last head
  flipped[3].second.bytes.back() ^= 1;
  CHECK(problems(flipped, m) == std::vector<std::string>{"A_V and B_V differ in their bytes"});

  NpzEntries missing = good;
  missing.erase(missing.begin() + 5);
  CHECK_FALSE(problems(missing, m).empty());

  NpzEntries reshaped = good;  // same bytes, [L, H, 1, 2 d_head]
  reshaped[0].second.shape[2] = 1;
  reshaped[0].second.shape[3] *= 2;
  CHECK_FALSE(problems(reshaped, m).empty());

  Json other = m;
  other["decoded_word"] = "nothing";
  CHECK_FALSE(problems(good, other).empty());
}
