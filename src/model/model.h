// MiniGPT's config and weights, as plain structs of named buffers. The layout is the file's
// (PyTorch nn.Linear [out, in], row-major), see ../shared/spec/minigpt.md; kernels that want
// another layout re-lay these once when an engine is built.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace miniinfer {

struct Config {
  int vocab_size = 0;     // V
  int d_model = 64;       // D
  int n_layer = 4;        // L
  int n_head = 4;         // H; d_head = D / H, even
  int d_ff = 256;         // F, default 4D
  double rope_theta = 10000.0;
  double ln_eps = 1e-5;
  int max_seq_len = 512;  // the most positions a cache may hold
  int train_ctx = 64;     // window length used in training

  // Upper bounds, so that a crafted config can neither overflow an int product (V * D, F * D)
  // nor ask for an absurd allocation: an engine's KV cache alone holds 2 * L * B *
  // max_seq_len * D floats, and max_seq_len is the one size no tensor in the file pays for.
  static constexpr int kMaxVocab = 1 << 16;
  static constexpr int kMaxWidth = 1 << 14;   // d_model and d_ff
  static constexpr int kMaxLayers = 256;
  static constexpr int kMaxSeqLen = 1 << 14;  // max_seq_len and train_ctx

  int d_head() const { return d_model / n_head; }
  // Throws Error naming the first bad field (non-positive or over-limit size, odd d_head,
  // D % H != 0, ...).
  void validate() const;
};

struct LayerWeights {
  std::vector<float> ln1_w, ln1_b;  // (D), (D)
  std::vector<float> wq, bq;        // (D, D), (D)
  std::vector<float> wk, bk;        // (D, D), (D)
  std::vector<float> wv, bv;        // (D, D), (D)
  std::vector<float> wo, bo;        // (D, D), (D)
  std::vector<float> ln2_w, ln2_b;  // (D), (D)
  std::vector<float> w1, b1;        // fc_in: (F, D), (F)
  std::vector<float> w2, b2;        // fc_out: (D, F), (D)
};

struct Weights {
  std::vector<float> tok_emb;        // (V, D), also the tied output head
  std::vector<LayerWeights> layers;  // L of them
  std::vector<float> lnf_w, lnf_b;   // (D), (D)
};

struct Model {
  Config config;
  Weights weights;
  std::vector<std::string> vocab;  // token strings in id order; vocab.size() == V
};

// Throws Error naming the first tensor of `weights` whose size is not the one its shape under
// `config` asks for, or that holds a NaN or infinity ("tensor blocks.0.attn.q_proj.weight:
// value 17 is nan"). A model with non-finite weights computes NaN logits everywhere, and greedy
// decoding would quietly turn them into token 0.
void check_weights(const Weights& weights, const Config& config);

// Zero-filled weights of the right shapes for `config` (LayerNorm weights too: callers fill).
Weights make_weights(const Config& config);

// GPT-2 small's shape (`minigpt init --preset gpt2-small`, the scale benchmarks): vocab_size
// 50257, d_model 768, n_layer 12, n_head 12, d_ff 3072, max_seq_len and train_ctx 1024.
Config gpt2_small_config();

// A randomly initialized model in the real shapes: N(0, 0.02) matrices (Irwin-Hall normal
// from our own Rng), zero biases, LayerNorm weight 1 and bias 0; output projections
// (o_proj, fc_out) scaled by 1/sqrt(2L) as in GPT-2. Deterministic in (config, seed).
Model init_model(const Config& config, std::vector<std::string> vocab, uint64_t seed);

// Visits every tensor with its file name and shape, in file order; the one place that knows
// the spec's names, shared by the reader, the writer, the trainer and the tests.
template <typename W, typename F>
void for_each_tensor(W& weights, const Config& c, F&& visit);

}  // namespace miniinfer

#include "model/model_inl.h"
