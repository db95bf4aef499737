// p16: a sliding-window cache with attention sinks (Capability Window) wraps its ring at every
// offset without parting from full recompute under the same mask. A grammatical prompt cycled
// to wrap the ring several times runs in chunks whose cuts fall at every offset of the ring,
// then decodes through more wraps, then rolls back as far as the ring allows and goes on, then
// forks within the ring's reach: every row's logits against full recompute, and the K/V rows
// the cache still holds against recompute's (docs/sliding-window.md).
#include <algorithm>

#include "props/case_property.h"
#include "props/level.h"

namespace miniinfer::props {
namespace {

struct WindowCase : CaseCore {
  int k = 0;              // tokens decoded after the prompt
  std::vector<int> cuts;  // chunk boundaries of the prompt
};

// The ring's slots after the sinks, from what the engine says of its window.
int ring_of(const EngineUnderTest::WindowInfo& w) { return w.window - w.sinks + w.rollback - 1; }

int greedy(std::span<const float> row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

std::span<const float> last_row(const std::vector<float>& logits, int V) {
  return std::span<const float>(logits).subspan(logits.size() - static_cast<size_t>(V));
}

class P16 final : public CaseProperty<WindowCase> {
 public:
  P16()
      : CaseProperty({"p16", "a sliding-window cache wraps its ring at every offset: prefill chunks, decode, rollback and fork equal full recompute under the same mask",
                      50, {Capability::Window}}) {}

  WindowCase draw() const override {
    const EngineUnderTest& e = *context().subject;
    const auto w = e.window();
    const int ring = ring_of(w);
    // Grammatical sentences one after another, cycled to wrap the ring 1-3 times and stop at
    // any offset of it (plus the rollback's and the fork's room within the capacity).
    const auto sentences = *rc::gen::container<std::vector<gen::Prompt>>(
        static_cast<size_t>(*rc::gen::inRange(1, 3)), gen::genPrompt());
    std::vector<int> words;
    for (const auto& p : sentences) {
      const auto ids = ids_of(p);
      words.insert(words.end(), ids.begin(), ids.end());
    }
    tag(sentences.front());
    const int room = std::max(1, (e.capacity() - 2 * w.rollback - 8) / 2);
    const int wraps = *rc::gen::inRange(1, 4), offset = *rc::gen::inRange(0, ring);
    const int len = std::clamp(w.sinks + wraps * ring + offset, static_cast<int>(words.size()) > room ? room : 1, room);
    WindowCase c;
    c.prompts = {{}};
    for (int i = 0; i < len; ++i) c.prompts[0].push_back(words[static_cast<size_t>(i) % words.size()]);
    // Cuts every `step` tokens from `first`: over several wraps they straddle the wrap at
    // every offset.
    const int first = *rc::gen::inRange(1, ring + 1), step = *rc::gen::inRange(1, ring + 2);
    for (int cut = first; cut < len; cut += step) c.cuts.push_back(cut);
    c.k = *rc::gen::inRange(1, std::max(2, std::min(2 * ring, room) + 1));
    RC_TAG(len >= w.sinks + 2 * ring ? "prompt wraps 2+ times" : len >= w.sinks + ring ? "prompt wraps once" : "no wrap in the prompt");
    RC_TAG(c.cuts.empty() ? "one chunk" : "chunked");
    return c;
  }

  std::optional<std::string> check(EngineUnderTest& e, WindowCase& c) const override;
  std::vector<Scenario> scenarios(const WindowCase&) const override { return {}; }
  // The report: the window, the case and the headline (which names the stage and the row or
  // slot); p6, p7 and p5 trace a window fault's first parting site on their shorter cases.
  Failure report(const WindowCase& c, const std::string& headline) const override {
    const auto w = context().subject->window();
    Failure f;
    f.property = id();
    f.headline = headline;
    f.text = fmt::format("  {}\n  window {} with {} sinks: a ring of {} slots, a rollback may drop {} rows\n"
                         "  the case: {} {}\n",
                         headline, w.window, w.sinks, ring_of(w), w.rollback, id(), line(c));
    f.json = {{"property", id()}, {"headline", headline},
              {"window", {{"window", w.window}, {"sinks", w.sinks}, {"ring", ring_of(w)}, {"rollback", w.rollback}}}};
    f.case_json = to_json(c);
    return f;
  }
  std::string details(const WindowCase& c) const override {
    std::string s = fmt::format(" decode {}", c.k);
    if (!c.cuts.empty()) s += fmt::format(", cut at {}", fmt::join(c.cuts, " "));
    return s;
  }
  void write(const WindowCase& c, CaseFields& f) const override {
    f.k = c.k;
    f.cuts = c.cuts;
  }
  WindowCase read(const CaseFields& f) const override {
    if (f.core.prompts.size() != 1) fail("case: p16 runs one prompt, got {}", f.core.prompts.size());
    return {f.core, f.k, f.cuts};
  }

 private:
  static std::optional<std::string> prefill(EngineUnderTest& e, const WindowCase& c);
  static std::optional<std::string> decode(EngineUnderTest& e, int seq, std::vector<int>& tokens, int steps,
                                           const std::string& what);
};

// The prompt in its chunks, every row against full recompute; then the rows the cache holds.
std::optional<std::string> P16::prefill(EngineUnderTest& e, const WindowCase& c) {
  const auto& prompt = c.prompts[0];
  const int V = e.vocab_size();
  std::vector<int> ends(c.cuts);
  ends.push_back(static_cast<int>(prompt.size()));
  std::vector<float> cached;
  int from = 0;
  for (int end : ends) {
    const auto rows = e.forward_cached(
        0, std::span<const int>(prompt).subspan(static_cast<size_t>(from), static_cast<size_t>(end - from)), true);
    cached.insert(cached.end(), rows.begin(), rows.end());
    from = end;
  }
  const auto ref = e.forward_uncached(prompt, true);
  if (auto f = judge("the prompt in chunks, every row vs full recompute", compare_logits(cached, ref, V), V, &cached, &ref))
    return *f + fmt::format(" (chunk ends at {})", fmt::join(ends, ", "));
  if (e.has(Capability::KvRows))
    if (auto why = check_slots(e, 0, prompt)) return "after the prompt, " + *why;
  return std::nullopt;
}

// `steps` greedy tokens on `seq` one at a time, each row against full recompute of `tokens`.
std::optional<std::string> P16::decode(EngineUnderTest& e, int seq, std::vector<int>& tokens, int steps,
                                       const std::string& what) {
  const int V = e.vocab_size();
  int next = greedy(last_row(e.forward_uncached(tokens), V));
  for (int i = 0; i < steps; ++i) {
    const auto got = e.forward_cached(seq, std::span(&next, 1));
    tokens.push_back(next);
    const auto ref = e.forward_uncached(tokens);
    if (auto f = judge(fmt::format("{}: position {} vs full recompute", what, tokens.size() - 1),
                       compare_logits(got, ref, V), V, &got, &ref))
      return f;
    next = greedy(last_row(got, V));
  }
  if (e.has(Capability::KvRows))
    if (auto why = check_slots(e, seq, tokens)) return what + ": " + *why;
  return std::nullopt;
}

std::optional<std::string> P16::check(EngineUnderTest& e, WindowCase& c) const {
  const auto w = e.window();
  std::vector<int> tokens = c.prompts[0];
  if (auto f = prefill(e, c)) return f;
  const int room = e.capacity() - static_cast<int>(tokens.size());
  if (auto f = decode(e, 0, tokens, std::min(c.k, room - 2 * w.rollback - 4), "decode after the prompt")) return f;
  // As far back as the ring allows, then other tokens in one chunk: every row.
  const int back = std::min(w.rollback, static_cast<int>(tokens.size()) - 1);
  e.truncate(0, static_cast<int>(tokens.size()) - back);
  tokens.resize(tokens.size() - static_cast<size_t>(back));
  std::vector<int> redo(c.prompts[0].begin(), c.prompts[0].begin() + std::min<long>(back + 1, c.prompts[0].size()));
  const auto got = e.forward_cached(0, redo, true);
  tokens.insert(tokens.end(), redo.begin(), redo.end());
  const int V = e.vocab_size();
  const auto all = e.forward_uncached(tokens, true);
  const std::vector<float> ref(all.end() - static_cast<long>(got.size()), all.end());
  if (auto f = judge(fmt::format("{} rows after a rollback of {}, every row vs full recompute", redo.size(), back),
                     compare_logits(got, ref, V), V, &got, &ref))
    return f;
  if (e.has(Capability::KvRows))
    if (auto why = check_slots(e, 0, tokens)) return "after the rollback, " + *why;
  // A fork half the ring's reach back, decoded on: the fork and its source.
  const int keep = static_cast<int>(tokens.size()) - (w.rollback + 1) / 2;
  e.fork(0, 1, keep);
  std::vector<int> forked(tokens.begin(), tokens.begin() + keep);
  if (auto f = decode(e, 1, forked, 3, fmt::format("the fork at {}", keep))) return f;
  if (e.has(Capability::KvRows))
    if (auto why = check_slots(e, 0, tokens)) return "the fork's source, " + *why;
  return std::nullopt;
}

}  // namespace

const Property& p16() {
  static const P16 property;
  return property;
}

}  // namespace miniinfer::props
