// p4: resuming with a multi-token chunk on a non-empty cache equals full recompute: a prompt,
// k decoded tokens, then a chunk appended in one call, then decoding again.
#include "props/case_property.h"

namespace miniinfer::props {
namespace {

struct ResumeCase : CaseCore {
  int k = 0;               // tokens decoded before the resumed chunk
  std::vector<int> chunk;  // the resumed chunk
};

class P4 final : public CaseProperty<ResumeCase> {
 public:
  P4()
      : CaseProperty({"p4", "resuming with a multi-token chunk on a non-empty cache equals full recompute", 50}) {}

  ResumeCase draw() const override {
    ResumeCase c{draw_single(16), 0, {}};
    c.k = *rc::gen::inRange(1, 9);  // at least one decoded token: k = 0 would be one prefill
    c.chunk = ids_of(*gen::genPartialPrompt());
    if (c.k >= 1 && c.chunk.size() >= 2) RC_TAG("resumed");
    return c;
  }
  std::optional<std::string> check(EngineUnderTest& e, ResumeCase& c) const override {
    return check_scripts(e, script(c), "resume (prompt, decode, chunk, decode) vs uncached");
  }
  std::vector<Scenario> scenarios(const ResumeCase& c) const override {
    return standard_scenarios(c, script(c), c.prompts.size() > 1);
  }
  std::string details(const ResumeCase& c) const override {
    return fmt::format(" resume after {} tokens with \"{}\"", c.k, context().tokenizer->decode(c.chunk));
  }
  void write(const ResumeCase& c, CaseFields& f) const override {
    f.k = c.k;
    f.chunk = c.chunk;
  }
  ResumeCase read(const CaseFields& f) const override {
    if (f.chunk.empty()) fail("case: p4 resumes with an empty chunk");
    return {f.core, f.k, f.chunk};
  }

 private:
  static Script script(const ResumeCase& c) {
    Script s = base_script(c, c.prompts[0], 0);
    s.ops.push_back({Op::Generate, {}, c.k, 0});
    s.ops.push_back({Op::Append, c.chunk, 0, 0});
    s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
    return s;
  }
};

}  // namespace

const Property& p4() {
  static const P4 property;
  return property;
}

}  // namespace miniinfer::props
