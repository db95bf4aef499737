// Model <-> safetensors. The tensor names and shapes come from for_each_tensor only, so this
// file cannot drift from the trainer or the engine; everything else here is the metadata.
#include "model/model_file.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/error.h"

namespace miniinfer {

namespace {

using nlohmann::json;

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

json parse_json(const std::string& text, const char* what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    std::string why = e.what();
    if (auto p = why.find("] "); why.starts_with("[json.exception") && p != std::string::npos) why = why.substr(p + 2);
    fail("{}: not valid JSON: {}", what, why);
  }
}

int int_value(const json& v, const std::string& key) {
  if (!v.is_number_integer()) fail("config: key {} must be an integer, got {} {}", key, v.type_name(), v.dump());
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t{std::numeric_limits<int>::max()}
                             : (v.get<int64_t>() < std::numeric_limits<int>::min() ||
                                v.get<int64_t>() > std::numeric_limits<int>::max()))
    fail("config: key {} = {} is out of range", key, v.dump());
  return v.get<int>();
}

double double_value(const json& v, const std::string& key) {
  if (!v.is_number()) fail("config: key {} must be a number, got {} {}", key, v.type_name(), v.dump());
  return v.get<double>();
}

// Every config key with where it lives in Config; the one list both directions use.
struct IntKey {
  const char* name;
  int Config::*field;
};
struct DoubleKey {
  const char* name;
  double Config::*field;
};
constexpr IntKey kIntKeys[] = {{"vocab_size", &Config::vocab_size}, {"d_model", &Config::d_model},
                               {"n_layer", &Config::n_layer},       {"n_head", &Config::n_head},
                               {"d_ff", &Config::d_ff}};
constexpr DoubleKey kDoubleKeys[] = {{"rope_theta", &Config::rope_theta}, {"ln_eps", &Config::ln_eps}};
constexpr IntKey kTailIntKeys[] = {{"max_seq_len", &Config::max_seq_len}, {"train_ctx", &Config::train_ctx}};

json config_object(const std::string& text) {
  json j = parse_json(text, "config");
  if (!j.is_object()) fail("config: must be a JSON object, got {}", j.type_name());
  return j;
}

Config apply_keys(Config c, const json& j) {
  std::set<std::string> known;
  for (const auto& k : kIntKeys) known.insert(k.name);
  for (const auto& k : kDoubleKeys) known.insert(k.name);
  for (const auto& k : kTailIntKeys) known.insert(k.name);
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (!known.count(key)) fail("config: unknown key '{}'", key);
  }
  for (const auto& k : kIntKeys)
    if (j.contains(k.name)) c.*k.field = int_value(j.at(k.name), k.name);
  for (const auto& k : kTailIntKeys)
    if (j.contains(k.name)) c.*k.field = int_value(j.at(k.name), k.name);
  for (const auto& k : kDoubleKeys)
    if (j.contains(k.name)) c.*k.field = double_value(j.at(k.name), k.name);
  // The spec's default is F = 4D; the struct's 256 is that for the default D = 64.
  if (j.contains("d_model") && !j.contains("d_ff")) c.d_ff = 4 * c.d_model;
  return c;
}

// Rethrows a config or vocab Error with the file's name in front.
template <typename F>
auto in_file(const std::string& name, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    fail("model {}: {}", name, e.what());
  }
}

int64_t elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

std::string config_to_json(const Config& c) {
  nlohmann::ordered_json j;
  for (const auto& k : kIntKeys) j[k.name] = c.*k.field;
  for (const auto& k : kDoubleKeys) j[k.name] = c.*k.field;
  for (const auto& k : kTailIntKeys) j[k.name] = c.*k.field;
  return j.dump();
}

Config config_from_json(const std::string& text) {
  const json j = config_object(text);
  for (const char* key : {"vocab_size", "d_model", "n_layer", "n_head"})
    if (!j.contains(key)) fail("config: required key {} is missing", key);
  return apply_keys(Config{}, j);
}

Config apply_config_json(Config base, const std::string& text) { return apply_keys(base, config_object(text)); }

std::string vocab_to_json(const std::vector<std::string>& vocab) {
  try {
    return json(vocab).dump();
  } catch (const json::exception&) {
    fail("vocab: a token is not valid UTF-8");
  }
}

std::vector<std::string> vocab_from_json(const std::string& text) {
  const json j = parse_json(text, "vocab");
  if (!j.is_array()) fail("vocab: must be a JSON array of strings, got {}", j.type_name());
  std::vector<std::string> vocab;
  std::set<std::string> seen;
  for (const json& t : j) {
    if (!t.is_string()) fail("vocab: token {} is a JSON {}, not a string", vocab.size(), t.type_name());
    if (!seen.insert(t.get<std::string>()).second)
      fail("vocab: token {} '{}' appears twice", vocab.size(), printable_name(t.get<std::string>()));
    vocab.push_back(t.get<std::string>());
  }
  return vocab;
}

int64_t parameter_count(const Config& c) {
  Weights shapes_only;
  shapes_only.layers.resize(static_cast<size_t>(std::max(c.n_layer, 0)));
  int64_t n = 0;
  for_each_tensor(shapes_only, c, [&](const std::string&, const std::vector<int64_t>& shape, const std::vector<float>&) {
    n += elements(shape);
  });
  return n;
}

SafetensorsFile model_to_safetensors(const Model& m) {
  m.config.validate();
  if (m.vocab.size() != static_cast<size_t>(m.config.vocab_size))
    fail("model: vocab has {} tokens but vocab_size is {}", m.vocab.size(), m.config.vocab_size);
  if (m.weights.layers.size() != static_cast<size_t>(m.config.n_layer))
    fail("model: weights have {} layers but n_layer is {}", m.weights.layers.size(), m.config.n_layer);
  SafetensorsFile file;
  file.metadata["config"] = config_to_json(m.config);
  file.metadata["vocab"] = vocab_to_json(m.vocab);
  for_each_tensor(m.weights, m.config,
                  [&](const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& t) {
                    if (static_cast<int64_t>(t.size()) != elements(shape))
                      fail("model: tensor {} has {} values, expected {} for shape {}", name, t.size(), elements(shape),
                           shape_text(shape));
                    file.tensors.emplace_back(name, Tensor{shape, t});
                  });
  return file;
}

Model model_from_safetensors(const SafetensorsFile& file, const std::string& name) {
  for (const char* key : {"config", "vocab"})
    if (!file.metadata.count(key)) fail("model {}: __metadata__ has no '{}' entry", name, key);
  Model m;
  m.config = in_file(name, [&] { return config_from_json(file.metadata.at("config")); });
  in_file(name, [&] { return (m.config.validate(), 0); });
  m.vocab = in_file(name, [&] { return vocab_from_json(file.metadata.at("vocab")); });
  if (m.vocab.size() != static_cast<size_t>(m.config.vocab_size))
    fail("model {}: vocab has {} tokens but config vocab_size is {}", name, m.vocab.size(), m.config.vocab_size);

  std::map<std::string_view, const Tensor*> by_name;
  for (const auto& [n, t] : file.tensors) by_name.emplace(n, &t);
  // A corrupt config can claim a billion layers; allocating them would fail before any
  // message. Every layer has tensors, so walking one layer more than the file has tensors
  // is enough to meet a missing one, and the walk stays small.
  Config walk = m.config;
  walk.n_layer = static_cast<int>(std::min<size_t>(static_cast<size_t>(m.config.n_layer), file.tensors.size() + 1));
  Weights names_only;
  names_only.layers.resize(static_cast<size_t>(walk.n_layer));
  std::set<std::string> wanted;
  for_each_tensor(names_only, walk, [&](const std::string& n, const std::vector<int64_t>&, std::vector<float>&) {
    if (!by_name.count(n)) fail("model {}: tensor {} is missing", name, n);
    wanted.insert(n);
  });
  if (walk.n_layer != m.config.n_layer) fail("model {}: too few tensors for {} layers", name, m.config.n_layer);
  for (const auto& [n, t] : file.tensors)
    if (!wanted.count(n))
      fail("model {}: unknown tensor {} (not part of a model with this config)", name, printable_name(n));

  m.weights.layers.resize(static_cast<size_t>(m.config.n_layer));
  for_each_tensor(m.weights, m.config,
                  [&](const std::string& n, const std::vector<int64_t>& shape, std::vector<float>& out) {
                    const Tensor& t = *by_name.at(n);
                    if (t.shape != shape)
                      fail("model {}: tensor {} has shape {}, expected {}", name, n, shape_text(t.shape), shape_text(shape));
                    out = t.data;
                  });
  in_file(name, [&] { return (check_weights(m.weights, m.config), 0); });
  return m;
}

std::string model_bytes(const Model& model) { return safetensors_bytes(model_to_safetensors(model)); }

Model parse_model(std::string_view bytes, const std::string& name) {
  return model_from_safetensors(parse_safetensors(bytes, name), name);
}

void write_model(const std::string& path, const Model& model) { write_file_atomic(path, model_bytes(model)); }

Model read_model(const std::string& path) { return parse_model(read_file(path), path); }

}  // namespace miniinfer
