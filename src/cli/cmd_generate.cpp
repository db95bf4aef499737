// `minigpt generate` and `minigpt logits`: the engine from the command line. generate samples
// a continuation with or without the KV cache; logits prints the exact floats of a forward
// pass (shortest round-trip form), so other implementations can be compared against ours.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/exit_status.h"
#include "cli/command.h"
#include "cli/cache_flags.h"
#include "corpus/tokenizer.h"
#include "engine/generate.h"
#include "model/model_file.h"

namespace miniinfer::cli {
namespace {

constexpr const char* kGenerateUsage =
    "usage: minigpt generate --prompt TEXT [--model FILE] [--max-new-tokens N] [--seed N]\n"
    "                        [--no-cache] [--temperature T] [--top-k K] [--top-p P]\n"
    "                        [--backend invariant|eigen] [--inject FAULT] [--format text|json]\n"
    "                        [--kv-cache contiguous|paged] [--block-size N] [--pool-blocks N]\n"
    "                        [--threads N] [--window W [--sinks S]]\n"
    "                        [--kv-quant f32|bf16|int8] [--kv-residual R]\n"
    "                        [--draft ngram|model --draft-len K [--draft-model FILE]]\n\n"
    "Continues TEXT with the model. With the cache (default) the prompt is prefilled in one pass\n"
    "and each new token is one decode step; with --no-cache every step recomputes the whole\n"
    "sequence. Both give the same tokens, byte for byte, for the same seed.\n\n"
    "  --prompt TEXT        words of the model's vocabulary (case-insensitive; '.' splits off);\n"
    "                       no <bos> is added: write it if you want it\n"
    "  --model FILE         model file (default: the shipped model)\n"
    "  --max-new-tokens N   tokens to generate (default 64)\n"
    "  --seed N             sampling seed; the sequence draws from stream (N, 0) (default 0)\n"
    "  --no-cache           full recompute at every step\n"
    "  --temperature T      0 = greedy, ties to the lowest id (default 0)\n"
    "  --top-k K            keep the K most likely tokens (0 = off, default)\n"
    "  --top-p P            keep the most likely tokens up to probability P (1 = off, default)\n"
    "  --backend NAME       invariant (default) or eigen (Eigen's products: not bitwise stable)\n"
    "  --inject FAULT       a deliberate cache bug, for testing the checker; one of:\n"
    "{faults}"
    "{cache_flags}"
    "{threads_flag}"
    "{window_flags}"
    "  --draft DRAFTER      speculative decoding (docs/speculative.md): ngram (prompt lookup) or\n"
    "                       model (--draft-model); greedy gives the same tokens as without it.\n"
    "                       Prints the acceptance rate (text: a second line; json: \"speculative\")\n"
    "  --draft-len K        drafts per verify call, 1.. the room the prompt leaves (default 4)\n"
    "  --draft-model FILE   the draft model (minigpt draft), with the target's vocabulary\n"
    "{quant_flags}"
    "  --format FORMAT      text (default): the prompt and the continuation on one line;\n"
    "                       json: {{\"prompt_tokens\": [...], \"tokens\": [...], \"text\": \"...\"}}\n"
    "                       where tokens and text are the generated part only";

constexpr const char* kLogitsUsage =
    "usage: minigpt logits --prompt TEXT [--model FILE] [--all-positions]\n"
    "                      [--backend invariant|eigen] [--format json|text] [--threads N]\n"
    "                      [--window W [--sinks S]] [--kv-quant f32|bf16|int8] [--kv-residual R]\n\n"
    "One uncached forward pass over TEXT. json (default): {\"tokens\": [ids], \"logits\": [V floats]}\n"
    "for the last position, or \"logits\": [[V floats], ...] one row per position with\n"
    "--all-positions. Each float is printed in its shortest form that reads back to the same\n"
    "float. text: per position, the token and the five highest logits.\n\n"
    "  --prompt TEXT     words of the model's vocabulary; no <bos> is added\n"
    "  --model FILE      model file (default: the shipped model)\n"
    "  --all-positions   logits of every position, not only the last\n"
    "  --backend NAME    invariant (default) or eigen\n"
    "  --format FORMAT   json (default) or text\n"
    "  --threads N       worker threads (default: MINIINFER_THREADS, else the cores); same bytes\n"
    "  --window W, --sinks S: the sliding window's mask (minigpt generate --help)\n"
    "  --kv-quant FORMAT, --kv-residual R: K and V rounded as the quantized cache stores them\n"
    "                    (minigpt generate --help)";

std::string fault_list() {
  std::string out;
  for (Fault f : all_faults())
    if (f != Fault::None) out += fmt::format("                         {:<18} {}\n", to_string(f), describe(f));
  return out;
}

// Runs `parse`, prefixing its Error with the flag it read.
template <typename F>
auto named(const char* flag, F&& parse) {
  try {
    return parse();
  } catch (const Error& e) {
    fail("flag --{}: {}", flag, e.what());
  }
}

std::string format_flag(const Args& args, const char* fallback) {
  const std::string format = args.get("format", fallback);
  if (format != "text" && format != "json") fail("flag --format: '{}' is neither text nor json", format);
  return format;
}

struct Loaded {
  Model model;
  Tokenizer tokenizer;
  std::vector<int> prompt;
};

Loaded load(const Args& args) {
  const std::string path = args.get("model", default_model_path());
  Model model = read_model(path);
  Tokenizer tokenizer(model.vocab);
  const std::string text = args.require("prompt");
  std::vector<int> prompt;
  try {
    prompt = tokenizer.encode(text);
  } catch (const Error& e) {
    fail("flag --prompt: {}", e.what());
  }
  if (prompt.empty()) fail("flag --prompt: no words to condition on");
  return {std::move(model), std::move(tokenizer), std::move(prompt)};
}

std::string json_ints(const std::vector<int>& ids) { return fmt::format("[{}]", fmt::join(ids, ", ")); }

// Shortest text that reads back to the same float (fmt's "{}" of a float).
std::string json_floats(std::span<const float> xs, int position) {
  std::string out = "[";
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!std::isfinite(xs[i])) fail("logits: non-finite value {} at position {} id {}", xs[i], position, i);
    if (i) out += ", ";
    out += fmt::format("{}", xs[i]);
  }
  return out + "]";
}

// --draft, --draft-len, --draft-model into o.speculative; the draft model is read into `draft`,
// which the caller keeps alive for generate. Every refusal names its flag, before anything runs.
void speculative_flags(const Args& args, const Loaded& in, GenerateOptions& o, std::optional<Model>& draft) {
  if (!args.has("draft")) {
    for (const char* flag : {"draft-len", "draft-model"})
      if (args.has(flag)) fail("flag --{}: needs --draft ngram|model", flag);
    return;
  }
  SpeculativeOptions& s = o.speculative;
  s.drafter = named("draft", [&] { return drafter_from_name(args.get("draft", "none")); });
  s.draft_len = args.get_int("draft-len", 4);
  if (s.draft_len < 1) fail("flag --draft-len: must be >= 1, got {}", s.draft_len);
  const int room = in.model.config.max_seq_len - static_cast<int>(in.prompt.size());
  if (s.draft_len > room)
    fail("flag --draft-len: {} drafts do not fit: the prompt's {} tokens leave room for {} of the model's {} positions",
         s.draft_len, in.prompt.size(), room, in.model.config.max_seq_len);
  if (s.drafter != Drafter::Model) {
    if (args.has("draft-model")) fail("flag --draft-model: only the model drafter reads one (--draft model)");
    return;
  }
  if (!args.has("draft-model")) fail("flag --draft model: needs --draft-model FILE (minigpt draft writes one)");
  draft.emplace(read_model(args.get("draft-model", "")));
  s.draft_model = &*draft;
  check_draft_model(s, in.model.config.vocab_size, &in.model.vocab, {in.prompt}, o.max_new_tokens);
}

int run_generate(const std::vector<std::string>& argv) {
  const Args args(argv,
                  {"model", "prompt", "max-new-tokens", "seed", "temperature", "top-k", "top-p", "backend", "inject",
                   "format", "kv-cache", "block-size", "pool-blocks", "threads", "window", "sinks", "draft",
                   "draft-len", "draft-model", "kv-quant", "kv-residual"},
                  {"no-cache"});
  const std::string format = format_flag(args, "text");
  GenerateOptions o;
  o.max_new_tokens = args.get_int("max-new-tokens", 64);
  if (o.max_new_tokens < 0) fail("flag --max-new-tokens: must be >= 0, got {}", o.max_new_tokens);
  o.seed = args.get_u64("seed", 0);
  o.cache = !args.has("no-cache");
  o.temperature = static_cast<float>(args.get_double("temperature", 0.0));
  o.top_k = args.get_int("top-k", 0);
  o.top_p = static_cast<float>(args.get_double("top-p", 1.0));
  o.backend = named("backend", [&] { return backend_from_name(args.get("backend", "invariant")); });
  o.fault = named("inject", [&] { return fault_from_name(args.get("inject", "none")); });
  const CacheFlags cache = cache_flags(args);
  o.layout = cache.layout;
  o.paged = cache.paged;
  o.threads = threads_flag(args);
  const WindowFlags window = window_flags(args);
  o.window = window.window;
  o.sinks = window.sinks;
  const QuantFlags quant = quant_flags(args, cache.layout);
  o.kv_quant = quant.format;
  o.kv_residual = quant.residual;
  validate(SamplerOptions{o.temperature, o.top_k, o.top_p});
  const Loaded in = load(args);
  std::optional<Model> draft;
  speculative_flags(args, in, o, draft);
  const GenerateResult result = generate(in.model, {in.prompt}, o);
  const std::vector<int>& tokens = result.tokens[0];
  const std::string text = in.tokenizer.decode(tokens);
  const SpeculativeStats& st = result.speculative;
  const bool speculative = o.speculative.drafter != Drafter::None;
  if (format == "json") {
    const std::string spec = speculative ? fmt::format(", \"speculative\": {{\"drafter\": \"{}\", \"draft_len\": {}, "
                                                       "\"verify_calls\": {}, \"drafted\": {}, \"accepted\": {}}}",
                                                       to_string(o.speculative.drafter), o.speculative.draft_len,
                                                       st.rounds, st.drafted, st.accepted)
                                         : "";
    std::printf("{\"prompt_tokens\": %s, \"tokens\": %s, \"text\": %s%s}\n", json_ints(in.prompt).c_str(),
                json_ints(tokens).c_str(), nlohmann::json(text).dump().c_str(), spec.c_str());
  } else {
    std::printf("%s %s\n", in.tokenizer.decode(in.prompt).c_str(), text.c_str());
    if (speculative)
      std::printf("speculative: %s drafter, draft length %d: %lld of %lld drafts accepted (%.1f%%), %lld verify calls\n",
                  to_string(o.speculative.drafter), o.speculative.draft_len, st.accepted, st.drafted,
                  100.0 * st.acceptance(), st.rounds);
  }
  return kExitOk;
}

int run_logits(const std::vector<std::string>& argv) {
  const Args args(argv, {"model", "prompt", "backend", "format", "threads", "window", "sinks", "kv-quant", "kv-residual"},
                  {"all-positions"});
  const std::string format = format_flag(args, "json");
  const bool all = args.has("all-positions");
  const Backend backend = named("backend", [&] { return backend_from_name(args.get("backend", "invariant")); });
  const int threads = threads_flag(args);
  const WindowFlags window = window_flags(args);
  const QuantFlags quant = quant_flags(args);
  const Loaded in = load(args);
  const Config& c = in.model.config;
  if (static_cast<int>(in.prompt.size()) > c.max_seq_len)
    fail("flag --prompt: {} tokens exceed the model's max_seq_len {}", in.prompt.size(), c.max_seq_len);
  EngineOptions eo{backend, 1, 0, Fault::None, KvLayout::Contiguous, {}, threads};
  eo.window = window.window;
  eo.sinks = window.sinks;
  eo.kv_quant = quant.format;
  eo.kv_residual = quant.residual;
  Engine engine(in.model, eo);
  const std::vector<float> logits = engine.forward_uncached(in.prompt, all);
  const size_t V = static_cast<size_t>(c.vocab_size);
  const int rows = all ? static_cast<int>(in.prompt.size()) : 1;
  const int first_pos = static_cast<int>(in.prompt.size()) - rows;
  if (format == "json") {
    std::string body;
    for (int r = 0; r < rows; ++r)
      body += (r ? ", " : "") + json_floats(std::span(logits).subspan(r * V, V), first_pos + r);
    std::printf("{\"tokens\": %s, \"logits\": %s}\n", json_ints(in.prompt).c_str(),
                all ? ("[" + body + "]").c_str() : body.c_str());
    return kExitOk;
  }
  for (int r = 0; r < rows; ++r) {
    const int pos = first_pos + r;
    std::vector<int> order(V);
    for (size_t i = 0; i < V; ++i) order[i] = static_cast<int>(i);
    const float* row = logits.data() + static_cast<size_t>(r) * V;
    const size_t top = std::min<size_t>(5, V);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(),
                      [&](int a, int b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    std::string line = fmt::format("{:>4} {:<12}", pos, in.tokenizer.token(in.prompt[static_cast<size_t>(pos)]));
    for (size_t i = 0; i < top; ++i) line += fmt::format("  {} {}", in.tokenizer.token(order[i]), row[order[i]]);
    std::printf("%s\n", line.c_str());
  }
  return kExitOk;
}

const std::string& generate_usage() {
  static const std::string usage = fmt::format(fmt::runtime(kGenerateUsage), fmt::arg("faults", fault_list()),
                                                 fmt::arg("cache_flags", kCacheFlagsHelp),
                                                 fmt::arg("threads_flag", kThreadsFlagHelp),
                                                 fmt::arg("window_flags", kWindowFlagsHelp),
                                                 fmt::arg("quant_flags", kQuantFlagsHelp));
  return usage;
}

}  // namespace

MINIGPT_COMMAND("generate", "continue a prompt, with or without the KV cache (--prompt TEXT)", generate_usage(),
                run_generate);
MINIGPT_COMMAND("logits", "print the exact logits of a prompt as JSON (--prompt TEXT)", kLogitsUsage, run_logits);

}  // namespace miniinfer::cli
