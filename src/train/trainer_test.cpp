// The training loop as a whole: a tiny model learns a synthetic language (its loss falls by a
// stated margin), two runs with one seed give the same bytes, and the data windows, schedule,
// clipping, weight decay and options behave as documented.
#include "train/trainer.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include "base/error.h"
#include "base/rng.h"
#include "corpus/grammar.h"
#include "corpus/tokenizer.h"
#include "model/model_file.h"
#include "train/adamw.h"
#include "train/data.h"

using namespace miniinfer;
using namespace miniinfer::train;

namespace {

// Sentences [x, x + 8, 17 - x, 1] for x uniform in 2..9: the first token carries ln 8 nats,
// the rest none, so the best achievable loss is ln(8) / 4 = 0.52 nats/token; chance is ln 18.
SentenceSourceFactory synthetic_sentences() {
  return [](uint64_t seed) {
    auto rng = std::make_shared<Rng>(seed);
    return SentenceSource([rng] {
      const int x = 2 + static_cast<int>(rng->below(8));
      return std::vector<int>{x, x + 8, 17 - x, 1};
    });
  };
}

std::vector<std::string> synthetic_vocab(int V) {
  std::vector<std::string> vocab;
  for (int i = 0; i < V; ++i) vocab.push_back(fmt::format("w{}", i));
  return vocab;
}

TrainOptions tiny_options() {
  TrainOptions o;
  o.config = Config{.vocab_size = 0,
                    .d_model = 16,
                    .n_layer = 2,
                    .n_head = 2,
                    .d_ff = 32,
                    .rope_theta = 10000.0,
                    .ln_eps = 1e-5,
                    .max_seq_len = 32,
                    .train_ctx = 16};
  o.steps = 60;
  o.batch = 8;
  o.lr = 1e-2;
  o.min_lr = 1e-3;
  o.warmup = 5;
  o.eval_every = 20;
  o.val_windows = 16;
  return o;
}

}  // namespace

TEST_CASE("a tiny model's validation loss falls below half of chance in 60 steps") {
  const TrainRun run = train_model(tiny_options(), synthetic_vocab(18), synthetic_sentences());
  const double chance = std::log(18.0), best = std::log(8.0) / 4;
  const double first_val = run.log[19].val_loss;
  fmt::print("tiny run: chance {:.3f}, val loss at step 20 {:.3f}, at step 60 {:.3f}, optimum {:.3f}\n",
             chance, first_val, run.final_val_loss, best);
  REQUIRE(run.log.size() == 60);
  CHECK(std::isnan(run.log[0].val_loss));
  CHECK(run.final_val_loss < 0.5 * chance);  // the stated margin: 2.89 -> below 1.45
  CHECK(run.final_val_loss < first_val);
  CHECK(run.final_val_loss > best - 0.05);  // nothing can beat the language's entropy
  CHECK(run.tokens_seen == 60 * 8 * 16);
}

TEST_CASE("two runs with the same seed write byte-identical weights; another seed does not") {
  TrainOptions o = tiny_options();
  o.config.d_model = 16;
  o.config.n_layer = 1;
  o.steps = 8;
  o.batch = 4;
  o.eval_every = 4;
  o.val_windows = 4;
  const auto& vocab = builtin_vocabulary();
  const std::string a = model_bytes(train_model(o, vocab, builtin_grammar_sentences()).model);
  const std::string b = model_bytes(train_model(o, vocab, builtin_grammar_sentences()).model);
  o.seed += 1;
  const std::string c = model_bytes(train_model(o, vocab, builtin_grammar_sentences()).model);
  CHECK(a.size() == b.size());
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("one thread and two threads write the same bytes") {
  TrainOptions o = tiny_options();
  o.steps = 6;
  o.batch = 5;  // uneven shards: 2 and 3 windows
  o.eval_every = 3;
  o.val_windows = 4;
  const auto vocab = synthetic_vocab(18);
  o.threads = 1;
  const std::string one = model_bytes(train_model(o, vocab, synthetic_sentences()).model);
  o.threads = 2;
  const std::string two = model_bytes(train_model(o, vocab, synthetic_sentences()).model);
  CHECK(one == two);
}

TEST_CASE("every training window is whole grammar sentences from a sentence start") {
  static const Tokenizer tok(builtin_vocabulary());
  const Grammar& g = Grammar::builtin();
  WindowPacker packer(grammar_sentences(g, tok, 5), 64);
  std::vector<int> window(65);
  int sentence_ends = 0;
  for (int i = 0; i < 50; ++i) {
    packer.next(window);
    const auto words = tok.words(window);
    INFO(fmt::format("window {}: {}", i, fmt::join(words, " ")));
    REQUIRE(g.is_prefix(words));  // complete sentences, then a prefix of one more
    for (int t : window) sentence_ends += t == tok.end_id();
  }
  CHECK(sentence_ends > 50 * 5);  // sentences are short: many per window
}

TEST_CASE("a window starts at a sentence start and drops the rest of its last sentence") {
  WindowPacker packer(synthetic_sentences()(3), 6);  // 7 tokens: a sentence and 3 of the next
  std::vector<int> window(7);
  for (int i = 0; i < 20; ++i) {
    packer.next(window);
    INFO(fmt::format("window {}: {}", i, fmt::join(window, " ")));
    CHECK(window[0] >= 2);
    CHECK(window[0] <= 9);
    CHECK(window[3] == 1);
    CHECK(window[4] >= 2);
    CHECK(window[4] <= 9);
  }
}

TEST_CASE("the grammar's entropy rate is a floor below chance, over every distinct sentence") {
  const Grammar& g = Grammar::builtin();
  const GrammarEntropy e = grammar_entropy(g);
  fmt::print(
      "grammar: {} distinct sentences, {:.4f} nats/sentence, {:.3f} tokens/sentence, {:.4f} nats/token\n",
      e.distinct, e.per_sentence, e.mean_tokens, e.per_token);
  // Every sentence sampling can draw; the recognizer also accepts the feminine wordings
  // sampling never draws ("de niña yo ..."), so it counts more.
  std::set<std::vector<std::string>> drawn;
  for (Lang lang : {Lang::En, Lang::Es})
    for (Tense tense : g.tenses(lang))
      for (const SentenceSpec& spec : g.specs(tense)) drawn.insert(g.render(spec).words);
  CHECK(e.distinct == drawn.size());
  CHECK(e.distinct < g.count_sentences());
  double total = 0.0;  // probabilities of every spec sum to 1
  for (Lang lang : {Lang::En, Lang::Es})
    for (Tense tense : g.tenses(lang))
      for (const SentenceSpec& spec : g.specs(tense)) total += g.probability(spec);
  CHECK(total == Approx(1.0).epsilon(1e-9));
  CHECK(e.per_sentence <= std::log(static_cast<double>(e.distinct)));  // uniform is the most
  CHECK(e.per_token > 0.5);
  CHECK(e.per_token < std::log(static_cast<double>(g.vocabulary().size())));
  CHECK(e.mean_tokens > 2.0);
}

TEST_CASE("training and validation streams come from different seeds") {
  static const Tokenizer tok(builtin_vocabulary());
  const auto factory = builtin_grammar_sentences();
  std::vector<int> in1, tg1, in2, tg2, in3, tg3;
  WindowPacker(factory(1), 32).next_batch(4, in1, tg1);
  WindowPacker(factory(2), 32).next_batch(4, in2, tg2);
  WindowPacker(factory(1), 32).next_batch(4, in3, tg3);
  CHECK(in1 == in3);
  CHECK(in1 != in2);
  for (size_t i = 0; i + 1 < in1.size(); ++i)
    if ((i + 1) % 32 != 0) CHECK(tg1[i] == in1[i + 1]);  // targets are inputs shifted by one
}

TEST_CASE("the learning rate warms up linearly, peaks, and decays by a cosine to min_lr") {
  const LrSchedule s{1.0, 0.1, 10, 110};
  CHECK(s.at(0) == Approx(0.1));
  CHECK(s.at(4) == Approx(0.5));
  CHECK(s.at(9) == Approx(1.0));
  CHECK(s.at(10) == Approx(1.0));
  CHECK(s.at(59) == Approx(0.55).epsilon(0.02));  // halfway down the cosine
  CHECK(s.at(109) == Approx(0.1));
  for (int i = 10; i < 109; ++i) CHECK(s.at(i + 1) <= s.at(i));
}

TEST_CASE("gradient clipping scales the global norm down to the limit and reports the norm before") {
  Config c{.vocab_size = 3, .d_model = 4, .n_layer = 1, .n_head = 1, .d_ff = 4};
  Params<float> g = zero_params<float>(c);
  g.tok_emb[0] = 3.0f;
  g.layers[0].b1[2] = 4.0f;
  CHECK(clip_grad_norm(g, c, 10.0) == Approx(5.0));
  CHECK(g.tok_emb[0] == 3.0f);  // under the limit: untouched
  CHECK(clip_grad_norm(g, c, 1.0) == Approx(5.0));
  CHECK(g.tok_emb[0] == Approx(0.6f));
  CHECK(g.layers[0].b1[2] == Approx(0.8f));
  CHECK(clip_grad_norm(g, c, 0.0) == Approx(1.0));  // 0 = off
}

TEST_CASE("AdamW decays projection matrices, not the embedding, biases or LayerNorm parameters") {
  Config c{.vocab_size = 3, .d_model = 4, .n_layer = 1, .n_head = 1, .d_ff = 4};
  Params<float> p = zero_params<float>(c), g = zero_params<float>(c);
  for (auto& t : tensors_of(p, c))
    for (float& x : t.data) x = 1.0f;
  AdamW opt(c, AdamWOptions{0.9, 0.95, 1e-8, 0.1});
  opt.update(p, g, 0.5);  // zero gradient: only the decay moves anything
  for (auto& t : tensors_of(p, c)) {
    INFO(t.name);
    const bool projection = t.shape.size() == 2 && t.name != "tok_emb.weight";
    CHECK(t.data[0] == (projection ? Approx(1.0 - 0.5 * 0.1) : Approx(1.0)));
  }
}

TEST_CASE("AdamW's first step moves each parameter by lr against its gradient's sign") {
  Config c{.vocab_size = 3, .d_model = 4, .n_layer = 1, .n_head = 1, .d_ff = 4};
  Params<float> p = zero_params<float>(c), g = zero_params<float>(c);
  g.lnf_b[0] = 0.25f;
  g.lnf_b[1] = -3.0f;
  AdamW opt(c, AdamWOptions{0.9, 0.95, 1e-8, 0.0});
  opt.update(p, g, 0.01);
  CHECK(p.lnf_b[0] == Approx(-0.01));  // bias-corrected m / sqrt(v) = sign(g) on step 1
  CHECK(p.lnf_b[1] == Approx(0.01));
  CHECK(p.lnf_b[2] == 0.0f);
}

TEST_CASE("training options read from JSON, and bad keys are one-line errors naming them") {
  const TrainOptions o =
      apply_options_json(TrainOptions{}, R"({"n_layer": 2, "d_model": 32, "steps": 7, "lr": 0.5})");
  CHECK(o.config.n_layer == 2);
  CHECK(o.config.d_model == 32);
  CHECK(o.config.d_ff == 128);  // follows 4 * d_model
  CHECK(o.steps == 7);
  CHECK(o.lr == 0.5);
  CHECK_THROWS_WITH(apply_options_json(TrainOptions{}, R"({"stepz": 1})"),
                    Catch::Contains("unknown key 'stepz'"));
  CHECK_THROWS_WITH(apply_options_json(TrainOptions{}, R"({"steps": 1.5})"),
                    Catch::Contains("'steps' must be an integer"));
  CHECK_THROWS_WITH(apply_options_json(TrainOptions{}, R"({"vocab_size": 9})"),
                    Catch::Contains("vocab_size"));
  CHECK_THROWS_WITH(apply_options_json(TrainOptions{}, "[1]"), Catch::Contains("expected a JSON object"));
  const TrainOptions back = apply_options_json(TrainOptions{}, options_to_json(o));
  CHECK(options_to_json(back) == options_to_json(o));
}

TEST_CASE("a bad training option is an Error naming it") {
  TrainOptions o = tiny_options();
  o.steps = 0;
  CHECK_THROWS_WITH(train_model(o, synthetic_vocab(18), synthetic_sentences()),
                    Catch::Contains("steps must be positive"));
  o = tiny_options();
  o.config.train_ctx = 64;
  CHECK_THROWS_WITH(train_model(o, synthetic_vocab(18), synthetic_sentences()),
                    Catch::Contains("train_ctx 64 exceeds"));
}

TEST_CASE("the loss log is CSV with the validation loss only where measured") {
  const std::vector<StepRecord> log = {{1, 0.1, 2.5, 1.0, NAN, 64, 0.5},
                                       {2, 0.2, 2.25, 0.5, 2.125, 128, 1.0}};
  CHECK(log_to_csv(log) ==
        "step,lr,train_loss,grad_norm,val_loss,tokens,seconds\n"
        "1,0.1,2.500000,1.000000,,64,0.500\n"
        "2,0.2,2.250000,0.500000,2.125000,128,1.000\n");
}
