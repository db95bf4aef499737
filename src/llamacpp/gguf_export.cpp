// The GGUF export. Names and shapes come from for_each_tensor (model.h); this file only renames.
#include "llamacpp/gguf_export.h"

#include <ggml.h>
#include <gguf.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "base/atomic_file.h"
#include "base/error.h"
#include "model/model_file.h"

namespace miniinfer {

namespace {

// Our per-layer suffix -> llama.cpp's (llama-arch.cpp LLM_TENSOR_NAMES for starcoder2).
struct Rename {
  const char* ours;
  const char* gguf;
};
constexpr Rename kLayerNames[] = {{"ln1.", "attn_norm."},           {"attn.q_proj.", "attn_q."},
                                  {"attn.k_proj.", "attn_k."},      {"attn.v_proj.", "attn_v."},
                                  {"attn.o_proj.", "attn_output."}, {"ln2.", "ffn_norm."},
                                  {"mlp.fc_in.", "ffn_up."},        {"mlp.fc_out.", "ffn_down."}};

struct GgufFree {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

}  // namespace

std::string gguf_tensor_name(const std::string& ours) {
  if (ours == "tok_emb.weight") return "token_embd.weight";
  if (ours.starts_with("ln_f.")) return "output_norm." + ours.substr(5);
  if (ours.starts_with("blocks.")) {
    const size_t dot = ours.find('.', 7);
    if (dot != std::string::npos) {
      const std::string layer = ours.substr(7, dot - 7), rest = ours.substr(dot + 1);
      for (const Rename& r : kLayerNames)
        if (rest.starts_with(r.ours))
          return "blk." + layer + "." + r.gguf + rest.substr(std::string(r.ours).size());
    }
  }
  fail("gguf export: tensor {} has no starcoder2 counterpart", ours);
}

std::vector<GgufKey> gguf_keys(const Config& c) {
  using T = GgufKey::Type;
  auto u32 = [](const char* k, int v) { return GgufKey{k, T::U32, static_cast<uint32_t>(v), 0.0f, {}}; };
  auto f32 = [](const char* k, double v) { return GgufKey{k, T::F32, 0, static_cast<float>(v), {}}; };
  auto str = [](const char* k, std::string v) { return GgufKey{k, T::Str, 0, 0.0f, std::move(v)}; };
  // clang-format off: one key per line
  return {str("general.architecture", "starcoder2"),
          str("general.name", "MiniGPT"),
          u32("starcoder2.context_length", c.max_seq_len),
          u32("starcoder2.embedding_length", c.d_model),
          u32("starcoder2.block_count", c.n_layer),
          u32("starcoder2.feed_forward_length", c.d_ff),
          u32("starcoder2.attention.head_count", c.n_head),
          u32("starcoder2.attention.head_count_kv", c.n_head),
          f32("starcoder2.attention.layer_norm_epsilon", c.ln_eps),
          f32("starcoder2.rope.freq_base", c.rope_theta),
          u32("starcoder2.rope.dimension_count", c.d_head()),
          u32("starcoder2.vocab_size", c.vocab_size),
          str("tokenizer.ggml.model", "none"),
          // Not read by llama.cpp: what makes the file self-contained for us (config JSON as
          // in the safetensors metadata, the vocab as a JSON array of token strings).
          str("miniinfer.config", config_to_json(c))};
  // clang-format on
}

std::string gguf_bytes(const Model& model) {
  const Config& c = model.config;
  c.validate();
  if (static_cast<int>(model.vocab.size()) != c.vocab_size)
    fail("gguf export: vocab has {} tokens, config says {}", model.vocab.size(), c.vocab_size);

  std::unique_ptr<gguf_context, GgufFree> g(gguf_init_empty());
  for (const GgufKey& k : gguf_keys(c)) {
    switch (k.type) {
      case GgufKey::Type::U32:
        gguf_set_val_u32(g.get(), k.key.c_str(), k.u32);
        break;
      case GgufKey::Type::F32:
        gguf_set_val_f32(g.get(), k.key.c_str(), k.f32);
        break;
      case GgufKey::Type::Str:
        gguf_set_val_str(g.get(), k.key.c_str(), k.str.c_str());
        break;
    }
  }
  const std::string vocab = vocab_to_json(model.vocab);
  gguf_set_val_str(g.get(), "miniinfer.vocab", vocab.c_str());

  // Tensor headers only (no_alloc); their data pointers point into `model`, read at write time.
  const size_t n_tensors = 2 + 16 * static_cast<size_t>(c.n_layer) + 1;
  ggml_init_params params{ggml_tensor_overhead() * n_tensors, nullptr, true};
  std::unique_ptr<ggml_context, GgmlFree> ctx(ggml_init(params));
  if (!ctx) fail("gguf export: ggml_init failed");
  for_each_tensor(
      model.weights, c,
      [&](const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& data) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        if (static_cast<int64_t>(data.size()) != n)
          fail("gguf export: tensor {} has {} values, its shape needs {}", name, data.size(), n);
        // Row-major [out, in] is ggml's ne {in, out}: the same bytes.
        ggml_tensor* t = shape.size() == 1 ? ggml_new_tensor_1d(ctx.get(), GGML_TYPE_F32, shape[0])
                                           : ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, shape[1], shape[0]);
        ggml_set_name(t, gguf_tensor_name(name).c_str());
        t->data = const_cast<float*>(data.data());
        gguf_add_tensor(g.get(), t);
      });

  char* buffer = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buffer, &size);
  if (!f) fail("gguf export: open_memstream failed");
  const bool ok = gguf_write_to_file_ptr(g.get(), f, false);
  const bool closed = std::fclose(f) == 0;
  std::unique_ptr<char, decltype(&std::free)> owned(buffer, &std::free);
  if (!ok || !closed) fail("gguf export: gguf_write_to_file_ptr failed");
  return std::string(buffer, size);
}

void write_gguf(const std::string& path, const Model& model) { write_file_atomic(path, gguf_bytes(model)); }

}  // namespace miniinfer
