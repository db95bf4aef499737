// The MiniGPT model file: safetensors with the spec's tensor names and shapes (one place
// knows them: for_each_tensor in model.h) and two metadata strings, `config` (a JSON object)
// and `vocab` (a JSON array of token strings in id order). See shared/spec/minigpt.md.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/model.h"
#include "model/safetensors.h"

namespace miniinfer {

// {"vocab_size":V,"d_model":D,"n_layer":L,"n_head":H,"d_ff":F,"rope_theta":..,"ln_eps":..,
//  "max_seq_len":..,"train_ctx":..}: compact, keys in this order, doubles round-trip exactly.
std::string config_to_json(const Config& config);
// Parses a config object. vocab_size, d_model, n_layer and n_head are required; a missing
// d_ff is 4 * d_model; the other keys default as in model.h. A wrong type, an integer out of
// int range or an unknown key is an Error naming the key. Does not call Config::validate.
Config config_from_json(const std::string& text);
// `base` with the keys present in `text` replaced (same type rules, nothing required). If
// d_model is given and d_ff is not, d_ff becomes 4 * d_model. Does not validate.
Config apply_config_json(Config base, const std::string& text);

// The vocab metadata: a JSON array of strings.
std::string vocab_to_json(const std::vector<std::string>& vocab);
std::vector<std::string> vocab_from_json(const std::string& text);

// Number of floats in a model of this config (sum of all tensor sizes).
int64_t parameter_count(const Config& config);

// The model as a safetensors file: tensors in for_each_tensor order, metadata config + vocab.
// Throws Error if the config is invalid, the vocab size is not vocab_size, or a weight has the
// wrong number of values (naming the tensor).
SafetensorsFile model_to_safetensors(const Model& model);
// The model in a parsed file, checked: metadata config and vocab present and parseable, config
// valid, vocab of vocab_size distinct strings, every tensor present, none unknown, every shape
// as the config says. Errors read "model NAME: tensor T has shape [64, 32], expected [64, 64]".
Model model_from_safetensors(const SafetensorsFile& file, const std::string& name);

std::string model_bytes(const Model& model);
Model parse_model(std::string_view bytes, const std::string& name);

// Writes atomically (base/atomic_file.h); reads and checks everything above.
void write_model(const std::string& path, const Model& model);
Model read_model(const std::string& path);

}  // namespace miniinfer
