// `minigpt eval`: the quality figures of a model file, measured through the engine that ships
// (invariant backend, KV cache): grammaticality, past-tense agreement, "Yesterday I".
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/exit_status.h"
#include "cli/cache_flags.h"
#include "cli/command.h"
#include "corpus/grammar.h"
#include "model/model_file.h"
#include "train/eval.h"

namespace miniinfer::cli {
namespace {

constexpr const char* kUsage =
    "usage: minigpt eval [--model FILE] [--seed S] [--samples N] [--temperature T] [--threads N]\n"
    "                    [--window W [--sinks S]] [--kv-quant f32|bf16|int8] [--kv-residual R]\n\n"
    "Measures a model with the engine's generate() (invariant backend, KV cache on):\n"
    "  grammaticality  N sentences sampled at temperature T, each from an adverbial or a pronoun\n"
    "                  of the grammar at position 0, cut at the first \".\": % that\n"
    "                  Grammar::is_complete accepts (target >= 95%)\n"
    "  agreement       every past adverbial (past simple, preterito, imperfecto) + pronoun,\n"
    "                  greedy: % whose sentence parses as the adverbial's tense (target >= 98%)\n"
    "  Yesterday I     the greedy continuation (target: an English past-simple verb)\n\n"
    "  --model FILE    default: the shipped experiments/17-minigpt/minigpt.safetensors\n"
    "  --seed S        prompt choice and sampling coins (default 1)\n"
    "  --samples N     sentences for grammaticality (default 1000)\n"
    "  --temperature T (default 1.0)\n"
    "  --threads N     worker threads (default: MINIINFER_THREADS, else the cores); same figures\n"
    "  --window W, --sinks S: measure under a sliding window's mask (minigpt generate --help)\n\n"
    "  --kv-quant FORMAT, --kv-residual R: the engine's K/V cache (minigpt generate --help)\n\n"
    "Exit status 0 whether or not targets are met; the figures are printed.";

int run_eval(const std::vector<std::string>& argv) {
  const Args args(argv, {"model", "seed", "samples", "temperature", "threads", "window", "sinks", "kv-quant",
                         "kv-residual"}, {});
  const std::string path = args.get("model", default_model_path());
  train::EvalOptions o;
  o.seed = args.get_u64("seed", o.seed);
  o.samples = args.get_int("samples", o.samples);
  o.temperature = static_cast<float>(args.get_double("temperature", o.temperature));
  if (o.samples <= 0) fail("flag --samples: must be positive, got {}", o.samples);
  if (!(o.temperature > 0.0f)) fail("flag --temperature: must be positive, got {}", o.temperature);
  o.threads = threads_flag(args);
  const WindowFlags window = window_flags(args);
  o.window = window.window;
  o.sinks = window.sinks;
  const QuantFlags quant = quant_flags(args);
  o.kv_quant = quant.format;
  o.kv_residual = quant.residual;
  const Model model = read_model(path);
  const train::EvalReport report = train::evaluate(model, Grammar::builtin(), o);
  std::printf("%s (seed %llu, %d samples)\n%s", path.c_str(), static_cast<unsigned long long>(o.seed),
              o.samples, train::format_report(report).c_str());
  return kExitOk;
}

}  // namespace

MINIGPT_COMMAND("eval", "quality figures of a model (--model FILE)", kUsage, run_eval);

}  // namespace miniinfer::cli
