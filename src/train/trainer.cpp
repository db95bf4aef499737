// The training loop and its options.
#include "train/trainer.h"

#include <fmt/format.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/rng.h"
#include "corpus/grammar.h"
#include "corpus/tokenizer.h"
#include "model/model_file.h"
#include "train/adamw.h"
#include "train/gpt.h"

namespace miniinfer::train {

namespace {

using nlohmann::json;

const std::set<std::string> kModelKeys = {"d_model",    "n_layer", "n_head",      "d_ff",
                                          "rope_theta", "ln_eps",  "max_seq_len", "train_ctx"};

template <typename T>
T get_number(const json& j, const std::string& key) {
  const json& v = j.at(key);
  if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) fail("train config: '{}' must be an integer, got {}", key, v.dump());
    if constexpr (std::is_unsigned_v<T>) {
      if (v.is_number_unsigned()) return v.get<T>();
      if (v.get<int64_t>() < 0) fail("train config: '{}' must not be negative, got {}", key, v.dump());
      return static_cast<T>(v.get<int64_t>());
    } else {
      const int64_t x = v.get<int64_t>();
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
        fail("train config: '{}' = {} is out of range", key, x);
      return static_cast<T>(x);
    }
  } else {
    if (!v.is_number()) fail("train config: '{}' must be a number, got {}", key, v.dump());
    return v.get<T>();
  }
}

}  // namespace

void validate_options(const TrainOptions& options, int vocab_size) {
  TrainOptions o = options;
  o.config.vocab_size = vocab_size;
  o.config.validate();
  if (o.steps <= 0) fail("training option steps must be positive, got {}", o.steps);
  if (o.batch <= 0) fail("training option batch must be positive, got {}", o.batch);
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr)
    fail("training options: need 0 <= min_lr <= lr and lr > 0, got lr {} min_lr {}", o.lr, o.min_lr);
  if (o.warmup < 0) fail("training option warmup must not be negative, got {}", o.warmup);
  if (o.eval_every <= 0) fail("training option eval_every must be positive, got {}", o.eval_every);
  if (o.val_windows <= 0) fail("training option val_windows must be positive, got {}", o.val_windows);
  if (o.threads != 1 && o.threads != 2) fail("training option threads must be 1 or 2, got {}", o.threads);
  if (o.config.train_ctx > o.config.max_seq_len)
    fail("training options: train_ctx {} exceeds max_seq_len {}", o.config.train_ctx, o.config.max_seq_len);
}

namespace {

uint64_t stream_seed(uint64_t seed, uint64_t index) { return Rng::stream(seed, index).next_u64(); }

// A batch's loss and gradient from two shards of its windows (one if B is 1), combined in
// shard order with weights by share of windows: the same float operations whether the shards
// ran one after the other or on two threads.
class ShardedGradient {
 public:
  ShardedGradient(const Config& config, int B, int T)
      : config_(config), T_(T), first_(B >= 2 ? std::vector<int>{0, B / 2, B} : std::vector<int>{0, B}) {
    for (size_t s = 0; s + 1 < first_.size(); ++s)
      gpts_.push_back(std::make_unique<Gpt<float>>(config, first_[s + 1] - first_[s], T));
    losses_.resize(gpts_.size());
  }

  double compute(const Params<float>& params, const std::vector<int>& inputs, const std::vector<int>& targets,
                 Params<float>& grads, int threads) {
    auto work = [&](size_t s) {
      Gpt<float>& g = *gpts_[s];
      const int b = first_[s + 1] - first_[s];
      const size_t at = static_cast<size_t>(first_[s]) * T_, n = static_cast<size_t>(b) * T_;
      g.params = params;
      losses_[s] = g.forward(std::span(inputs).subspan(at, n), std::span(targets).subspan(at, n), b, T_);
      g.backward();
    };
    if (gpts_.size() == 2 && threads == 2) {
      std::thread helper(work, 1);
      work(0);
      helper.join();
    } else {
      for (size_t s = 0; s < gpts_.size(); ++s) work(s);
    }
    double loss = 0;
    auto total = tensors_of(grads, config_);
    for (size_t s = 0; s < gpts_.size(); ++s) {
      const float w = static_cast<float>(first_[s + 1] - first_[s]) / static_cast<float>(first_.back());
      loss += static_cast<double>(w) * losses_[s];
      auto part = tensors_of(gpts_[s]->grads, config_);
      for (size_t i = 0; i < total.size(); ++i)
        for (size_t j = 0; j < total[i].data.size(); ++j)
          total[i].data[j] = (s == 0 ? 0.0f : total[i].data[j]) + w * part[i].data[j];
    }
    return loss;
  }

 private:
  Config config_;
  int T_;
  std::vector<int> first_;  // shard s owns windows [first_[s], first_[s + 1])
  std::vector<std::unique_ptr<Gpt<float>>> gpts_;
  std::vector<double> losses_;
};

}  // namespace

TrainOptions apply_options_json(TrainOptions o, const std::string& json_text) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("train config: not valid JSON ({})", e.what());
  }
  if (!j.is_object()) fail("train config: expected a JSON object, got {}", j.type_name());
  json model = json::object();
  for (const auto& [key, value] : j.items()) {
    if (key == "vocab_size")
      fail("train config: 'vocab_size' comes from the grammar's vocabulary; remove it");
    if (kModelKeys.count(key)) {
      model[key] = value;
      continue;
    }
    if (key == "seed")
      o.seed = get_number<uint64_t>(j, key);
    else if (key == "steps")
      o.steps = get_number<int>(j, key);
    else if (key == "batch")
      o.batch = get_number<int>(j, key);
    else if (key == "lr")
      o.lr = get_number<double>(j, key);
    else if (key == "min_lr")
      o.min_lr = get_number<double>(j, key);
    else if (key == "warmup")
      o.warmup = get_number<int>(j, key);
    else if (key == "weight_decay")
      o.weight_decay = get_number<double>(j, key);
    else if (key == "beta1")
      o.beta1 = get_number<double>(j, key);
    else if (key == "beta2")
      o.beta2 = get_number<double>(j, key);
    else if (key == "adam_eps")
      o.adam_eps = get_number<double>(j, key);
    else if (key == "grad_clip")
      o.grad_clip = get_number<double>(j, key);
    else if (key == "eval_every")
      o.eval_every = get_number<int>(j, key);
    else if (key == "val_windows")
      o.val_windows = get_number<int>(j, key);
    else if (key == "threads")
      o.threads = get_number<int>(j, key);
    else
      fail("train config: unknown key '{}'", key);
  }
  if (!model.empty()) o.config = apply_config_json(o.config, model.dump());
  return o;
}

std::string options_to_json(const TrainOptions& o) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(config_to_json(o.config));
  j.erase("vocab_size");  // the vocabulary's, not an option
  j["seed"] = o.seed;
  j["steps"] = o.steps;
  j["batch"] = o.batch;
  j["lr"] = o.lr;
  j["min_lr"] = o.min_lr;
  j["warmup"] = o.warmup;
  j["weight_decay"] = o.weight_decay;
  j["beta1"] = o.beta1;
  j["beta2"] = o.beta2;
  j["adam_eps"] = o.adam_eps;
  j["grad_clip"] = o.grad_clip;
  j["eval_every"] = o.eval_every;
  j["val_windows"] = o.val_windows;
  return j.dump();
}

void pin_eigen_blocking() {
  // This machine's per-core L1d and L2; L3 as a typical slice. Only the blocking they imply
  // matters, not whether they are true of the machine that runs.
  Eigen::setCpuCacheSizes(48 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024);
}

double mean_loss(const Model& model, const std::vector<int>& inputs, const std::vector<int>& targets, int B,
                 int T) {
  const size_t windows = inputs.size() / static_cast<size_t>(T);
  Gpt<float> gpt(model.config, B, T);
  gpt.params = params_from_weights<float>(model.weights, model.config);
  double sum = 0;
  for (size_t w = 0; w < windows; w += static_cast<size_t>(B)) {
    const int b = static_cast<int>(std::min<size_t>(static_cast<size_t>(B), windows - w));
    const size_t n = static_cast<size_t>(b) * T;
    sum += static_cast<double>(
               gpt.forward(std::span(inputs).subspan(w * T, n), std::span(targets).subspan(w * T, n), b, T)) *
           static_cast<double>(n);
  }
  return sum / static_cast<double>(inputs.size());
}

TrainRun train_model(const TrainOptions& options, const std::vector<std::string>& vocab,
                     const SentenceSourceFactory& sentences,
                     const std::function<void(const StepRecord&)>& on_step) {
  TrainOptions o = options;
  o.config.vocab_size = static_cast<int>(vocab.size());
  validate_options(o, o.config.vocab_size);
  pin_eigen_blocking();
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  const int B = o.batch, T = o.config.train_ctx;
  ShardedGradient gradient(o.config, B, T);
  Params<float> params =
      params_from_weights<float>(init_model(o.config, vocab, stream_seed(o.seed, 0)).weights, o.config);
  Params<float> grads = zero_params<float>(o.config);
  AdamW adamw(o.config, AdamWOptions{o.beta1, o.beta2, o.adam_eps, o.weight_decay});
  const LrSchedule schedule{o.lr, o.min_lr, o.warmup, o.steps};

  WindowPacker train_data(sentences(stream_seed(o.seed, 1)), T);
  std::vector<int> val_inputs, val_targets;
  WindowPacker(sentences(stream_seed(o.seed, 2)), T).next_batch(o.val_windows, val_inputs, val_targets);
  auto validate_now = [&] {
    const Model m{o.config, weights_from_params(params, o.config), vocab};
    return mean_loss(m, val_inputs, val_targets, B, T);
  };

  TrainRun run;
  std::vector<int> inputs, targets;
  for (int step = 0; step < o.steps; ++step) {
    train_data.next_batch(B, inputs, targets);
    const double loss = gradient.compute(params, inputs, targets, grads, o.threads);
    const double norm = clip_grad_norm(grads, o.config, o.grad_clip);
    const double lr = schedule.at(step);
    adamw.update(params, grads, lr);
    run.tokens_seen += static_cast<int64_t>(B) * T;
    StepRecord r{step + 1, lr, loss, norm, NAN, run.tokens_seen, 0};
    if ((step + 1) % o.eval_every == 0 || step + 1 == o.steps) r.val_loss = validate_now();
    r.seconds = elapsed();
    run.log.push_back(r);
    if (on_step) on_step(r);
  }
  run.model = Model{o.config, weights_from_params(params, o.config), vocab};
  const size_t tail = std::min<size_t>(50, run.log.size());
  for (size_t i = run.log.size() - tail; i < run.log.size(); ++i)
    run.final_train_loss += run.log[i].train_loss;
  run.final_train_loss /= static_cast<double>(tail);
  run.final_val_loss = run.log.back().val_loss;
  run.seconds = elapsed();
  return run;
}

SentenceSourceFactory builtin_grammar_sentences() {
  return [](uint64_t seed) {
    static const Tokenizer tokenizer(Grammar::builtin().vocabulary());
    return grammar_sentences(Grammar::builtin(), tokenizer, seed);
  };
}

const std::vector<std::string>& builtin_vocabulary() { return Grammar::builtin().vocabulary(); }

std::string log_to_csv(const std::vector<StepRecord>& log) {
  std::string out = "step,lr,train_loss,grad_norm,val_loss,tokens,seconds\n";
  for (const auto& r : log) {
    out += fmt::format("{},{:.6g},{:.6f},{:.6f},{},{},{:.3f}\n", r.step, r.lr, r.train_loss, r.grad_norm,
                       std::isnan(r.val_loss) ? std::string() : fmt::format("{:.6f}", r.val_loss), r.tokens,
                       r.seconds);
  }
  return out;
}

}  // namespace miniinfer::train
