// `minigpt draft`: the simplest honest draft model for speculative decoding (docs/speculative.md):
// the target's first layers with its final LayerNorm and tied head, in the spec's file format.
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/exit_status.h"
#include "base/sha256.h"
#include "cli/command.h"
#include "engine/speculative.h"
#include "model/model_file.h"

namespace miniinfer::cli {
namespace {

constexpr const char* kUsage =
    "usage: minigpt draft --layers N --out FILE [--model FILE]\n\n"
    "Writes a draft model for `minigpt generate --draft model`: the target's first N blocks, its\n"
    "final LayerNorm and its tied embedding/head, so it shares the target's vocabulary.\n\n"
    "  --layers N   blocks to keep, 1..the target's n_layer (required)\n"
    "  --out FILE   where to write the draft (required; written atomically)\n"
    "  --model FILE the target (default: the shipped model)";

int run_draft(const std::vector<std::string>& argv) {
  const Args args(argv, {"layers", "out", "model"}, {});
  args.require("layers");
  const int layers = args.get_int("layers", 0);
  const std::string out = args.require("out");
  if (out.empty()) fail("flag --out: empty file name");
  const Model target = read_model(args.get("model", default_model_path()));
  if (layers < 1 || layers > target.config.n_layer)
    fail("flag --layers: {} outside 1..{} (the target's layers)", layers, target.config.n_layer);
  const Model draft = first_layers_model(target, layers);
  write_model(out, draft);
  std::printf("%s: the first %d of %d layers; %lld parameters; sha256 %s\n", out.c_str(), layers,
              target.config.n_layer, static_cast<long long>(parameter_count(draft.config)), file_sha256(out).c_str());
  return kExitOk;
}

}  // namespace

MINIGPT_COMMAND("draft", "write a draft model: the target's first layers (--layers N --out FILE)", kUsage, run_draft);

}  // namespace miniinfer::cli
