// p13: a prefix hit equals a prefix miss. Prompt A on sequence 0, then prompt B, which shares at
// least one reuse block with A, on sequence 1: B must reuse A's blocks (a case whose hit never
// happened is a failure, not a pass), and B's logits and cache rows must equal B submitted on a
// clean engine (a miss) and full recompute of B. Needs Capability PrefixCache (--kv-cache paged).
#include "props/case_property.h"
#include "props/level.h"
#include "props/verdict.h"

namespace miniinfer::props {
namespace {

// prompts = {A, B}; B = A's first `shared` tokens and a tail of its own.
struct PrefixCase : CaseCore {};

// What one run of the case saw.
struct PrefixRun {
  Submitted a, hit, miss;
  std::vector<float> recompute;  // B's last logits, full recompute
  int shared = 0;                // tokens B shares with A
};

// B's last logits compared with the next token each would give (greedy): at the tokens level
// two rows agree when that token does, so the level has something to compare (compare_logits
// alone draws no tokens, and every pair would read "tokens equal").
Closeness next_tokens(const std::vector<float>& a, const std::vector<float>& b, int V) {
  const auto greedy = [V](const std::vector<float>& l) {
    return std::vector<int>{static_cast<int>(std::max_element(l.begin(), l.begin() + V) - l.begin())};
  };
  return compare_runs(greedy(a), greedy(b), a, b, V);
}

int shared_prefix(const std::vector<int>& a, const std::vector<int>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return static_cast<int>(n);
}

PrefixRun run_prefix(EngineUnderTest& e, const PrefixCase& c) {
  PrefixRun r;
  const auto& a = c.prompts[0];
  const auto& b = c.prompts[1];
  r.shared = shared_prefix(a, b);
  r.a = e.submit(0, a);
  r.hit = e.submit(1, b);
  return r;
}

// The miss and full recompute, on a clean engine.
void run_miss(EngineUnderTest& e, const PrefixCase& c, PrefixRun& r) {
  e.clean_slate();
  r.miss = e.submit(1, c.prompts[1]);
  r.recompute = e.forward_uncached(c.prompts[1], false);
}

class P13 final : public CaseProperty<PrefixCase> {
 public:
  P13()
      : CaseProperty({"p13", "a prefix hit equals a prefix miss: B after A reuses A's blocks and gives full recompute's bytes",
                      50, {Capability::PrefixCache}}) {}

  PrefixCase draw() const override {
    const int block = context().subject->prefix_block();
    // A: grammatical sentences one after another, cycled to at least one block (plus a few
    // tokens that shrink away), so that A fills a block whatever the sentences shrink to.
    const auto sentences = *rc::gen::container<std::vector<gen::Prompt>>(
        static_cast<size_t>(*rc::gen::inRange(1, 4)), gen::genPrompt());
    std::vector<int> words;
    for (const auto& p : sentences) {
      const auto ids = ids_of(p);
      words.insert(words.end(), ids.begin(), ids.end());
    }
    tag(sentences.front());
    const int blocks = *rc::gen::inRange(1, 4);
    const int len_a = std::max(static_cast<int>(words.size()), blocks * block + *rc::gen::inRange(0, block));
    std::vector<int> a;
    for (int i = 0; i < len_a; ++i) a.push_back(words[static_cast<size_t>(i) % words.size()]);
    // B: A's first `shared` tokens, then tokens of its own. Shared: whole blocks; or all but the
    // last token of a block, so that B parts from A on a block's last token (a prefix key must
    // cover it: B may reuse only the blocks before); or a block and part of the next.
    const int mode = *rc::gen::inRange(0, 3);
    const int whole = block * *rc::gen::inRange(1, len_a / block + 1);
    int shared = whole;
    if (mode == 1 && whole >= 2 * block) shared = whole - 1;
    if (mode == 2) shared = block + *rc::gen::inRange(0, len_a - block + 1);
    std::vector<int> b(a.begin(), a.begin() + shared);
    auto tail = ids_of(*gen::genPartialPrompt());
    // B's own tokens start with one that is not A's next, so B shares exactly `shared` tokens.
    for (size_t r = 0; r < tail.size() && shared < len_a && tail[0] == a[static_cast<size_t>(shared)]; ++r)
      std::rotate(tail.begin(), tail.begin() + 1, tail.end());
    const int min_tail = mode == 1 ? 2 : 1;  // past the block it parts in, to ask for it
    const int n_tail = *rc::gen::inRange(min_tail, std::max(min_tail, static_cast<int>(tail.size())) + 1);
    for (int i = 0; i < n_tail; ++i) b.push_back(tail[static_cast<size_t>(i) % tail.size()]);
    RC_TAG(shared % block == 0               ? "shares whole blocks"
           : (shared + 1) % block == 0 ? "parts on a block's last token"
                                             : "shares part of a block too");
    RC_TAG(shared / block >= 2 ? "2+ blocks" : "1 block");
    PrefixCase c;
    c.prompts = {a, b};
    return c;
  }

  std::optional<std::string> check(EngineUnderTest& e, PrefixCase& c) const override {
    const int block = e.prefix_block();
    const int V = e.vocab_size();
    c.seq = 1;
    PrefixRun r = run_prefix(e, c);
    const auto& b = c.prompts[1];
    // The most B may reuse: its whole blocks within the shared tokens, leaving its last token.
    const int most = std::min(r.shared, static_cast<int>(b.size()) - 1) / block * block;
    if (r.a.reused != 0) return fmt::format("A reused {} tokens on a clean engine", r.a.reused);
    if (r.hit.reused <= 0)
      return fmt::format("the prefix cache did not hit: B shares {} tokens ({} whole blocks of {}) with A, reused 0",
                         r.shared, most / block, block);
    if (r.hit.reused % block != 0 || r.hit.reused > most)
      return fmt::format("B reused {} tokens; it shares {} with A, so at most {} in whole blocks of {}", r.hit.reused,
                         r.shared, most, block);
    if (e.has(Capability::KvRows))
      if (auto why = check_slots(e, 1, b)) return "after the hit, " + *why;
    run_miss(e, c, r);
    if (r.miss.reused != 0) return fmt::format("B on a clean engine reused {} tokens", r.miss.reused);
    if (auto f = judge("B's logits, hit vs miss", next_tokens(r.hit.logits, r.miss.logits, V), V, &r.hit.logits,
                       &r.miss.logits))
      return f;
    if (auto f = judge("B's logits, hit vs full recompute", next_tokens(r.hit.logits, r.recompute, V), V,
                       &r.hit.logits, &r.recompute))
      return f;
    return judge("B's logits, miss vs full recompute", next_tokens(r.miss.logits, r.recompute, V), V,
                 &r.miss.logits, &r.recompute);
  }

  std::vector<Scenario> scenarios(const PrefixCase&) const override { return {}; }

  std::string details(const PrefixCase& c) const override {
    return fmt::format(" sharing {} tokens", shared_prefix(c.prompts[0], c.prompts[1]));
  }
  PrefixCase read(const CaseFields& f) const override {
    if (f.core.prompts.size() != 2) fail("case: p13 needs two prompts (A, then B), got {}", f.core.prompts.size());
    PrefixCase c;
    static_cast<CaseCore&>(c) = f.core;
    return c;
  }

  // The report: what B reused, and where the hit's cache rows part from full recompute (the
  // block, its physical block and who shares it); then the logits at every level.
  Failure report(const PrefixCase& c, const std::string& headline) const override {
    EngineUnderTest& e = *context().subject;
    const Tokenizer& tok = *context().tokenizer;
    Failure f;
    f.property = id();
    f.headline = headline;
    const int block = e.prefix_block();
    std::string text = fmt::format("  {}\n  A (sequence 0): \"{}\" ({} tokens)\n  B (sequence 1): \"{}\" ({} tokens, "
                                   "the first {} shared with A; blocks of {})\n",
                                   headline, tok.decode(c.prompts[0]), c.prompts[0].size(), tok.decode(c.prompts[1]),
                                   c.prompts[1].size(), shared_prefix(c.prompts[0], c.prompts[1]), block);
    nlohmann::json j = {{"property", id()}, {"headline", headline}, {"block_size", block}};
    e.clean_slate();
    PrefixRun r;
    try {
      r = run_prefix(e, c);
    } catch (const std::exception& err) {
      f.text = text + fmt::format("  the run stopped: {}\n", err.what());
      f.json = j;
      f.case_json = to_json(c);
      return f;
    }
    text += fmt::format("  A reused {} tokens, B reused {}\n", r.a.reused, r.hit.reused);
    j["reused"] = r.hit.reused;
    const auto& b = c.prompts[1];
    std::vector<int> table = e.block_table(1);
    text += "  sequence 1's block table:";
    for (int p : table) text += fmt::format(" {}", p);
    text += table.empty() ? " not shown (an engine over the protocol keeps its blocks to itself)\n" : "\n";
    j["block_table"] = table;
    if (e.has(Capability::KvRows)) {
      const auto held = e.cache_rows(1);
      const auto ref = e.recompute_rows(b);
      const Config& cf = e.config();
      int count = 0;
      for (int s = 0; held && ref && s < std::min(held->T, ref->T); ++s)
        for (int l = 0; l < cf.n_layer; ++l)
          for (int h = 0; h < cf.n_head; ++h) {
            const bool dk = !rows_within(held->k_row(l, h, s), ref->k_row(l, h, s));
            const bool dv = !rows_within(held->v_row(l, h, s), ref->v_row(l, h, s));
            if (!dk && !dv) continue;
            if (count++ == 0) {
              const std::string dtype = value_dtype("cache", e.kv_dtype());
              const Verdict v = classify(dk ? measure(held->k_row(l, h, s), ref->k_row(l, h, s))
                                            : measure(held->v_row(l, h, s), ref->v_row(l, h, s)), dtype);
              text += fmt::format("  first parting: layer {}, head {}, cache {} row at slot {} ({})\n", l, h,
                                  dk ? "K" : "V", s, where_slot(e, 1, s)) + verdict_line(v, dtype, l, "cache");
              j["first_parting"] = {{"layer", l}, {"head", h}, {"component", "cache"}, {"slot", s},
                                    {"where", where_slot_json(e, 1, s)}};
              j["verdict"] = verdict_word(v);
            }
          }
      text += count ? fmt::format("  {} (layer, head, slot) rows of B differ from full recompute\n", count)
                    : std::string("  every cache row of B equals full recompute\n");
    }
    run_miss(e, c, r);
    const int V = e.vocab_size();
    text += fmt::format("  B's logits: hit vs miss {}; hit vs full recompute {}; miss reused {}\n",
                        next_tokens(r.hit.logits, r.miss.logits, V).describe(),
                        next_tokens(r.hit.logits, r.recompute, V).describe(), r.miss.reused);
    if (j.contains("first_parting")) {
      j["cause"] = "forward";
    } else if (r.hit.logits.size() == r.miss.logits.size() && !r.hit.logits.empty()) {
      // An engine that shows no K/V rows: the parting is in the logits of B's computed rest, the
      // forward pass after the hit; no layer can be named without them. The verdict is measured
      // on those logits.
      const Measured m = measure(r.hit.logits, r.miss.logits);
      const Verdict v = classify(m, "f32");
      text += fmt::format("  cause: the forward pass of B's tokens after the {} reused (this engine shows no K/V "
                          "rows, so no layer or slot is named): B's last logits, hit vs miss, max |d| {:.3g}\n",
                          r.hit.reused, m.max_abs) +
              verdict_line(v, "f32", -1, "logits after the prefix hit");
      j["cause"] = "forward";
      j["first_parting"] = {{"layer", -1}, {"head", -1}, {"component", "logits"}, {"position", static_cast<int>(b.size()) - 1},
                            {"max_abs", m.max_abs}, {"max_ulp", m.max_ulp}};
      j["verdict"] = verdict_word(v);
    }
    f.text = text;
    f.json = j;
    f.case_json = to_json(c);
    f.located = j.contains("first_parting");
    return f;
  }
};

}  // namespace

const Property& p13() {
  static const P13 property;
  return property;
}

}  // namespace miniinfer::props
