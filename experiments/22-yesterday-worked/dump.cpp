// dump: lab 02's flagship slot-level dump. Path A prefills "Yesterday I" with the cache (one
// pass, q_len 2), picks the next token greedily and decodes it (q_len 1, which writes slot 2);
// path B runs one full recompute over "Yesterday I <token>" (3 rows). The K and V rows of every
// (layer, head) are compared byte for byte, slots 0 and 1 (the lab's assertion) and slot 2.
// Writes slots.npz, report.md and manifest.json; exits non-zero if any byte differs.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/npy.h"
#include "base/sha256.h"
#include "corpus/tokenizer.h"
#include "engine/engine.h"
#include "engine/sampling.h"
#include "lab_common.h"
#include "model/model_file.h"

namespace {

using namespace miniinfer;
using lab::Json;

constexpr const char* kPrompt = "Yesterday I";
constexpr int kSlots = 3;  // 0 "Yesterday", 1 "I", 2 the decoded token

constexpr const char* kHelp =
    R"(dump: the "Yesterday I" cache slots, cached path against full recompute, byte for byte.

usage: dump [--model FILE] [--out DIR] [--inject FAULT]

Path A prefills "Yesterday I" (cached, q_len 2), takes the greedy next token and decodes it
(q_len 1: slot 2). Path B runs the uncached forward over "Yesterday I <token>". Compares the
K and V rows of slots 0, 1 and 2 for every layer and head and writes slots.npz (numpy.load
reads it), report.md and manifest.json.

  --model FILE    model file (default: experiments/17-minigpt/minigpt.safetensors)
  --out DIR       where the files go (default: this experiment's folder; with --inject,
                  nothing is written unless --out is given)
  --inject FAULT  run path A with a fault from the catalogue; the dump shows what it does to
                  the slots (decode-only faults show in slot 2 only)
  --help          this text

Exit status: 0 when every byte matches, 1 when any differs, 2 on a usage or input error.
)";

// K and V rows of both paths, each (L, H, kSlots, d_head), plus what path A decided.
struct Slots {
  std::vector<int> tokens;  // the 3 ids
  std::vector<float> a_k, a_v, b_k, b_v;
  bool logits_agree = false;  // A's prefill logits == B's row-1 logits, bytewise
};

size_t at(const Config& c, int l, int h, int s) {
  return ((static_cast<size_t>(l) * c.n_head + h) * kSlots + s) * static_cast<size_t>(c.d_head());
}

Slots run_paths(const Model& model, const std::vector<int>& prompt, Fault fault) {
  const Config& c = model.config;
  const size_t V = static_cast<size_t>(c.vocab_size), d = static_cast<size_t>(c.d_head());
  Slots out;
  // Thread counts pinned, so the files do not depend on the machine's cores: the cached path on
  // 2 threads (where a thread-count fault such as split-k acts), full recompute on 1.
  Engine a(model, {Backend::Invariant, 1, 0, fault, KvLayout::Contiguous, {}, 2});
  const std::vector<float> prefill = a.forward_cached(0, prompt);  // slots 0 and 1, one pass
  const int token = sample(prefill, SamplerOptions{}, 0.0f);       // greedy, ties to the lowest id
  a.forward_cached(0, std::vector<int>{token});                    // the decode step writes slot 2
  out.tokens = prompt;
  out.tokens.push_back(token);

  Engine b(model, {Backend::Invariant, 1, 0, Fault::None, KvLayout::Contiguous, {}, 1});
  KvRows kv;
  const std::vector<float> full = b.forward_uncached(out.tokens, true, &kv);
  out.logits_agree = !lab::first_byte_difference(prefill, std::span(full).subspan(V, V));

  const size_t n = static_cast<size_t>(c.n_layer) * c.n_head * kSlots * d;
  for (auto* v : {&out.a_k, &out.a_v, &out.b_k, &out.b_v}) v->resize(n);
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h)
      for (int s = 0; s < kSlots; ++s) {
        // Straight from the slab: a faulty decode may leave the cursor short of slot 2.
        const size_t slab = static_cast<size_t>(s) * c.d_model + static_cast<size_t>(h) * d;
        std::memcpy(&out.a_k[at(c, l, h, s)], a.cache().k_slab(l, 0) + slab, d * sizeof(float));
        std::memcpy(&out.a_v[at(c, l, h, s)], a.cache().v_slab(l, 0) + slab, d * sizeof(float));
        std::memcpy(&out.b_k[at(c, l, h, s)], kv.k_row(l, h, s).data(), d * sizeof(float));
        std::memcpy(&out.b_v[at(c, l, h, s)], kv.v_row(l, h, s).data(), d * sizeof(float));
      }
  return out;
}

struct Cell {
  const char* tensor;  // "K" or "V"
  int slot;
};
constexpr Cell kCells[] = {{"K", 0}, {"K", 1}, {"V", 0}, {"V", 1}, {"K", 2}, {"V", 2}};

lab::ByteDiff compare(const Config& c, const Slots& s, int l, int h, const Cell& cell) {
  const size_t d = static_cast<size_t>(c.d_head()), i = at(c, l, h, cell.slot);
  const bool k = cell.tensor[0] == 'K';
  const std::span<const float> a((k ? s.a_k : s.a_v).data() + i, d), b((k ? s.b_k : s.b_v).data() + i, d);
  return lab::compare_floats(a, b);
}

struct Verdict {
  int rows_differing_prefill = 0;  // slots 0 and 1
  int rows_differing_decode = 0;   // slot 2
  int64_t bytes_differing = 0;
  uint64_t max_ulp = 0;
  std::string first;  // "K layer 1 head 2 slot 2", or empty
  bool pass(const Slots& s) const {
    return rows_differing_prefill + rows_differing_decode == 0 && s.logits_agree;
  }
};

Verdict judge(const Config& c, const Slots& s) {
  Verdict v;
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h)
      for (const Cell& cell : kCells) {
        const lab::ByteDiff d = compare(c, s, l, h, cell);
        if (d.identical()) continue;
        (cell.slot < 2 ? v.rows_differing_prefill : v.rows_differing_decode) += 1;
        v.bytes_differing += d.differing_bytes;
        v.max_ulp = std::max(v.max_ulp, d.max_ulp);
        if (v.first.empty())
          v.first = fmt::format("{} layer {} head {} slot {}", cell.tensor, l, h, cell.slot);
      }
  return v;
}

std::string cell_text(const lab::ByteDiff& d) {
  if (d.identical()) return "identical";
  const std::string ulp = d.max_ulp == UINT64_MAX ? "NaN" : std::to_string(d.max_ulp);
  return fmt::format("**{} bytes differ, max {} ULP**", d.differing_bytes, ulp);
}

// Slots [first, first + count) of an (L, H, kSlots, d) buffer, as (L, H, count, d).
std::vector<float> slot_range(const Config& c, const std::vector<float>& x, int first, int count) {
  const size_t d = static_cast<size_t>(c.d_head());
  std::vector<float> out;
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h)
      out.insert(out.end(), x.begin() + static_cast<std::ptrdiff_t>(at(c, l, h, first)),
                 x.begin() + static_cast<std::ptrdiff_t>(at(c, l, h, first) + count * d));
  return out;
}

NpzEntries npz_entries(const Config& c, const Slots& s, const std::string& word) {
  const int64_t L = c.n_layer, H = c.n_head, d = c.d_head();
  NpzEntries e;
  const std::pair<const char*, const std::vector<float>*> arrays[] = {
      {"A_K", &s.a_k}, {"A_V", &s.a_v}, {"B_K", &s.b_k}, {"B_V", &s.b_v}};
  for (const auto& [name, x] : arrays) e.emplace_back(name, npy_array({L, H, 2, d}, slot_range(c, *x, 0, 2)));
  for (const auto& [name, x] : arrays)
    e.emplace_back(std::string(name) + "_slot2", npy_array({L, H, 1, d}, slot_range(c, *x, 2, 1)));
  const std::vector<int32_t> ids(s.tokens.begin(), s.tokens.end());
  e.emplace_back("tokens", npy_array({static_cast<int64_t>(ids.size())}, std::span<const int32_t>(ids)));
  const std::vector<uint8_t> bytes(word.begin(), word.end());
  e.emplace_back("word", npy_array({static_cast<int64_t>(bytes.size())}, std::span<const uint8_t>(bytes)));
  return e;
}

struct Sweep {
  Fault fault;
  Verdict verdict;
};

std::string report(const Config& c, const Slots& s, const Verdict& v, const std::string& model_file,
                   const std::string& sha, const std::string& word, Fault fault,
                   const std::vector<Sweep>& sweep) {
  std::string r;
  auto line = [&r](const std::string& text = "") { r += text + "\n"; };
  line("# 22-yesterday-worked: the \"Yesterday I\" cache slots, byte for byte");
  line();
  line("Written by `dump` (dump.cpp in this folder); regenerate with `scripts/regen-experiments`.");
  line();
  line(fmt::format("- Model: `{}` (sha256 `{}`), {} layers, {} heads, d_head {}.", model_file, sha, c.n_layer,
                   c.n_head, c.d_head()));
  line(fmt::format(
      "- Path A (cached): prefill \"Yesterday I\" (ids {}, {}; one pass, q_len 2), which writes slots 0 "
      "and 1; the greedy next token (temperature 0, ties to the lowest id) is **\"{}\"** (id {}); one "
      "decode step (q_len 1) feeds it and writes slot 2.",
      s.tokens[0], s.tokens[1], word, s.tokens[2]));
  line(fmt::format(
      "- Path B (uncached): one forward over \"Yesterday I {}\" (3 rows, positions 0-2), keeping the K "
      "(after RoPE) and V rows it computes.",
      word));
  if (fault != Fault::None)
    line(fmt::format("- **Injected fault: `{}`** ({}), on path A only.", to_string(fault), describe(fault)));
  line(fmt::format(
      "- Path A's prefill logits and path B's logits at position 1 are {}.",
      s.logits_agree ? "byte-identical (both paths choose the same token)" : "**not** byte-identical"));
  line();
  const bool prefill_ok = v.rows_differing_prefill == 0, decode_ok = v.rows_differing_decode == 0;
  line(fmt::format(
      "**Assertion (the lab's): every byte of path A's K and V rows for slots 0 and 1 equals path B's, "
      "for every layer and head: {}.**",
      prefill_ok ? "holds" : fmt::format("FAILS ({} rows differ)", v.rows_differing_prefill)));
  line(fmt::format(
      "**Extra (the decode step): slot 2, written by the decode step, equals path B's position 2: {}.**",
      decode_ok ? "holds" : fmt::format("FAILS ({} rows differ)", v.rows_differing_decode)));
  line();
  line("| layer | head | K slot 0 | K slot 1 | V slot 0 | V slot 1 | K slot 2 | V slot 2 |");
  line("| ---: | ---: | --- | --- | --- | --- | --- | --- |");
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h) {
      std::string row = fmt::format("| {} | {} |", l, h);
      for (const Cell& cell : kCells) row += " " + cell_text(compare(c, s, l, h, cell)) + " |";
      line(row);
    }
  line();
  line(fmt::format(
      "Each cell compares {} floats ({} bytes). \"identical\" means every byte is equal; otherwise the "
      "cell gives the number of differing bytes and the largest distance in units in the last place.",
      c.d_head(), 4 * c.d_head()));
  line();
  line("## What a differing byte would point to");
  line();
  line(
      "- **K differs at slot 0 or 1, V identical**: only K is rotated, so the position fed to RoPE differs "
      "between the paths (a RoPE phase leak: wrong position, or a rotation table computed differently).");
  line(
      "- **K and V differ already in layer 0 at slot 0 or 1**: the row itself was computed differently — "
      "LayerNorm "
      "applied in another order or with another reduction, or a projection whose result depends on how many "
      "rows "
      "were computed together (a library GEMM: see docs/invariance.md).");
  line(
      "- **Layer 0 identical, a later layer differs**: the residual stream entering that layer differs, so "
      "the "
      "cause is in an earlier layer's attention or MLP (mask, softmax scale, a layer reading another layer's "
      "cache).");
  line(
      "- **Only slot 2 differs**: a decode-step bug — a cursor off by one (K/V written to the wrong slot), "
      "the "
      "decode step's RoPE phase, its mask or softmax scale, or a decode-only product. Slots 0 and 1 come "
      "from the "
      "prefill, which is one pass on an empty cache, so decode bugs cannot show there.");
  line("- **Only the last layer's V at slot 2**: a stale write (the decode step skipped a cache write).");
  line();
  line("## Which faults this dump can see");
  line();
  line(
      "Every fault of the engine's catalogue (`src/engine/faults.h`), injected into path A, with the rows "
      "that "
      "then differ. Faults that need a second sequence, a second call on the same engine or a resume cannot "
      "show "
      "in a single prefill-and-decode; property_test (../22-cache-correctness) checks those.");
  line();
  line("| fault | slots 0-1 rows differing | slot 2 rows differing | first difference |");
  line("| --- | ---: | ---: | --- |");
  for (const Sweep& w : sweep)
    line(fmt::format("| `{}` | {} | {} | {} |", to_string(w.fault), w.verdict.rows_differing_prefill,
                     w.verdict.rows_differing_decode,
                     w.verdict.first.empty()
                         ? (w.fault == Fault::None ? "none (the control)" : "none: invisible here")
                         : w.verdict.first));
  line();
  line("## Files");
  line();
  line(fmt::format("`slots.npz` (`numpy.load`), L = {}, H = {}, d_head = {}:", c.n_layer, c.n_head,
                   c.d_head()));
  line();
  line("| name | dtype | shape | content |");
  line("| --- | --- | --- | --- |");
  line(
      "| `A_K`, `A_V` | float32 | [L, H, 2, d_head] | path A's cache rows, slots 0 and 1, read after the "
      "decode step |");
  line("| `B_K`, `B_V` | float32 | [L, H, 2, d_head] | path B's K and V rows, positions 0 and 1 |");
  line(
      "| `A_K_slot2`, `A_V_slot2` | float32 | [L, H, 1, d_head] | path A's slot 2, written by the decode "
      "step |");
  line("| `B_K_slot2`, `B_V_slot2` | float32 | [L, H, 1, d_head] | path B's position 2 |");
  line("| `tokens` | int32 | [3] | the ids of \"Yesterday\", \"I\" and the decoded token |");
  line("| `word` | uint8 | [n] | the decoded word, UTF-8 |");
  line();
  line(
      "K rows are after RoPE, as the cache stores them. `manifest.json` records the model, the versions, the "
      "decoded word and the summary counts.");
  return r;
}

int run(int argc, char** argv) {
  const lab::Flags flags(argc, argv, {"model", "out", "inject"}, {"help"});
  if (flags.has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Fault fault = fault_from_name(flags.get("inject", "none"));
  const bool write = fault == Fault::None || flags.has("out");
  const std::string out_dir = flags.get("out", lab::experiment_dir("22-yesterday-worked"));
  const std::string model_path = flags.get("model", lab::default_model_path());
  const Model model = read_model(model_path);
  const Config& c = model.config;
  const std::string sha = file_sha256(model_path);
  const Tokenizer tokenizer(model.vocab);
  const std::vector<int> prompt = tokenizer.encode(kPrompt);

  const Slots slots = run_paths(model, prompt, fault);
  const Verdict verdict = judge(c, slots);
  const std::string word = tokenizer.token(slots.tokens[2]);
  std::vector<Sweep> sweep;
  // The paged, quantized and sliding-window caches' faults have nothing to act on in this
  // experiment's contiguous float32 cache, nor have speculative decoding's (it never verifies).
  for (Fault f : all_faults())
    if (!acts_on_paged(f) && !acts_on_quantized(f) && !acts_on_window(f) && !acts_on_speculation(f)) sweep.push_back({f, judge(c, run_paths(model, prompt, f))});

  std::printf("dump: model %s, \"Yesterday I\" -> \"%s\" (id %d), fault %s\n",
              lab::display_path(model_path).c_str(), word.c_str(), slots.tokens[2], to_string(fault));
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h) {
      std::string row = fmt::format("layer {} head {}:", l, h);
      for (const Cell& cell : kCells)
        row += fmt::format("  {} slot {} {}", cell.tensor, cell.slot,
                           compare(c, slots, l, h, cell).identical() ? "identical" : "DIFFERS");
      std::printf("%s\n", row.c_str());
    }

  const NpzEntries entries = npz_entries(c, slots, word);
  const std::string npz = npz_bytes(entries);
  Json summary;
  summary["rows_compared"] = c.n_layer * c.n_head * 6;
  summary["rows_differing_slots_0_1"] = verdict.rows_differing_prefill;
  summary["rows_differing_slot_2"] = verdict.rows_differing_decode;
  summary["bytes_differing"] = verdict.bytes_differing;
  summary["max_ulp"] = verdict.max_ulp;
  summary["first_difference"] = verdict.first.empty() ? Json(nullptr) : Json(verdict.first);
  summary["slots_0_1_identical"] = verdict.rows_differing_prefill == 0;
  summary["slot_2_identical"] = verdict.rows_differing_decode == 0;
  summary["prefill_logits_equal_recompute"] = slots.logits_agree;
  Json visibility = Json::object();
  for (const Sweep& w : sweep)
    visibility[to_string(w.fault)] = Json{{"rows_differing_slots_0_1", w.verdict.rows_differing_prefill},
                                          {"rows_differing_slot_2", w.verdict.rows_differing_decode}};

  Json manifest;
  manifest["experiment"] = "22-yesterday-worked";
  manifest["date"] = lab::today_utc();
  manifest["prompt"] = kPrompt;
  manifest["prompt_ids"] = prompt;
  manifest["decoding"] = "greedy: temperature 0, ties to the lowest id (no random numbers are drawn)";
  manifest["decoded_token_id"] = slots.tokens[2];
  manifest["decoded_word"] = word;
  manifest["versions"] = lab::versions();
  manifest["config"] = Json{{"model", "miniGPT-phase17"},
                            {"model_file", lab::display_path(model_path)},
                            {"model_sha256", sha},
                            {"model_config",
                             {{"vocab_size", c.vocab_size},
                              {"d_model", c.d_model},
                              {"n_layer", c.n_layer},
                              {"n_head", c.n_head},
                              {"d_head", c.d_head()},
                              {"d_ff", c.d_ff}}},
                            {"backend", "invariant"},
                            {"fault", to_string(fault)},
                            {"slots", {0, 1, 2}}};
  manifest["results_summary"] = summary;
  manifest["fault_visibility"] = visibility;
  manifest["files"] = Json{{"slots.npz",
                            {{"sha256", sha256_hex(npz)},
                             {"arrays",
                              {"A_K", "A_V", "B_K", "B_V", "A_K_slot2", "A_V_slot2", "B_K_slot2", "B_V_slot2",
                               "tokens", "word"}}}}};
  manifest["wall_time_seconds"] =
      std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1000.0) /
      1000.0;

  if (write) {
    lab::ensure_dir(out_dir);
    write_file_atomic(out_dir + "/slots.npz", npz);
    write_file_atomic(out_dir + "/report.md",
                      report(c, slots, verdict, lab::display_path(model_path), sha, word, fault, sweep));
    lab::write_json(out_dir + "/manifest.json", manifest);
    std::printf("wrote %s/slots.npz, report.md and manifest.json\n", out_dir.c_str());
  } else {
    std::printf("not writing artifacts: --inject without --out leaves the committed files alone\n");
  }
  const bool pass = verdict.pass(slots);
  std::printf(
      "%s: slots 0-1 %s, slot 2 %s%s\n", pass ? "identical" : "DIFFERENT",
      verdict.rows_differing_prefill ? fmt::format("{} rows differ", verdict.rows_differing_prefill).c_str()
                                     : "identical",
      verdict.rows_differing_decode ? fmt::format("{} rows differ", verdict.rows_differing_decode).c_str()
                                    : "identical",
      verdict.first.empty() ? "" : (" (first: " + verdict.first + ")").c_str());
  return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const miniinfer::Error& e) {
    std::fprintf(stderr, "dump: %s\n", e.what());
    return 2;
  }
}
