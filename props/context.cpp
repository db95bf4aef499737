#include "props/context.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "base/sha256.h"
#include "corpus/grammar.h"
#include "model/model_file.h"
#include "props/history.h"

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
    ctx.model_label = config.model_path;
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
  ctx.tokenizer = std::make_unique<Tokenizer>(ctx.model.vocab);
  ctx.backend = backend_from_name(config.backend);
  ctx.fault = config.inject.empty() ? Fault::None : fault_from_name(config.inject);
  EngineOptions eo;
  eo.backend = ctx.backend;
  eo.batch = kBatch;
  ctx.engine = std::make_unique<Engine>(ctx.model, eo);
  eo.batch = kHistorySequences;
  eo.capacity = std::min(kHistoryCapacity, ctx.model.config.max_seq_len);
  ctx.history_engine = std::make_unique<Engine>(ctx.model, eo);
  set_run_config(config);
  const auto& c = ctx.model.config;
  std::printf("props: model %s (V=%d D=%d L=%d H=%d F=%d), backend %s, fault %s\n",
              ctx.model_label.c_str(), c.vocab_size, c.d_model, c.n_layer, c.n_head, c.d_ff,
              to_string(ctx.backend), to_string(ctx.fault));
}

GenerateOptions base_options() {
  GenerateOptions o;
  o.backend = context().backend;
  o.fault = context().fault;
  return o;
}

}  // namespace miniinfer::props
