// MiniGPT as a llama.cpp `starcoder2` GGUF (shared/spec/minigpt.md, "The same model as GGUF"),
// written through ggml's own GGUF API (libggml-base). The tensors stay F32 in the file's
// [out, in] layout, which ggml reads as ne {in, out}; no vocabulary (tokenizer.ggml.model
// "none"), token ids go in directly. The one place that knows the name and key mapping.
#pragma once
#include <string>
#include <vector>

#include "model/model.h"

namespace miniinfer {

// The GGUF name of one of our tensors ("blocks.2.attn.o_proj.bias" -> "blk.2.attn_output.bias").
// Throws Error naming a tensor that has no GGUF counterpart.
std::string gguf_tensor_name(const std::string& ours);

// One hyperparameter as the GGUF holds it: u32 or f32 (llama.cpp reads these types), or a string.
struct GgufKey {
  enum class Type { U32, F32, Str };
  std::string key;
  Type type = Type::U32;
  uint32_t u32 = 0;
  float f32 = 0.0f;
  std::string str;
};
// Every key the export writes, in order, for this config.
std::vector<GgufKey> gguf_keys(const Config& config);

// The model as GGUF bytes (ggml's gguf_write_to_file_ptr into memory).
std::string gguf_bytes(const Model& model);
// Writes atomically (base/atomic_file.h): the complete file or the old one, never half.
void write_gguf(const std::string& path, const Model& model);

}  // namespace miniinfer
