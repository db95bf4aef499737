// `minigpt init`: a randomly initialized MiniGPT in the real file format, over the grammar's
// vocabulary. The starting point of training, and a model for engine tests before one is trained.
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "base/exit_status.h"
#include "base/sha256.h"
#include "cli/command.h"
#include "corpus/grammar.h"
#include "model/model.h"
#include "model/model_file.h"

namespace miniinfer::cli {
namespace {

constexpr const char* kUsage =
    "usage: minigpt init --seed N --out FILE [--config JSON]\n\n"
    "Writes a randomly initialized model (N(0, 0.02) matrices, zero biases, LayerNorm 1/0,\n"
    "output projections scaled by 1/sqrt(2L)) to FILE in the spec's safetensors format.\n"
    "The vocabulary is the grammar's; the default shape is the shipped one:\n"
    "d_model 64, n_layer 4, n_head 4, d_ff 256, max_seq_len 512, train_ctx 64.\n\n"
    "  --seed N       initialization seed (required)\n"
    "  --out FILE     where to write the model (required; written atomically)\n"
    "  --config JSON  a JSON object overriding config keys, e.g. '{\"n_layer\": 2}'; d_ff follows\n"
    "                 4 * d_model unless given; vocab_size, if given, must equal the vocabulary's size\n\n"
    "Prints one line: path, config, parameter count and the file's sha256.";

// Config errors read "config: ..."; here the input is the flag, so name it.
[[noreturn]] void fail_flag(const Error& e) {
  std::string why = e.what();
  if (why.starts_with("config: ")) why = why.substr(8);
  fail("--config: {}", why);
}

Config init_config(const Args& args, int vocab_size) {
  Config config;  // the shipped shape
  config.vocab_size = vocab_size;
  try {
    if (args.has("config")) config = apply_config_json(config, args.get("config", "{}"));
    if (config.vocab_size != vocab_size)
      fail("config: vocab_size {} disagrees with the grammar's vocabulary of {} words", config.vocab_size, vocab_size);
    config.validate();
  } catch (const Error& e) {
    fail_flag(e);
  }
  return config;
}

int run_init(const std::vector<std::string>& argv) {
  const Args args(argv, {"seed", "out", "config"}, {});
  args.require("seed");
  const uint64_t seed = args.get_u64("seed", 0);
  const std::string out = args.require("out");
  if (out.empty()) fail("flag --out: empty file name");
  std::vector<std::string> vocab = Grammar::builtin().vocabulary();
  const Config config = init_config(args, static_cast<int>(vocab.size()));
  const Model model = init_model(config, std::move(vocab), seed);
  write_model(out, model);
  const Config& c = model.config;
  std::printf("%s: vocab_size %d, d_model %d, n_layer %d, n_head %d, d_ff %d, max_seq_len %d, train_ctx %d; "
              "%lld parameters; sha256 %s\n",
              out.c_str(), c.vocab_size, c.d_model, c.n_layer, c.n_head, c.d_ff, c.max_seq_len, c.train_ctx,
              static_cast<long long>(parameter_count(c)), file_sha256(out).c_str());
  return kExitOk;
}

}  // namespace

MINIGPT_COMMAND("init", "write a randomly initialized model (--seed N --out FILE)", kUsage, run_init);

}  // namespace miniinfer::cli
