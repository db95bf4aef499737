// p5: chunked prefill at any boundaries equals one-shot prefill, in the logits at each chunk's
// end and, where the engine's rows can be read, in the cache bytes; then decoding on.
#include "props/case_property.h"
#include "props/level.h"

namespace miniinfer::props {
namespace {

struct ChunkedCase : CaseCore {
  std::vector<int> cuts;  // chunk boundaries of the prefill
};

class P5 final : public CaseProperty<ChunkedCase> {
 public:
  P5()
      : CaseProperty({"p5", "chunked prefill at any boundaries equals one-shot prefill in logits and cache bytes",
                      100}) {}

  ChunkedCase draw() const override {
    ChunkedCase c;
    const gen::Prompt p = *gen::genMixedTensePrompt();
    tag(p);
    c.prompts = {ids_of(p)};
    c.cuts = *gen::genChunkBoundaries(static_cast<int>(c.prompts[0].size()));
    if (!c.cuts.empty()) RC_TAG("cut");
    c.params = *gen::genRunParams(4);
    return c;
  }
  std::optional<std::string> check(EngineUnderTest& e, ChunkedCase& c) const override;
  std::vector<Scenario> scenarios(const ChunkedCase& c) const override {
    std::vector<Scenario> out = standard_scenarios(c, script(c), c.prompts.size() > 1);
    // Last, as check() runs the script: with the one-shot prefill resident in sequence 1 of the
    // same cache (an engine whose cells are shared may part only then: issue 28).
    Scenario shared = out.front();
    shared.resident = {{1, c.prompts[0]}};
    out.push_back(shared);
    return out;
  }
  std::string unchecked(const EngineUnderTest& e) const override {
    if (e.has(Capability::KvRows)) return "";
    return fmt::format("the cache bytes of chunked and one-shot prefill (engine {} has no {})", e.name(),
                       to_string(Capability::KvRows));
  }
  std::string details(const ChunkedCase& c) const override {
    std::string s = " cut at";
    for (int cut : c.cuts) s += fmt::format(" {}", cut);
    return s;
  }
  void write(const ChunkedCase& c, CaseFields& f) const override { f.cuts = c.cuts; }
  ChunkedCase read(const CaseFields& f) const override { return {f.core, f.cuts}; }

 private:
  static Script script(const ChunkedCase& c) { return chunked_script(c, c.cuts); }
  // The cache rows of sequence 0 (chunked) against sequence 1 (one-shot).
  static std::optional<std::string> check_rows(EngineUnderTest& subject, int n);
};

std::optional<std::string> P5::check(EngineUnderTest& subject, ChunkedCase& c) const {
  // One-shot prefill in sequence 1, chunked prefill in sequence 0, then compare bytes.
  const auto& prompt = c.prompts[0];
  subject.clean_slate();
  const auto one_shot = subject.forward_cached(1, prompt, true);
  int from = 0;
  std::vector<int> ends(c.cuts);
  ends.push_back(static_cast<int>(prompt.size()));
  const size_t V = static_cast<size_t>(subject.vocab_size());
  std::vector<float> chunked, one_shot_ends;
  for (int end : ends) {
    const auto logits = subject.forward_cached(
        0, std::span<const int>(prompt).subspan(static_cast<size_t>(from), static_cast<size_t>(end - from)));
    chunked.insert(chunked.end(), logits.begin(), logits.end());
    const auto row = one_shot.begin() + static_cast<long>((static_cast<size_t>(end) - 1) * V);
    one_shot_ends.insert(one_shot_ends.end(), row, row + static_cast<long>(V));
    from = end;
  }
  if (auto f = judge("chunked prefill vs one-shot prefill, the logits at each chunk's end",
                     compare_logits(chunked, one_shot_ends, static_cast<int>(V)), static_cast<int>(V), &chunked,
                     &one_shot_ends))
    return *f + fmt::format(" (chunk ends at {})", fmt::join(ends, ", "));
  // The cache bytes of the two, on an engine whose rows we can read (otherwise the run says
  // that this part is not checked: unchecked()).
  if (subject.has(Capability::KvRows))
    if (auto f = check_rows(subject, static_cast<int>(prompt.size()))) return f;
  return check_scripts(subject, script(c), "chunked prefill then decode vs uncached");
}

std::optional<std::string> P5::check_rows(EngineUnderTest& subject, int n) {
  const auto chunked = subject.cache_rows(0), one_shot = subject.cache_rows(1);
  const Config& cf = subject.config();
  for (int s = 0; s < n; ++s)
    for (int l = 0; l < cf.n_layer; ++l)
      for (int h = 0; h < cf.n_head; ++h)
        if (!rows_within(chunked->k_row(l, h, s), one_shot->k_row(l, h, s)) ||
            !rows_within(chunked->v_row(l, h, s), one_shot->v_row(l, h, s)))
          return fmt::format("chunked prefill: cache row differs from one-shot at layer {}, head {}, slot {}", l, h, s);
  return std::nullopt;
}

}  // namespace

const Property& p5() {
  static const P5 property;
  return property;
}

}  // namespace miniinfer::props
