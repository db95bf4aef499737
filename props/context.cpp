#include "props/context.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "base/error.h"
#include "base/sha256.h"
#include "corpus/grammar.h"
#include "model/model_file.h"
#include "props/engine_registry.h"
#include "props/level.h"
#include "props/model_check.h"

namespace miniinfer::props {

Context& context() {
  static Context ctx;
  return ctx;
}

void load_context(const RunConfig& given) {
  RunConfig config = given;
  Context& ctx = context();
  const std::string shipped = std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors";
  if (config.model_path.empty() && std::filesystem::exists(shipped)) config.model_path = shipped;
  if (!config.model_path.empty()) {
    ctx.model = read_model(config.model_path);
    ctx.model_label = source_relative_path(config.model_path);
    ctx.model_sha256 = file_sha256(config.model_path);
  } else {
    // Until trained weights ship, the properties run on what `minigpt init --seed 1` writes.
    Config c;
    const auto& vocab = Grammar::builtin().vocabulary();
    c.vocab_size = static_cast<int>(vocab.size());
    ctx.model = init_model(c, vocab, 1);
    ctx.model_label = "random model (minigpt init --seed 1; no shipped model found)";
    ctx.model_sha256 = "";
  }
  config.model_sha256 = ctx.model_sha256;
  check_model_serves_properties(ctx.model, ctx.model_label);
  ctx.tokenizer = std::make_unique<Tokenizer>(ctx.model.vocab);
  ctx.backend = backend_from_name(config.backend);
  ctx.fault = config.inject.empty() ? Fault::None : fault_from_name(config.inject);
  set_run_level(level_from_name(config.level));
  const EngineDecl* engine = find_engine(config.engine);
  if (!engine) fail("--engine: '{}' is not an engine ({})", config.engine, engine_names());
  config.engine_settings = settings_from_flags(*engine, config);
  set_run_config(config);
  make_subject(config.engine, config.engine_settings);
  const auto& c = ctx.model.config;
  std::printf("props: model %s (V=%d D=%d L=%d H=%d F=%d)\nprops: engine %s; level %s\n", ctx.model_label.c_str(),
              c.vocab_size, c.d_model, c.n_layer, c.n_head, c.d_ff, ctx.subject->describe().c_str(),
              to_string(run_level()).c_str());
}

void make_subject(const std::string& name, const nlohmann::json& settings) {
  Context& ctx = context();
  ctx.subject.reset();
  ctx.subject = find_engine(name)->make(settings, ctx.model, kBatch, ctx.model.config.max_seq_len);
}

GenerateOptions base_options() {
  GenerateOptions o;
  o.backend = context().backend;
  o.fault = context().fault;
  return o;
}

}  // namespace miniinfer::props
