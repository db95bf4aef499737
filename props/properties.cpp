// The properties, each named as a sentence. Every one draws a Case from the grammar's
// generators, runs it through check_case, and on failure hands the reporter a closure that
// explains the minimal case once shrinking is done.
#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include <algorithm>
#include <numeric>
#include <sstream>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/sha256.h"

#include <filesystem>

#include "corpus/grammar.h"
#include "generators/prompts.h"
#include "props/cases.h"
#include "props/context.h"
#include "props/history.h"
#include "props/level.h"
#include "props/runner.h"

using namespace miniinfer;
using namespace miniinfer::props;

namespace {

std::vector<int> ids_of(const gen::Prompt& p) { return context().tokenizer->encode_words(p.words()); }

void tag(const gen::Prompt& p) {
  for (const auto& t : gen::tags_of(p)) RC_TAG(t);
}

// Runs the case; on failure, records how to report it and fails the RapidCheck case.
void verify(Case c) {
  std::optional<std::string> what;
  // Any exception is this case's failure, with this case's report: letting one escape would
  // leave RapidCheck failing the case while the reporter still holds an earlier case's closure.
  try {
    what = check_case(c);
  } catch (const std::exception& e) {
    what = std::string("the run stopped with an error: ") + e.what();
  } catch (...) {
    what = "the run stopped with an exception that is not a std::exception";
  }
  if (what) {
    const std::string headline = *what;
    record_failure([c, headline] { return report_case(c, headline); });
    RC_FAIL(headline);
  }
}

Case single(const char* id, int new_tokens) {
  Case c;
  c.property = id;
  const gen::Prompt p = *gen::genPrompt();
  tag(p);
  c.prompts = {ids_of(p)};
  c.params = *gen::genRunParams(new_tokens);
  return c;
}

std::vector<std::vector<int>> ragged_batch(int max) {
  const auto prompts = *rc::gen::container<std::vector<gen::Prompt>>(
      static_cast<size_t>(*gen::genBatchSize(max)), gen::genPrompt());
  std::vector<std::vector<int>> out;
  tag(prompts.front());  // one prompt's tags per case, so the shares add up to 100%
  for (const auto& p : prompts) out.push_back(ids_of(p));
  if (out.size() >= 2) RC_TAG("batched");
  return out;
}

int scaled(int fast, int full) { return run_config().full ? full : fast; }

}  // namespace

// The scripted properties stay beside p11, the model-based one: each is a sharper, cheaper
// special case (p6 fails a decode fault on its first one-token case and shrinks to 2 new tokens),
// or checks what p11 cannot: p1/p2 run 64 and 256 tokens where p11's sequences hold 12, p3 and
// p9 compare generate() batches with solo runs and with a second request, p10 varies the
// architecture, p12 the sampler's edges. p11 covers what they cannot: interleaved sequences,
// forks, rollbacks, continuous batching and the calls an engine must refuse.
// Catch2 runs properties in this order: the cheap, sharp ones first (p6 compares logits, so
// a decode fault fails its first case with a one-token prompt), the 64- and 256-token runs
// last, so an injected fault is found and shrunk within a second or two.
PROPERTY(p0, "every generated prompt and every shrink of it is grammatical, and no shrink returns its input", 100) {
  const gen::Prompt p = *gen::genPrompt();
  tag(p);
  RC_ASSERT(Grammar::builtin().is_prefix(p.words()));
  for (const auto& q : gen::shrink_prompt(p)) {
    RC_ASSERT(Grammar::builtin().is_prefix(q.words()));
    RC_ASSERT(q.words() != p.words());
  }
}

PROPERTY(p6, "the logits of every step are byte-identical with and without cache", 60) {
  verify(single("p6", 32));
}

PROPERTY(p7, "every cached K and V row equals full recompute's, for every layer, head and slot", 100) {
  verify(single("p7", 16));
}

PROPERTY(p4, "resuming with a multi-token chunk on a non-empty cache equals full recompute", 50) {
  Case c = single("p4", 16);
  c.k = *rc::gen::inRange(1, 9);  // at least one decoded token: k = 0 would be one prefill
  const gen::Prompt chunk = *gen::genPartialPrompt();
  c.chunk = ids_of(chunk);
  if (c.k >= 1 && c.chunk.size() >= 2) RC_TAG("resumed");
  verify(c);
}

PROPERTY(p5, "chunked prefill at any boundaries equals one-shot prefill in logits and cache bytes", 100) {
  Case c;
  c.property = "p5";
  const gen::Prompt p = *gen::genMixedTensePrompt();
  tag(p);
  c.prompts = {ids_of(p)};
  c.cuts = *gen::genChunkBoundaries(static_cast<int>(c.prompts[0].size()));
  if (!c.cuts.empty()) RC_TAG("cut");
  c.params = *gen::genRunParams(4);
  verify(c);
}

PROPERTY(p3, "in a ragged batch of 4 each sequence equals its own solo run, with and without cache", 30) {
  Case c;
  c.property = "p3";
  c.prompts = ragged_batch(4);
  c.params = *gen::genRunParams(24);
  verify(c);
}

// p11 is the model-based property: not a PROPERTY, because it prints its command mix after.
TEST_CASE("over random programs of appends, batched and continuous decodes, truncations, forks and resets on up to 8 sequences, every call's logits and every cache row equal full recompute", "[p11]") {
  const bool ok = check_property("p11", "over random programs on up to 8 sequences, logits and cache rows equal full recompute, and refused commands change nothing", 200, check_histories);
  std::printf("%s\n", history_mix().c_str());
  REQUIRE(ok);
}

PROPERTY(p8, "truncating to position p and regenerating equals a fresh run from that prefix", 50) {
  Case c = single("p8", 12);
  // The rollback point lies before the last drawn token, so the truncation removes something.
  c.k = *rc::gen::inRange(0, c.params.max_new_tokens);
  if (c.k < c.params.max_new_tokens) RC_TAG("truncated");
  verify(c);
}

PROPERTY(p9, "the same seed twice gives the same bytes, and batch order does not matter", 40) {
  Case c;
  c.property = "p9";
  c.prompts = ragged_batch(4);
  c.params = *gen::genRunParams(16);
  c.order = *gen::genPermutation(static_cast<int>(c.prompts.size()));
  if (!std::is_sorted(c.order.begin(), c.order.end())) RC_TAG("reordered");
  verify(c);
}

PROPERTY(p12, "with every coin a few ULP from a sampler edge, at temperatures other than 1, cached and uncached generation draw the same tokens", 40) {
  Case c = single("p12", 16);
  // Temperatures other than 1, where dividing by T and multiplying by 1/T round apart.
  c.params.temperature = *rc::gen::element(0.5f, 0.7f, 1.5f, 2.0f);
  c.coin_seed = *rc::gen::inRange<uint64_t>(0, 1000000);
  RC_TAG("beside an edge");
  verify(c);
}

PROPERTY(p10, "on random architectures, cached equals uncached, batches equal solo runs, and cache rows equal recompute", 30) {
  Case c;
  c.property = "p10";
  Config a;
  a.n_layer = *rc::gen::inRange(1, 5);
  a.n_head = *rc::gen::inRange(1, 9);
  // d_head even from 2 to 64; by default D = H * d_head stays <= 128 to keep a case cheap,
  // --full opens the whole range (up to D = 512).
  const int max_half = std::min(32, scaled(64 / a.n_head, 32));
  a.d_model = a.n_head * 2 * *rc::gen::inRange(1, std::max(1, max_half) + 1);
  a.d_ff = 4 * a.d_model;
  a.vocab_size = static_cast<int>(context().model.vocab.size());
  a.max_seq_len = 128;
  c.arch = a;
  c.arch_seed = *rc::gen::inRange<uint64_t>(0, 1000000);
  c.prompts = ragged_batch(scaled(2, 4));
  c.params = *gen::genRunParams(scaled(8, 32));
  verify(c);
}

PROPERTY(p1, "cached and uncached generation give the same tokens over 64 new tokens", 100) {
  verify(single("p1", 64));
}

PROPERTY(p2, "cached and uncached generation give the same tokens over 256 new tokens", 3) {
  // 256 steps of full recompute cost ~30 times a 64-token case: 3 cases by default; the
  // nightly run's --rc-max-success=2000 makes that 60.
  verify(single("p2", 256));
}

namespace miniinfer::props {

int replay_case(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("replay {}: not valid JSON ({})", path, e.what());
  }
  SavedCase saved;
  try {
    saved = saved_case_from_json(j);
  } catch (const Error& e) {
    fail("replay {}: {}", path, e.what());
  }
  const bool is_program = saved.is_program;
  Case& c = saved.c;
  Program& program = saved.program;
  // The case runs as it was saved: its engine (and settings), level, backend and fault, unless
  // this run names others.
  Context& ctx = context();
  const RunConfig& run = run_config();
  if (ctx.backend == Backend::Invariant) ctx.backend = backend_from_name(saved.backend);
  if (ctx.fault == Fault::None) ctx.fault = fault_from_name(saved.fault);
  // The engine: the saved one, with its saved settings; --gguf may say where its GGUF is now.
  if (run.engine != "miniinfer" && saved.engine != run.engine)
    fail("replay {}: the case was found on engine {}, not {}", path, saved.engine, run.engine);
  const std::string engine = saved.engine;
  const nlohmann::json settings = find_engine(engine)->replay(path, saved.engine_settings, run);
  if (run.level == "bits" && saved.level != "bits") set_run_level(level_from_name(saved.level));
  make_subject(engine, settings);
  std::printf("replay %s: engine %s; level %s\n", path.c_str(), ctx.subject->describe().c_str(),
              to_string(run_level()).c_str());
  // A case replays only on the model that found it: other weights make other bytes.
  if (saved.model_sha256 != context().model_sha256)
    fail("replay {}: saved against model sha256 {}, but this run's model ({}) is {}; pass --model", path,
         saved.model_sha256.empty() ? "(none)" : saved.model_sha256, context().model_label, context().model_sha256);
  if (is_program) {
    std::printf("replay %s: p11, a program of %zu commands on %d sequences\n", path.c_str(), program.steps.size(),
                program.batch);
    if (auto what = check_program(program)) {
      std::printf("FAIL  %s\n", what->c_str());
      publish_failure("p11", report_program(program, *what));
      return 1;
    }
    std::printf("ok    the program passes now\n");
    return 0;
  }
  std::printf("replay %s: %s %s\n", path.c_str(), c.property.c_str(), (std::ostringstream() << c).str().c_str());
  if (auto what = check_case(c)) {
    std::printf("FAIL  %s\n", what->c_str());
    publish_failure(c.property, report_case(c, *what));
    return 1;
  }
  std::printf("ok    the case passes now\n");
  return 0;
}

}  // namespace miniinfer::props
