// The training loop: windows from a seeded sentence stream, forward, backward, clip, AdamW
// with warm-up and cosine decay, validation on a held-out stream every few steps. The same
// options, vocabulary and sentence streams give the same bytes with one thread or two: fixed
// reduction order, our own Rng, and Eigen's GEMM blocking pinned (see pin_eigen_blocking).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/data.h"

namespace miniinfer::train {

struct TrainOptions {
  Config config;       // vocab_size is set from the vocabulary
  uint64_t seed = 17;  // weights from stream 0, training data 1, validation data 2
  int steps = 2000;
  int batch = 32;        // windows per step, each config.train_ctx tokens
  double lr = 6e-3;      // peak learning rate
  double min_lr = 3e-4;  // at the last step
  int warmup = 100;      // steps of linear warm-up
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double grad_clip = 1.0;  // global L2 norm; 0 = off
  int eval_every = 100;    // validation every this many steps (and after the last)
  int val_windows = 128;   // held-out windows, fixed for the run
  // 1 or 2. The batch is always split into two shards (one if batch is 1) whose gradients
  // are combined in a fixed order, so the weights are the same bytes for either count;
  // threads only decides whether the shards run one after the other or side by side.
  int threads = 1;
};

// Reads a JSON object: model keys (d_model, n_layer, n_head, d_ff, rope_theta, ln_eps,
// max_seq_len, train_ctx) and training keys (the fields above, by name) over `base`. An
// unknown key or a wrong type is an Error naming it.
TrainOptions apply_options_json(TrainOptions base, const std::string& json_text);
// Every key that affects the weights (all but threads), for manifests.
std::string options_to_json(const TrainOptions& options);
// Throws Error naming the first bad option (train_model does this too, before any work).
void validate_options(const TrainOptions& options, int vocab_size);

struct StepRecord {
  int step = 0;  // 1-based: steps done
  double lr = 0;
  double train_loss = 0;  // this step's batch
  double grad_norm = 0;   // before clipping
  double val_loss = NAN;  // measured at this step, else NaN
  int64_t tokens = 0;     // seen so far
  double seconds = 0;     // wall time so far
};

struct TrainRun {
  Model model;
  std::vector<StepRecord> log;
  int64_t tokens_seen = 0;
  double final_train_loss = 0;  // mean batch loss of the last min(50, steps) steps
  double final_val_loss = 0;
  double seconds = 0;
};

// Trains from init_model(config, vocab, seed of stream 0) on windows packed from
// sentences(seed of stream 1); validates on windows from sentences(seed of stream 2).
TrainRun train_model(const TrainOptions& options, const std::vector<std::string>& vocab,
                     const SentenceSourceFactory& sentences,
                     const std::function<void(const StepRecord&)>& on_step = {});

// The grammar's stream: Grammar::builtin() sentences, vocabulary Grammar::builtin().vocabulary().
SentenceSourceFactory builtin_grammar_sentences();
const std::vector<std::string>& builtin_vocabulary();

// Mean cross-entropy of a model on windows, in batches of B (forward only, float).
double mean_loss(const Model& model, const std::vector<int>& inputs, const std::vector<int>& targets, int B,
                 int T);

// Eigen sizes GEMM blocks from the CPU's cache sizes, and blocking changes summation order;
// pinning them makes training bytes the same on machines with other caches. Global, idempotent.
void pin_eigen_blocking();

// The loss log as CSV: step,lr,train_loss,grad_norm,val_loss,tokens,seconds (val_loss empty
// where not measured).
std::string log_to_csv(const std::vector<StepRecord>& log);

}  // namespace miniinfer::train
