// Quality of a trained model, measured with the engine that ships (its invariant backend, KV
// cache on): grammaticality of sampled sentences, tense agreement of greedy continuations
// after a past adverbial + pronoun, and the greedy continuation of "Yesterday I".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "corpus/grammar.h"
#include "engine/quant_cache.h"
#include "model/model.h"

namespace miniinfer::train {

struct EvalOptions {
  uint64_t seed = 1;         // prompt choice and sampling coins
  int samples = 1000;        // sentences sampled for grammaticality
  float temperature = 1.0f;  // for grammaticality; agreement is greedy
  int max_new_tokens = 12;   // a sentence that has no "." by then fails
  int batch = 64;            // sequences per engine call
  int threads = 0;           // the engine's worker threads; 0 = EngineOptions' default
  int window = 0, sinks = 0;  // the engine's sliding window (EngineOptions); 0 = none
  KvQuant kv_quant = KvQuant::F32;  // the engine's K/V format and residual (EngineOptions)
  int kv_residual = 0;
};

struct Tally {
  std::string name;
  int ok = 0, total = 0;
  double percent() const { return total ? 100.0 * ok / total : 0.0; }
};

struct EvalReport {
  // Prompts: every adverbial that can start a sentence and every pronoun, both languages,
  // chosen uniformly; the sample is prompt + tokens up to the first ".", and counts if
  // Grammar::is_complete accepts it.
  Tally grammatical{"grammaticality (T=1.0)"};
  // Every (past adverbial, pronoun) pair of past-simple, pretérito and imperfecto: the greedy
  // sentence must parse (Grammar::parse_tenses) as the adverbial's tense, so its verb is a
  // past form of the pronoun's person.
  Tally past_agreement{"past tense agreement (greedy)"};
  std::vector<Tally> past_by_tense;
  // The same over every tense whose adverbials open a sentence (not a target; context).
  Tally all_agreement{"tense agreement, all tenses (greedy)"};
  std::string yesterday_i;            // greedy continuation of "Yesterday I", up to "."
  bool yesterday_i_past = false;      // its first word is an English past-simple form
  std::vector<std::string> examples;  // a few samples, failures first
  std::vector<std::string> samples;   // every sampled sentence, in order
};

EvalReport evaluate(const Model& model, const Grammar& grammar, const EvalOptions& options);

// A readable multi-line summary.
std::string format_report(const EvalReport& report);

}  // namespace miniinfer::train
