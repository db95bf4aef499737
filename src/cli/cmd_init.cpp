// `minigpt init`: a randomly initialized MiniGPT in the real file format, over the grammar's
// vocabulary. The starting point of training, and a model for engine tests before one is trained;
// --preset gpt2-small gives GPT-2 small's shape, to measure the engine at a real model's scale.
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "base/exit_status.h"
#include "base/sha256.h"
#include "cli/command.h"
#include "corpus/grammar.h"
#include "corpus/tokenizer.h"
#include "model/model.h"
#include "model/model_file.h"

namespace miniinfer::cli {
namespace {

constexpr const char* kUsage =
    "usage: minigpt init --seed N --out FILE [--preset NAME] [--config JSON]\n\n"
    "Writes a randomly initialized model (N(0, 0.02) matrices, zero biases, LayerNorm 1/0,\n"
    "output projections scaled by 1/sqrt(2L)) to FILE in the spec's safetensors format.\n"
    "The vocabulary is the grammar's, padded to vocab_size with reserved tokens \"<unused_ID>\"\n"
    "(ID is the token's id) that no prompt contains.\n\n"
    "  --seed N       initialization seed (required)\n"
    "  --out FILE     where to write the model (required; written atomically)\n"
    "  --preset NAME  the starting shape (default minigpt):\n"
    "                   minigpt     the shipped one: vocab_size the grammar's, d_model 64, n_layer 4,\n"
    "                               n_head 4, d_ff 256, max_seq_len 512, train_ctx 64\n"
    "                   gpt2-small  GPT-2 small's: vocab_size 50257, d_model 768, n_layer 12,\n"
    "                               n_head 12, d_ff 3072, max_seq_len 1024, train_ctx 1024\n"
    "                               (123,653,376 parameters, a 496 MB file)\n"
    "  --config JSON  a JSON object overriding the preset's keys, e.g. '{\"n_layer\": 2}'; d_ff follows\n"
    "                 4 * d_model unless given; vocab_size must be at least the grammar's vocabulary\n\n"
    "Prints one line: path, config, parameter count and the file's sha256.";

struct Preset {
  const char* name;
  Config config;  // vocab_size 0 stands for the grammar's own
};

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = {{"minigpt", Config{}}, {"gpt2-small", gpt2_small_config()}};
  return all;
}

Config preset_config(const std::string& name, int grammar_words) {
  std::string names;
  for (const Preset& p : presets()) {
    if (name == p.name) {
      Config c = p.config;
      if (c.vocab_size == 0) c.vocab_size = grammar_words;
      return c;
    }
    names += (names.empty() ? "" : ", ") + std::string(p.name);
  }
  fail("--preset: '{}' is not a preset ({})", name, names);
}

// Config errors read "config: ..."; here the input is the flag, so name it.
[[noreturn]] void fail_flag(const Error& e) {
  std::string why = e.what();
  if (why.starts_with("config: ")) why = why.substr(8);
  fail("--config: {}", why);
}

Config init_config(const Args& args, int grammar_words) {
  Config config = preset_config(args.get("preset", "minigpt"), grammar_words);
  try {
    if (args.has("config")) config = apply_config_json(config, args.get("config", "{}"));
    if (config.vocab_size < grammar_words)
      fail("config: vocab_size {} is smaller than the grammar's vocabulary of {} words", config.vocab_size,
           grammar_words);
    config.validate();
  } catch (const Error& e) {
    fail_flag(e);
  }
  return config;
}

int run_init(const std::vector<std::string>& argv) {
  const Args args(argv, {"seed", "out", "preset", "config"}, {});
  args.require("seed");
  const uint64_t seed = args.get_u64("seed", 0);
  const std::string out = args.require("out");
  if (out.empty()) fail("flag --out: empty file name");
  const std::vector<std::string>& words = Grammar::builtin().vocabulary();
  const Config config = init_config(args, static_cast<int>(words.size()));
  const Model model = init_model(config, pad_vocabulary(words, config.vocab_size), seed);
  write_model(out, model);
  const Config& c = model.config;
  std::printf("%s: vocab_size %d, d_model %d, n_layer %d, n_head %d, d_ff %d, max_seq_len %d, train_ctx %d; "
              "%lld parameters; sha256 %s\n",
              out.c_str(), c.vocab_size, c.d_model, c.n_layer, c.n_head, c.d_ff, c.max_seq_len, c.train_ctx,
              static_cast<long long>(parameter_count(c)), file_sha256(out).c_str());
  return kExitOk;
}

}  // namespace

MINIGPT_COMMAND("init", "write a randomly initialized model (--seed N --out FILE [--preset NAME])", kUsage, run_init);

}  // namespace miniinfer::cli
