// `minigpt train`: trains MiniGPT on the grammar's sentences and writes the weights (atomic,
// spec format), a CSV loss log, an SVG loss curve and a JSON manifest. Same flags and seed,
// same bytes.
#include <fmt/format.h>

#include <Eigen/Core>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/exit_status.h"
#include "base/machine.h"
#include "base/sha256.h"
#include "cli/command.h"
#include "corpus/grammar.h"
#include "model/model_file.h"
#include "train/data.h"
#include "train/svg_plot.h"
#include "train/trainer.h"

namespace miniinfer::cli {
namespace {

constexpr const char* kUsage =
    "usage: minigpt train [--out FILE] [--steps N] [--seed S] [--config JSON] [--batch B] [--lr X]\n"
    "                     [--min-lr X] [--warmup N] [--eval-every N] [--threads 1|2] [--log CSV]\n"
    "                     [--svg SVG] [--manifest JSON] [--quiet]\n\n"
    "Trains MiniGPT on sentences sampled from the grammar (windows of train_ctx tokens, each\n"
    "starting at a sentence start) and validates on a held-out stream from another seed.\n"
    "Defaults are the shipped model's: 4 layers, 4 heads, d_model 64, d_ff 256, max_seq_len 512,\n"
    "train_ctx 64, seed 17, 2000 steps of 32 windows, AdamW lr 6e-3 -> 3e-4 (cosine, 100 warm-up\n"
    "steps), weight decay 0.1 on the projection matrices (not the tied embedding, biases or\n"
    "LayerNorm), gradient clipping at global norm 1.\n"
    "The same flags give byte-identical weights (fixed reduction order, any thread count).\n\n"
    "  --out FILE        weights, written atomically (default minigpt.safetensors)\n"
    "  --steps N         optimizer steps\n"
    "  --seed S          seeds init (stream 0), training data (1) and validation data (2)\n"
    "  --config JSON     a JSON object, or a file holding one: model keys (d_model, n_layer,\n"
    "                    n_head, d_ff, rope_theta, ln_eps, max_seq_len, train_ctx) and training\n"
    "                    keys (seed, steps, batch, lr, min_lr, warmup, weight_decay, beta1, beta2,\n"
    "                    adam_eps, grad_clip, eval_every, val_windows); flags override it\n"
    "  --batch B         windows per step\n"
    "  --lr X            peak learning rate; --min-lr X the final one\n"
    "  --warmup N        warm-up steps\n"
    "  --eval-every N    validation loss every N steps (and after the last)\n"
    "  --threads 1|2     run the batch's two shards one after the other or side by side; the\n"
    "                    weights are the same bytes either way (default 1: the machine is shared)\n"
    "  --log CSV         loss log: step,lr,train_loss,grad_norm,val_loss,tokens,seconds\n"
    "  --svg SVG         the loss curve as an SVG line plot\n"
    "  --manifest JSON   config, seed, steps, tokens, losses, wall time, sha256, tool versions\n"
    "  --quiet           no progress lines";

std::string config_text(const std::string& arg) {
  const size_t first = arg.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && arg[first] == '{') return arg;
  if (!std::filesystem::exists(arg)) fail("'{}' is neither a JSON object nor a file", arg);
  return read_file(arg);
}

train::TrainOptions options_from(const Args& args) {
  train::TrainOptions o;
  if (args.has("config")) {
    try {
      o = train::apply_options_json(o, config_text(args.get("config", "")));
    } catch (const Error& e) {
      fail("--config: {}", e.what());
    }
  }
  o.steps = args.get_int("steps", o.steps);
  o.seed = args.get_u64("seed", o.seed);
  o.batch = args.get_int("batch", o.batch);
  o.lr = args.get_double("lr", o.lr);
  o.min_lr = args.get_double("min-lr", o.min_lr);
  o.warmup = args.get_int("warmup", o.warmup);
  o.eval_every = args.get_int("eval-every", o.eval_every);
  o.threads = args.get_int("threads", o.threads);
  return o;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buffer;
}

std::string format_duration(double seconds) {
  const int s = static_cast<int>(seconds + 0.5);
  return s >= 60 ? fmt::format("{}m{:02d}s", s / 60, s % 60) : fmt::format("{}s", s);
}

std::string manifest_json(const train::TrainOptions& o, const train::TrainRun& run, double entropy_floor,
                          const std::string& out, const std::string& sha, const std::string& load_start,
                          const std::string& load_end, const std::vector<std::string>& argv) {
  nlohmann::ordered_json j;
  j["experiment"] = "17-minigpt";
  j["date"] = utc_now();
  j["command"] = "minigpt train " + fmt::format("{}", fmt::join(argv, " "));
  // Every option, canonical: `minigpt train $train_args --out F` reproduces the weights (the
  // nightly test does exactly that and compares sha256).
  j["train_args"] = nlohmann::ordered_json::array({"--config", train::options_to_json(o)});
  j["weights"] = std::filesystem::path(out).filename().string();
  j["sha256"] = sha;
  j["options"] = nlohmann::ordered_json::parse(train::options_to_json(o));
  j["config"] = nlohmann::ordered_json::parse(config_to_json(run.model.config));
  j["parameters"] = parameter_count(run.model.config);
  j["vocab_sha256"] = sha256_hex(vocab_to_json(run.model.vocab));
  j["seed"] = o.seed;
  j["steps"] = o.steps;
  j["tokens_seen"] = run.tokens_seen;
  j["final_train_loss"] = run.final_train_loss;
  j["final_train_loss_note"] = "mean batch loss of the last 50 steps";
  j["final_val_loss"] = run.final_val_loss;
  j["val_tokens"] = static_cast<int64_t>(o.val_windows) * o.config.train_ctx;
  j["entropy_floor"] = entropy_floor;
  j["entropy_floor_note"] = "the grammar's entropy rate in nats/token: no model's expected loss is lower";
  j["wall_seconds"] = run.seconds;
  j["threads"] = o.threads;
  j["load_average_1_5_15"] = {{"start", load_start}, {"end", load_end}};
  j["tools"] = {
      {"compiler", fmt::format("GCC {}", __VERSION__)},
      {"eigen", fmt::format("{}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION)},
      {"fmt", FMT_VERSION},
      {"flags", "-O3 -ffp-contract=off -fno-fast-math -march=x86-64-v3 (CMake Release)"}};
  return j.dump(2) + "\n";
}

std::string loss_svg(const std::vector<train::StepRecord>& log) {
  train::Series train_series{"train loss (batch)", "#1f77b4", {}, {}};
  train::Series val_series{"validation loss", "#d62728", {}, {}};
  for (const auto& r : log) {
    train_series.x.push_back(r.step);
    train_series.y.push_back(r.train_loss);
    if (!std::isnan(r.val_loss)) {
      val_series.x.push_back(r.step);
      val_series.y.push_back(r.val_loss);
    }
  }
  return train::line_plot_svg(
      {train_series, val_series},
      {"MiniGPT training loss (cross-entropy, nats/token)", "step", "loss", 720, 420});
}

int run_train(const std::vector<std::string>& argv) {
  const Args args(argv,
                  {"out", "steps", "seed", "config", "batch", "lr", "min-lr", "warmup", "eval-every",
                   "threads", "log", "svg", "manifest"},
                  {"quiet"});
  const train::TrainOptions o = options_from(args);
  const std::string out = args.get("out", "minigpt.safetensors");
  if (out.empty()) fail("flag --out: empty file name");
  train::validate_options(o, static_cast<int>(train::builtin_vocabulary().size()));
  const bool quiet = args.has("quiet");
  const std::string load_start = load_average();
  const auto& vocab = train::builtin_vocabulary();
  if (!quiet)
    std::printf(
        "train: vocab %zu, d_model %d, n_layer %d, n_head %d, d_ff %d, train_ctx %d; %d steps x %d windows; "
        "seed %llu; %d thread(s); load %s\n",
        vocab.size(), o.config.d_model, o.config.n_layer, o.config.n_head, o.config.d_ff, o.config.train_ctx,
        o.steps, o.batch, static_cast<unsigned long long>(o.seed), o.threads, load_start.c_str());
  const int print_every = std::max(1, std::min(o.eval_every, 10));
  auto progress = [&](const train::StepRecord& r) {
    if (quiet || (r.step % print_every != 0 && std::isnan(r.val_loss) && r.step != o.steps)) return;
    const double per_step = r.seconds / r.step;
    std::string line = fmt::format("step {:5d}/{}  lr {:.2e}  loss {:.4f}  |g| {:.3f}", r.step, o.steps, r.lr,
                                   r.train_loss, r.grad_norm);
    if (!std::isnan(r.val_loss)) line += fmt::format("  val {:.4f}", r.val_loss);
    line += fmt::format("  {:.0f} tok/s  ETA {}", static_cast<double>(r.tokens) / r.seconds,
                        format_duration(per_step * (o.steps - r.step)));
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  const train::TrainRun run = train::train_model(o, vocab, train::builtin_grammar_sentences(), progress);
  write_model(out, run.model);
  const double entropy_floor = train::grammar_entropy(Grammar::builtin()).per_token;
  const std::string sha = file_sha256(out);
  if (args.has("log")) write_file_atomic(args.get("log", ""), train::log_to_csv(run.log));
  if (args.has("svg")) write_file_atomic(args.get("svg", ""), loss_svg(run.log));
  if (args.has("manifest"))
    write_file_atomic(args.get("manifest", ""),
                      manifest_json(o, run, entropy_floor, out, sha, load_start, load_average(), argv));
  std::printf(
      "%s: %d steps, %lld tokens in %s; train loss %.4f (last 50 steps), val loss %.4f (entropy floor "
      "%.4f); sha256 %s\n",
      out.c_str(), o.steps, static_cast<long long>(run.tokens_seen), format_duration(run.seconds).c_str(),
      run.final_train_loss, run.final_val_loss, entropy_floor, sha.c_str());
  return kExitOk;
}

}  // namespace

MINIGPT_COMMAND("train", "train MiniGPT on the grammar (--out FILE --steps N --seed S)", kUsage, run_train);

}  // namespace miniinfer::cli
