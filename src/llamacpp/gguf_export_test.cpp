// The GGUF export read back with ggml's own reader (gguf_init_from_file): every tensor's bytes,
// type and ne, and every hyperparameter, against the safetensors file it came from.
#include "llamacpp/gguf_export.h"

#include <ggml.h>
#include <gguf.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <memory>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/temp_dir.h"
#include "model/model_file.h"

namespace miniinfer {
namespace {

const std::string kShipped =
    std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors";

struct Gguf {
  gguf_context* g = nullptr;
  ggml_context* data = nullptr;
  explicit Gguf(const std::string& path) {
    g = gguf_init_from_file(path.c_str(), gguf_init_params{false, &data});
    REQUIRE(g != nullptr);
  }
  ~Gguf() {
    gguf_free(g);
    ggml_free(data);
  }
  int64_t key(const char* k) const {
    const int64_t id = gguf_find_key(g, k);
    INFO("key " << k);
    REQUIRE(id >= 0);
    return id;
  }
  uint32_t u32(const char* k) const {
    const int64_t id = key(k);
    REQUIRE(gguf_get_kv_type(g, id) == GGUF_TYPE_UINT32);
    return gguf_get_val_u32(g, id);
  }
  float f32(const char* k) const {
    const int64_t id = key(k);
    REQUIRE(gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT32);
    return gguf_get_val_f32(g, id);
  }
  std::string str(const char* k) const {
    const int64_t id = key(k);
    REQUIRE(gguf_get_kv_type(g, id) == GGUF_TYPE_STRING);
    return gguf_get_val_str(g, id);
  }
};

TEST_CASE("our tensor names map to llama.cpp's starcoder2 names", "[gguf]") {
  CHECK(gguf_tensor_name("tok_emb.weight") == "token_embd.weight");
  CHECK(gguf_tensor_name("blocks.0.ln1.weight") == "blk.0.attn_norm.weight");
  CHECK(gguf_tensor_name("blocks.3.attn.o_proj.bias") == "blk.3.attn_output.bias");
  CHECK(gguf_tensor_name("blocks.12.mlp.fc_in.weight") == "blk.12.ffn_up.weight");
  CHECK(gguf_tensor_name("blocks.1.mlp.fc_out.bias") == "blk.1.ffn_down.bias");
  CHECK(gguf_tensor_name("blocks.2.ln2.bias") == "blk.2.ffn_norm.bias");
  CHECK(gguf_tensor_name("ln_f.bias") == "output_norm.bias");
  CHECK_THROWS_WITH(gguf_tensor_name("blocks.0.mystery.weight"), Catch::Contains("blocks.0.mystery.weight"));
}

TEST_CASE("the shipped model exported to GGUF reads back with every tensor byte and hyperparameter",
          "[gguf]") {
  const SafetensorsFile file = read_safetensors(kShipped);
  const Model model = read_model(kShipped);
  const Config& c = model.config;
  TempDir dir("gguf_roundtrip");
  const std::string path = dir.file("minigpt.gguf");
  write_gguf(path, model);
  Gguf back(path);

  // Tensors: the same set, F32, ne = the safetensors shape reversed, the same bytes.
  REQUIRE(gguf_get_n_tensors(back.g) == static_cast<int64_t>(file.tensors.size()));
  for (const auto& [name, tensor] : file.tensors) {
    const std::string gname = gguf_tensor_name(name);
    INFO(name << " -> " << gname);
    const ggml_tensor* t = ggml_get_tensor(back.data, gname.c_str());
    REQUIRE(t != nullptr);
    REQUIRE(t->type == GGML_TYPE_F32);
    REQUIRE(ggml_n_dims(t) == static_cast<int>(tensor.shape.size()));
    for (size_t d = 0; d < tensor.shape.size(); ++d)
      CHECK(t->ne[d] == tensor.shape[tensor.shape.size() - 1 - d]);
    REQUIRE(ggml_nbytes(t) == tensor.data.size() * sizeof(float));
    CHECK(std::memcmp(t->data, tensor.data.data(), ggml_nbytes(t)) == 0);
  }
  CHECK(gguf_find_tensor(back.g, "output.weight") == -1);  // the head is tied to token_embd

  // Hyperparameters, written out here independently of gguf_keys().
  CHECK(back.str("general.architecture") == "starcoder2");
  CHECK(back.str("tokenizer.ggml.model") == "none");
  CHECK(back.u32("starcoder2.vocab_size") == static_cast<uint32_t>(c.vocab_size));
  CHECK(back.u32("starcoder2.context_length") == static_cast<uint32_t>(c.max_seq_len));
  CHECK(back.u32("starcoder2.embedding_length") == static_cast<uint32_t>(c.d_model));
  CHECK(back.u32("starcoder2.block_count") == static_cast<uint32_t>(c.n_layer));
  CHECK(back.u32("starcoder2.feed_forward_length") == static_cast<uint32_t>(c.d_ff));
  CHECK(back.u32("starcoder2.attention.head_count") == static_cast<uint32_t>(c.n_head));
  CHECK(back.u32("starcoder2.attention.head_count_kv") == static_cast<uint32_t>(c.n_head));
  CHECK(back.u32("starcoder2.rope.dimension_count") == static_cast<uint32_t>(c.d_model / c.n_head));
  CHECK(back.f32("starcoder2.attention.layer_norm_epsilon") == static_cast<float>(c.ln_eps));
  CHECK(back.f32("starcoder2.rope.freq_base") == static_cast<float>(c.rope_theta));
  // Our own keys make the file self-contained: the config and vocab, exactly as in the file.
  CHECK(back.str("miniinfer.config") == file.metadata.at("config"));
  CHECK(vocab_from_json(back.str("miniinfer.vocab")) == model.vocab);
  CHECK(gguf_get_n_kv(back.g) == static_cast<int64_t>(gguf_keys(c).size()) + 1);
}

TEST_CASE("the GGUF bytes are deterministic: two exports are identical", "[gguf]") {
  const Model model = read_model(kShipped);
  CHECK(gguf_bytes(model) == gguf_bytes(model));
}

TEST_CASE("a failed GGUF write names the path and leaves nothing behind", "[gguf]") {
  const Model model = read_model(kShipped);
  TempDir dir("gguf_fail");
  const std::string path = dir.file("missing_dir/out.gguf");
  CHECK_THROWS_WITH(write_gguf(path, model), Catch::Contains(path));
  CHECK(dir.entries() == 0);
}

TEST_CASE("the export refuses a tensor of the wrong size, naming it", "[gguf]") {
  Model model = read_model(kShipped);
  model.weights.layers[1].bk.pop_back();
  CHECK_THROWS_WITH(gguf_bytes(model), Catch::Contains("blocks.1.attn.k_proj.bias"));
}

}  // namespace
}  // namespace miniinfer
