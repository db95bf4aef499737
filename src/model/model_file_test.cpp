// The model file: config JSON both ways, the spec's tensor table checked against an
// independent list, bit-exact round trips of random small models, one test per reader check
// with the message it gives, and damaged model files that must be refused, never crash.
#include "model/model_file.h"
#include "base/temp_dir.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/rng.h"
#include "base/sha256.h"

namespace miniinfer {
namespace {

namespace fs = std::filesystem;

using NamedTensors = std::vector<std::pair<std::string, std::vector<float>>>;

NamedTensors tensors_of(const Model& m) {
  NamedTensors out;
  for_each_tensor(m.weights, m.config, [&](const std::string& n, const std::vector<int64_t>&, const std::vector<float>& t) {
    out.emplace_back(n, t);
  });
  return out;
}

bool same_bits(const Model& a, const Model& b) {
  const NamedTensors ta = tensors_of(a), tb = tensors_of(b);
  if (ta.size() != tb.size()) return false;
  for (size_t i = 0; i < ta.size(); ++i) {
    if (ta[i].first != tb[i].first || ta[i].second.size() != tb[i].second.size()) return false;
    if (std::memcmp(ta[i].second.data(), tb[i].second.data(), 4 * ta[i].second.size()) != 0) return false;
  }
  return true;
}

bool same_config(const Config& a, const Config& b) {
  return a.vocab_size == b.vocab_size && a.d_model == b.d_model && a.n_layer == b.n_layer && a.n_head == b.n_head &&
         a.d_ff == b.d_ff && std::bit_cast<uint64_t>(a.rope_theta) == std::bit_cast<uint64_t>(b.rope_theta) &&
         std::bit_cast<uint64_t>(a.ln_eps) == std::bit_cast<uint64_t>(b.ln_eps) && a.max_seq_len == b.max_seq_len &&
         a.train_ctx == b.train_ctx;
}

std::string describe(const Config& c) { return config_to_json(c); }

// A random small valid config: L 1-3, H 1-4, even d_head 2-8, V 1-20, F 1-40, and doubles
// with all their mantissa bits in use, so the JSON must round-trip them exactly.
Config random_config(Rng& rng) {
  Config c;
  c.n_layer = 1 + static_cast<int>(rng.below(3));
  c.n_head = 1 + static_cast<int>(rng.below(4));
  c.d_model = c.n_head * 2 * (1 + static_cast<int>(rng.below(4)));
  c.vocab_size = 1 + static_cast<int>(rng.below(20));
  c.d_ff = 1 + static_cast<int>(rng.below(40));
  c.rope_theta = 1.0 + std::ldexp(static_cast<double>(rng.next_u64() >> 11), -36);
  c.ln_eps = std::ldexp(1.0 + std::ldexp(static_cast<double>(rng.next_u64() >> 12), -52), -static_cast<int>(rng.below(40)) - 1);
  c.max_seq_len = 1 + static_cast<int>(rng.below(600));
  c.train_ctx = 1 + static_cast<int>(rng.below(100));
  return c;
}

std::vector<std::string> random_vocab(int n, Rng& rng) {
  const char* stems[] = {"<bos>", ".", "trabajé", "\"q\"", "back\\slash", "I"};
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(std::string(stems[rng.below(6)]) + "#" + std::to_string(i));
  return v;
}

// init_model's weights, then a sprinkle of arbitrary finite bit patterns (-0, denormals, the
// extremes). NaN and infinity are refused at load (see the [corrupt] tests).
Model random_model(Rng& rng) {
  const Config c = random_config(rng);
  Model m = init_model(c, random_vocab(c.vocab_size, rng), rng.next_u64());
  for_each_tensor(m.weights, c, [&](const std::string&, const std::vector<int64_t>&, std::vector<float>& t) {
    for (float& x : t)
      if (rng.below(8) == 0) {
        do x = std::bit_cast<float>(rng.next_u32());
        while (!std::isfinite(x));
      }
  });
  return m;
}

Config small_config() {
  Config c;
  c.vocab_size = 5;
  c.d_model = 8;
  c.n_layer = 3;
  c.n_head = 2;
  c.d_ff = 16;
  return c;
}

Model small_model() { return init_model(small_config(), {"<bos>", ".", "I", "worked", "yesterday"}, 1); }


// ---- config JSON ------------------------------------------------------------------------------

TEST_CASE("config_to_json writes the spec's keys in order", "[model_file][config]") {
  Config c;
  c.vocab_size = 10;
  CHECK(config_to_json(c) ==
        R"({"vocab_size":10,"d_model":64,"n_layer":4,"n_head":4,"d_ff":256,"rope_theta":10000.0,"ln_eps":1e-05,)"
        R"("max_seq_len":512,"train_ctx":64})");
}

TEST_CASE("config JSON round-trips every field exactly", "[model_file][config]") {
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    Rng rng(seed);
    const Config c = random_config(rng);
    INFO("seed " << seed << " config " << describe(c));
    REQUIRE(same_config(config_from_json(config_to_json(c)), c));
  }
}

TEST_CASE("config_from_json fills optional keys from the defaults, d_ff from 4 * d_model", "[model_file][config]") {
  const Config c = config_from_json(R"({"vocab_size": 7, "d_model": 32, "n_layer": 2, "n_head": 2})");
  CHECK(c.vocab_size == 7);
  CHECK(c.d_model == 32);
  CHECK(c.d_ff == 128);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.ln_eps == 1e-5);
  CHECK(c.max_seq_len == 512);
  CHECK(c.train_ctx == 64);
  CHECK(config_from_json(R"({"vocab_size":7,"d_model":32,"n_layer":2,"n_head":2,"rope_theta":500})").rope_theta == 500.0);
}

TEST_CASE("config_from_json names the key of each problem", "[model_file][config]") {
  const std::string base = R"("vocab_size":7,"d_model":32,"n_layer":2)";
  CHECK_THROWS_WITH(config_from_json("{" + base + "}"), "config: required key n_head is missing");
  CHECK_THROWS_WITH(config_from_json("{" + base + R"(,"n_head":"2"})"), R"(config: key n_head must be an integer, got string "2")");
  CHECK_THROWS_WITH(config_from_json("{" + base + R"(,"n_head":2.0})"), "config: key n_head must be an integer, got number 2.0");
  CHECK_THROWS_WITH(config_from_json("{" + base + R"(,"n_head":true})"), "config: key n_head must be an integer, got boolean true");
  CHECK_THROWS_WITH(config_from_json("{" + base + R"(,"n_head":4294967296})"), "config: key n_head = 4294967296 is out of range");
  CHECK_THROWS_WITH(config_from_json("{" + base + R"(,"n_head":-4294967296})"), "config: key n_head = -4294967296 is out of range");
  CHECK_THROWS_WITH(config_from_json("{" + base + R"(,"n_head":2,"ln_eps":"small"})"), R"(config: key ln_eps must be a number, got string "small")");
  CHECK_THROWS_WITH(config_from_json("{" + base + R"(,"n_head":2,"d_mdoel":3})"), "config: unknown key 'd_mdoel'");
  CHECK_THROWS_WITH(config_from_json("[1]"), "config: must be a JSON object, got array");
  CHECK_THROWS_WITH(config_from_json("{" + base), Catch::StartsWith("config: not valid JSON: parse error at line 1, column"));
}

TEST_CASE("apply_config_json overrides only the keys given", "[model_file][config]") {
  Config base;
  base.vocab_size = 10;
  const Config a = apply_config_json(base, R"({"n_layer": 2, "train_ctx": 32})");
  CHECK(a.n_layer == 2);
  CHECK(a.train_ctx == 32);
  CHECK(a.d_model == 64);
  CHECK(a.d_ff == 256);
  CHECK(apply_config_json(base, R"({"d_model": 32})").d_ff == 128);
  CHECK(apply_config_json(base, R"({"d_model": 32, "d_ff": 100})").d_ff == 100);
  CHECK(apply_config_json(base, "{}").d_ff == 256);
  CHECK_THROWS_WITH(apply_config_json(base, R"({"layers": 2})"), "config: unknown key 'layers'");
}

TEST_CASE("Config::validate names the first bad field", "[model_file][config]") {
  Config c = small_config();
  CHECK_NOTHROW(c.validate());
  c.n_head = 3;
  CHECK_THROWS_WITH(c.validate(), "config: d_model 8 is not a multiple of n_head 3");
  c.n_head = 8;
  CHECK_THROWS_WITH(c.validate(), "config: d_head = d_model / n_head = 1 must be even (RoPE)");
  c = small_config();
  c.ln_eps = 0.0;
  CHECK_THROWS_WITH(c.validate(), "config: ln_eps must be > 0, got 0");
  c = small_config();
  c.d_ff = 0;
  CHECK_THROWS_WITH(c.validate(), "config: d_ff must be positive, got 0");
}

// ---- the tensor table -------------------------------------------------------------------------

TEST_CASE("the file holds the spec's tensors in for_each_tensor order", "[model_file]") {
  // Written out from shared/spec/minigpt.md, not from for_each_tensor.
  const int64_t V = 5, D = 8, F = 16;
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {{"tok_emb.weight", {V, D}}};
  for (int l = 0; l < 3; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    expected.push_back({p + "ln1.weight", {D}});
    expected.push_back({p + "ln1.bias", {D}});
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      expected.push_back({p + "attn." + proj + ".weight", {D, D}});
      expected.push_back({p + "attn." + proj + ".bias", {D}});
    }
    expected.push_back({p + "ln2.weight", {D}});
    expected.push_back({p + "ln2.bias", {D}});
    expected.push_back({p + "mlp.fc_in.weight", {F, D}});
    expected.push_back({p + "mlp.fc_in.bias", {F}});
    expected.push_back({p + "mlp.fc_out.weight", {D, F}});
    expected.push_back({p + "mlp.fc_out.bias", {D}});
  }
  expected.push_back({"ln_f.weight", {D}});
  expected.push_back({"ln_f.bias", {D}});

  const SafetensorsFile f = parse_safetensors(model_bytes(small_model()), "m");
  REQUIRE(f.tensors.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(f.tensors[i].first == expected[i].first);
    CHECK(f.tensors[i].second.shape == expected[i].second);
  }
  CHECK(f.metadata.size() == 2);
  CHECK(f.metadata.at("vocab") == R"(["<bos>",".","I","worked","yesterday"])");
  CHECK(config_from_json(f.metadata.at("config")).n_layer == 3);
}

TEST_CASE("parameter_count adds up every tensor", "[model_file]") {
  Config c;
  c.vocab_size = 10;
  const int64_t V = 10, D = 64, F = 256, L = 4;
  CHECK(parameter_count(c) == V * D + L * (4 * D * D + 2 * F * D + 9 * D + F) + 2 * D);
  int64_t sum = 0;
  Rng rng(1);
  for (const auto& [n, t] : tensors_of(init_model(c, random_vocab(10, rng), 3))) sum += static_cast<int64_t>(t.size());
  CHECK(parameter_count(c) == sum);
}

// ---- round trips ------------------------------------------------------------------------------

TEST_CASE("writing then reading a model gives the same weights bit for bit, config and vocab, and the same bytes again", "[model_file]") {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Rng rng = Rng::stream(17, seed);
    const Model m = random_model(rng);
    INFO("seed " << seed << " config " << describe(m.config));
    const std::string bytes = model_bytes(m);
    const Model back = parse_model(bytes, "round.safetensors");
    REQUIRE(same_config(back.config, m.config));
    REQUIRE(back.vocab == m.vocab);
    REQUIRE(same_bits(back, m));
    REQUIRE(model_bytes(back) == bytes);
  }
}

TEST_CASE("write_model and read_model go through a file; its sha256 is the bytes' sha256", "[model_file]") {
  TempDir dir("model_file");
  const std::string path = dir.file("m.safetensors");
  const Model m = small_model();
  write_model(path, m);
  const Model back = read_model(path);
  CHECK(same_bits(back, m));
  CHECK(back.vocab == m.vocab);
  CHECK(file_sha256(path) == sha256_hex(model_bytes(m)));
  const std::string missing = dir.file("none.safetensors");
  CHECK_THROWS_WITH(read_model(missing), "read " + missing + ": No such file or directory");
}

// GPT-2 small's widths (`minigpt init --preset gpt2-small`) with one layer instead of 12, to
// stay quick: a 154 MB embedding, and a header of about 950 KB holding the 50,257-token
// vocabulary, which ends in reserved "<unused_ID>" tokens as init pads it.
TEST_CASE("a model of GPT-2 small's widths (one layer) round-trips through a file bit for bit", "[model_file][scale]") {
  Config c = gpt2_small_config();
  c.n_layer = 1;
  std::vector<std::string> vocab = {"<bos>", ".", "I"};
  while (static_cast<int>(vocab.size()) < c.vocab_size) vocab.push_back("<unused_" + std::to_string(vocab.size()) + ">");
  const Model m = init_model(c, vocab, 5);
  TempDir dir("model_file_gpt2");
  const std::string path = dir.file("gpt2-1layer.safetensors");
  write_model(path, m);
  CHECK(fs::file_size(path) > 4 * static_cast<uintmax_t>(parameter_count(c)));
  const Model back = read_model(path);
  CHECK(same_config(back.config, m.config));
  const auto [differs, _] = std::ranges::mismatch(back.vocab, m.vocab);
  INFO("first token read back differently: id " << (differs - back.vocab.begin()));
  CHECK((back.vocab.size() == m.vocab.size() && differs == back.vocab.end()));
  CHECK(same_bits(back, m));
}

TEST_CASE("a model file with its tensors in another order (as PyTorch writes them) reads the same", "[model_file]") {
  const Model m = small_model();
  SafetensorsFile f = model_to_safetensors(m);
  std::sort(f.tensors.begin(), f.tensors.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  const Model back = parse_model(safetensors_bytes(f), "sorted.safetensors");
  CHECK(same_bits(back, m));
  CHECK(model_bytes(back) == model_bytes(m));  // and it is written back in spec order
}

// ---- reader checks, one each ------------------------------------------------------------------

std::string error_of(const SafetensorsFile& f) {
  try {
    parse_model(safetensors_bytes(f), "m.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

SafetensorsFile small_file() { return model_to_safetensors(small_model()); }

TEST_CASE("a model file without config or vocab metadata is refused", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  f.metadata.erase("config");
  CHECK(error_of(f) == "model m.safetensors: __metadata__ has no 'config' entry");
  f = small_file();
  f.metadata.erase("vocab");
  CHECK(error_of(f) == "model m.safetensors: __metadata__ has no 'vocab' entry");
}

TEST_CASE("a model file whose config does not parse is refused", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  f.metadata["config"] = "{\"vocab_size\": 5,";
  CHECK_THAT(error_of(f), Catch::StartsWith("model m.safetensors: config: not valid JSON: parse error"));
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":3})";
  CHECK(error_of(f) == "model m.safetensors: config: required key n_head is missing");
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":3,"n_head":"2"})";
  CHECK(error_of(f) == R"(model m.safetensors: config: key n_head must be an integer, got string "2")");
}

TEST_CASE("a model file with an invalid config is refused", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":3,"n_head":8,"d_ff":16})";
  CHECK(error_of(f) == "model m.safetensors: config: d_head = d_model / n_head = 1 must be even (RoPE)");
}

TEST_CASE("a model file whose vocab is not vocab_size distinct strings is refused", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  f.metadata["vocab"] = R"(["<bos>",".","I","worked"])";
  CHECK(error_of(f) == "model m.safetensors: vocab has 4 tokens but config vocab_size is 5");
  f.metadata["vocab"] = R"({"0":"<bos>"})";
  CHECK(error_of(f) == "model m.safetensors: vocab: must be a JSON array of strings, got object");
  f.metadata["vocab"] = R"(["<bos>",".","I",4,"x"])";
  CHECK(error_of(f) == "model m.safetensors: vocab: token 3 is a JSON number, not a string");
  f.metadata["vocab"] = R"(["<bos>",".","I","I","x"])";
  CHECK(error_of(f) == "model m.safetensors: vocab: token 3 'I' appears twice");
  f.metadata["vocab"] = R"(["<bos>",)";
  CHECK_THAT(error_of(f), Catch::StartsWith("model m.safetensors: vocab: not valid JSON"));
}

TEST_CASE("a model file missing a tensor is refused, naming it", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  std::erase_if(f.tensors, [](const auto& t) { return t.first == "blocks.1.mlp.fc_in.bias"; });
  CHECK(error_of(f) == "model m.safetensors: tensor blocks.1.mlp.fc_in.bias is missing");
}

TEST_CASE("a model file with an unknown tensor is refused, naming it", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  f.tensors.emplace_back("pos_emb.weight", Tensor{{2}, {0.0f, 0.0f}});
  CHECK(error_of(f) == "model m.safetensors: unknown tensor pos_emb.weight (not part of a model with this config)");
  f = small_file();
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":2,"n_head":2,"d_ff":16})";
  CHECK(error_of(f) == "model m.safetensors: unknown tensor blocks.2.ln1.weight (not part of a model with this config)");
}

TEST_CASE("a model file with a tensor of the wrong shape is refused, naming both shapes", "[model_file][corrupt]") {
  Config c;
  c.vocab_size = 5;
  c.n_layer = 3;  // D = 64, H = 4: the shipped shape
  SafetensorsFile f = model_to_safetensors(init_model(c, {"a", "b", "c", "d", "e"}, 1));
  for (auto& [name, t] : f.tensors)
    if (name == "blocks.2.attn.k_proj.weight") t = Tensor{{64, 32}, std::vector<float>(64 * 32, 0.5f)};
  CHECK(error_of(f) == "model m.safetensors: tensor blocks.2.attn.k_proj.weight has shape [64, 32], expected [64, 64]");
  f = small_file();
  for (auto& [name, t] : f.tensors)
    if (name == "ln_f.bias") t.shape = {1, 8};
  CHECK(error_of(f) == "model m.safetensors: tensor ln_f.bias has shape [1, 8], expected [8]");
}

TEST_CASE("a config claiming a billion layers is refused without allocating them", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":1000000000,"n_head":2,"d_ff":16})";
  CHECK(error_of(f) == "model m.safetensors: config: n_layer = 1000000000 exceeds the limit 256");
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":200,"n_head":2,"d_ff":16})";
  CHECK(error_of(f) == "model m.safetensors: tensor blocks.3.ln1.weight is missing");
}

TEST_CASE("a config asking for a huge cache (max_seq_len) or over-wide layers is refused", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":3,"n_head":2,"d_ff":16,"max_seq_len":2000000000})";
  CHECK(error_of(f) == "model m.safetensors: config: max_seq_len = 2000000000 exceeds the limit 16384");
  f.metadata["config"] = R"({"vocab_size":5,"d_model":8,"n_layer":3,"n_head":2,"d_ff":100000})";
  CHECK(error_of(f) == "model m.safetensors: config: d_ff = 100000 exceeds the limit 16384");
  f.metadata["config"] = R"({"vocab_size":100000,"d_model":8,"n_layer":3,"n_head":2,"d_ff":16})";
  CHECK(error_of(f) == "model m.safetensors: config: vocab_size = 100000 exceeds the limit 65536");
}

TEST_CASE("a model file with a NaN or infinite weight is refused, naming the tensor and the index", "[model_file][corrupt]") {
  SafetensorsFile f = small_file();
  for (auto& [name, t] : f.tensors)
    if (name == "blocks.1.attn.v_proj.weight") t.data[13] = std::numeric_limits<float>::quiet_NaN();
  CHECK(error_of(f) == "model m.safetensors: tensor blocks.1.attn.v_proj.weight: value 13 is nan");
  f = small_file();
  for (auto& [name, t] : f.tensors)
    if (name == "ln_f.bias") t.data[7] = -std::numeric_limits<float>::infinity();
  CHECK(error_of(f) == "model m.safetensors: tensor ln_f.bias: value 7 is -inf");
}

TEST_CASE("write_model refuses a model that does not match its config", "[model_file]") {
  Model m = small_model();
  m.weights.layers[1].bk.pop_back();
  CHECK_THROWS_WITH(model_bytes(m), "model: tensor blocks.1.attn.k_proj.bias has 7 values, expected 8 for shape [8]");
  m = small_model();
  m.vocab.pop_back();
  CHECK_THROWS_WITH(model_bytes(m), "model: vocab has 4 tokens but vocab_size is 5");
  m = small_model();
  m.config.n_head = 3;
  CHECK_THROWS_WITH(model_bytes(m), "config: d_model 8 is not a multiple of n_head 3");
}

TEST_CASE("damaged model files are read or refused with an Error, never crash", "[model_file][fuzz]") {
  Config c = small_config();
  c.n_layer = 1;
  c.vocab_size = 3;
  const std::string good = model_bytes(init_model(c, {"<bos>", ".", "I"}, 9));
  int accepted = 0, refused = 0;
  for (uint64_t seed = 1; seed <= 3000; ++seed) {
    Rng rng = Rng::stream(31, seed);
    std::string bytes = good;
    const uint32_t edits = 1 + rng.below(3);
    for (uint32_t e = 0; e < edits && !bytes.empty(); ++e) {
      // Most edits land in the header, where the structure is.
      const uint32_t span = rng.below(4) == 0 ? static_cast<uint32_t>(bytes.size()) : std::min<uint32_t>(1200, static_cast<uint32_t>(bytes.size()));
      const size_t at = rng.below(span);
      switch (rng.below(3)) {
        case 0: bytes[at] = static_cast<char>(bytes[at] ^ (1 << rng.below(8))); break;
        case 1: bytes[at] = static_cast<char>("0123456789[]{}\",:-.e"[rng.below(20)]); break;
        default: bytes.resize(at);
      }
    }
    INFO("seed " << seed);
    try {
      parse_model(bytes, "fuzz.safetensors");
      ++accepted;
    } catch (const Error&) {
      ++refused;
    }
  }
  std::printf("model fuzz: %d damaged files accepted, %d refused with an Error\n", accepted, refused);
  CHECK(refused > 1500);
}

}  // namespace
}  // namespace miniinfer
