// MiniGPT as a trainable function: parameters, the activations forward keeps for backward,
// and the whole-model forward (mean cross-entropy) and backward (gradient of every tensor).
// Built from the ops of ops.h; templated on the scalar (float to train, double to check).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/ops.h"

namespace miniinfer::train {

// Same field names as LayerWeights / Weights, so model.h's for_each_tensor walks these too.
template <typename Real>
struct LayerParams {
  std::vector<Real> ln1_w, ln1_b;  // (C), (C)
  std::vector<Real> wq, bq;        // (C, C), (C)
  std::vector<Real> wk, bk;        // (C, C), (C)
  std::vector<Real> wv, bv;        // (C, C), (C)
  std::vector<Real> wo, bo;        // (C, C), (C)
  std::vector<Real> ln2_w, ln2_b;  // (C), (C)
  std::vector<Real> w1, b1;        // (F, C), (F)
  std::vector<Real> w2, b2;        // (C, F), (C)
};

template <typename Real>
struct Params {
  std::vector<Real> tok_emb;              // (V, C), also the output head
  std::vector<LayerParams<Real>> layers;  // L
  std::vector<Real> lnf_w, lnf_b;         // (C), (C)
};

// One tensor of a Params, by its file name; for code that zips parameters, gradients and
// optimizer moments tensor by tensor.
template <typename Real>
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  std::span<Real> data;
};

template <typename Real>
Params<Real> zero_params(const Config& c);
template <typename Real>
Params<Real> params_from_weights(const Weights& w, const Config& c);
template <typename Real>
Weights weights_from_params(const Params<Real>& p, const Config& c);  // rounds to float
template <typename Real>
std::vector<TensorRef<Real>> tensors_of(Params<Real>& p, const Config& c);  // in file order

template <typename Real>
struct LayerActs {
  std::vector<Real> ln1;                 // (B, T, C)
  std::vector<Real> ln1_mean, ln1_rstd;  // (B, T)
  std::vector<Real> q, k, v;             // (B, T, C); q and k after RoPE
  std::vector<Real> att;                 // (B, NH, T, T) softmax probabilities
  std::vector<Real> atty;                // (B, T, C) attention output, o_proj input
  std::vector<Real> res2;                // (B, T, C) residual after attention
  std::vector<Real> ln2;                 // (B, T, C)
  std::vector<Real> ln2_mean, ln2_rstd;  // (B, T)
  std::vector<Real> fch;                 // (B, T, F) fc_in output, GELU input
  std::vector<Real> fch_gelu;            // (B, T, F)
  std::vector<Real> res3;                // (B, T, C) layer output
};

template <typename Real>
struct Acts {
  std::vector<Real> encoded;             // (B, T, C)
  std::vector<LayerActs<Real>> layers;   // L
  std::vector<Real> lnf;                 // (B, T, C)
  std::vector<Real> lnf_mean, lnf_rstd;  // (B, T)
  std::vector<Real> logits;              // (B, T, V)
  std::vector<Real> probs;               // (B, T, V)
  std::vector<Real> losses;              // (B, T)
  std::vector<Real> proj;                // (B, T, C) scratch: a projection before its residual/RoPE
};

// Gradients of the activations; layer-local ones are scratch reused by every layer.
template <typename Real>
struct ActGrads {
  std::vector<Real> dlogits;                      // (B, T, V)
  std::vector<Real> dlnf;                         // (B, T, C)
  std::vector<Real> dres_out, dres_mid, dres_in;  // (B, T, C) residual stream around a layer
  std::vector<Real> dproj;                        // (B, T, C) into o_proj / fc_out
  std::vector<Real> dfch_gelu, dfch;              // (B, T, F)
  std::vector<Real> dln;                          // (B, T, C) into ln1 / ln2
  std::vector<Real> datty;                        // (B, T, C)
  std::vector<Real> dq, dk, dv;                   // (B, T, C); dq, dk after RoPE
  std::vector<Real> dqk_pre;                      // (B, T, C) dq or dk before RoPE
};

// A model with buffers for batches of up to B sequences of up to T tokens.
template <typename Real>
class Gpt {
 public:
  Gpt(const Config& config, int B, int T);

  // Mean cross-entropy of predicting targets[b,t] from inputs[b,0..t]; both (B, T) row-major.
  // Keeps the activations for backward(). Positions restart at 0 in every row.
  Real forward(std::span<const int> inputs, std::span<const int> targets, int B, int T);
  // Logits (B, T, V) of inputs, no loss. Valid until the next forward.
  std::span<const Real> logits(std::span<const int> inputs, int B, int T);
  // Sets grads to the gradient of the last forward's mean loss.
  void backward();

  const Config& config() const { return config_; }
  Params<Real> params;
  Params<Real> grads;

 private:
  void forward_to_logits(std::span<const int> inputs, int B, int T);

  Config config_;
  int max_B_, max_T_;
  int B_ = 0, T_ = 0;  // shape of the last forward
  RopeTable<Real> rope_;
  Acts<Real> acts_;
  ActGrads<Real> dacts_;
  std::vector<int> inputs_, targets_;
};

extern template class Gpt<float>;
extern template class Gpt<double>;

}  // namespace miniinfer::train
