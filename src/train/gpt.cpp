// Whole-model forward and backward of MiniGPT, composed from ops.h in the spec's order.
#include "train/gpt.h"

#include <algorithm>
#include <cassert>

#include "base/error.h"

namespace miniinfer::train {

namespace {

template <typename Real>
void zero(std::vector<Real>& v) {
  std::fill(v.begin(), v.end(), Real(0));
}

size_t sz(long long n) { return static_cast<size_t>(n); }

// Checked even in release builds: a bad id would read or write outside tok_emb.
void check_ids(std::span<const int> ids, int V, const char* what) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= V)
      fail("train: {} token {} at index {} is outside the vocabulary of {}", what, ids[i], i, V);
}

}  // namespace

template <typename Real>
Params<Real> zero_params(const Config& c) {
  Params<Real> p;
  p.layers.resize(sz(c.n_layer));
  for_each_tensor(p, c, [](const std::string&, const std::vector<int64_t>& shape, std::vector<Real>& t) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    t.assign(sz(n), Real(0));
  });
  return p;
}

template <typename Real>
Params<Real> params_from_weights(const Weights& w, const Config& c) {
  Params<Real> p = zero_params<Real>(c);
  std::vector<std::span<const float>> sources;
  for_each_tensor(w, c, [&](const std::string&, const std::vector<int64_t>&, const std::vector<float>& t) {
    sources.emplace_back(t);
  });
  size_t i = 0;
  for_each_tensor(p, c, [&](const std::string& name, const std::vector<int64_t>&, std::vector<Real>& t) {
    const auto& src = sources[i++];
    if (src.size() != t.size())
      fail("train: tensor {} has {} values, the config needs {}", name, src.size(), t.size());
    std::copy(src.begin(), src.end(), t.begin());
  });
  return p;
}

template <typename Real>
Weights weights_from_params(const Params<Real>& p, const Config& c) {
  Weights w = make_weights(c);
  std::vector<std::span<const Real>> sources;
  for_each_tensor(p, c, [&](const std::string&, const std::vector<int64_t>&, const std::vector<Real>& t) {
    sources.emplace_back(t);
  });
  size_t i = 0;
  for_each_tensor(w, c, [&](const std::string&, const std::vector<int64_t>&, std::vector<float>& t) {
    const auto& src = sources[i++];
    std::transform(src.begin(), src.end(), t.begin(), [](Real x) { return static_cast<float>(x); });
  });
  return w;
}

template <typename Real>
std::vector<TensorRef<Real>> tensors_of(Params<Real>& p, const Config& c) {
  std::vector<TensorRef<Real>> out;
  for_each_tensor(p, c,
                  [&](const std::string& name, const std::vector<int64_t>& shape, std::vector<Real>& t) {
                    out.push_back(TensorRef<Real>{name, shape, std::span<Real>(t)});
                  });
  return out;
}

template <typename Real>
Gpt<Real>::Gpt(const Config& config, int B, int T)
    : params(zero_params<Real>(config)),
      grads(zero_params<Real>(config)),
      config_(config),
      max_B_(B),
      max_T_(T),
      rope_(make_rope_table<Real>(T, config.d_head(), config.rope_theta)) {
  config.validate();
  const size_t BT = sz(B) * T, C = sz(config.d_model), F = sz(config.d_ff), V = sz(config.vocab_size);
  const size_t NH = sz(config.n_head);
  acts_.encoded.resize(BT * C);
  acts_.layers.resize(sz(config.n_layer));
  for (auto& a : acts_.layers) {
    for (auto* v : {&a.ln1, &a.q, &a.k, &a.v, &a.atty, &a.res2, &a.ln2, &a.res3}) v->resize(BT * C);
    for (auto* v : {&a.ln1_mean, &a.ln1_rstd, &a.ln2_mean, &a.ln2_rstd}) v->resize(BT);
    a.att.resize(sz(B) * NH * T * T);
    a.fch.resize(BT * F);
    a.fch_gelu.resize(BT * F);
  }
  acts_.lnf.resize(BT * C);
  acts_.lnf_mean.resize(BT);
  acts_.lnf_rstd.resize(BT);
  acts_.logits.resize(BT * V);
  acts_.probs.resize(BT * V);
  acts_.losses.resize(BT);
  acts_.proj.resize(BT * C);
  auto& d = dacts_;
  d.dlogits.resize(BT * V);
  for (auto* v : {&d.dlnf, &d.dres_out, &d.dres_mid, &d.dres_in, &d.dproj, &d.dln, &d.datty, &d.dq, &d.dk,
                  &d.dv, &d.dqk_pre})
    v->resize(BT * C);
  d.dfch_gelu.resize(BT * F);
  d.dfch.resize(BT * F);
}

template <typename Real>
void Gpt<Real>::forward_to_logits(std::span<const int> inputs, int B, int T) {
  if (B <= 0 || T <= 0 || B > max_B_ || T > max_T_ || inputs.size() != sz(B) * T)
    fail("gpt forward: {} inputs for B = {}, T = {} (this model was sized for B <= {}, T <= {})", inputs.size(), B, T,
         max_B_, max_T_);
  const Config& c = config_;
  const int C = c.d_model, F = c.d_ff, NH = c.n_head, V = c.vocab_size;
  const size_t BT = sz(B) * T;
  check_ids(inputs, V, "input");
  B_ = B;
  T_ = T;
  inputs_.assign(inputs.begin(), inputs.end());
  auto& a = acts_;
  encoder_forward(a.encoded.data(), inputs_.data(), params.tok_emb.data(), B, T, C);
  const Real* residual = a.encoded.data();
  for (int l = 0; l < c.n_layer; ++l) {
    const auto& w = params.layers[sz(l)];
    auto& la = a.layers[sz(l)];
    layernorm_forward(la.ln1.data(), la.ln1_mean.data(), la.ln1_rstd.data(), residual, w.ln1_w.data(),
                      w.ln1_b.data(), B, T, C, c.ln_eps);
    matmul_forward(a.proj.data(), la.ln1.data(), w.wq.data(), w.bq.data(), B, T, C, C);
    rope_forward(la.q.data(), a.proj.data(), rope_.cos.data(), rope_.sin.data(), B, T, C, NH);
    matmul_forward(a.proj.data(), la.ln1.data(), w.wk.data(), w.bk.data(), B, T, C, C);
    rope_forward(la.k.data(), a.proj.data(), rope_.cos.data(), rope_.sin.data(), B, T, C, NH);
    matmul_forward(la.v.data(), la.ln1.data(), w.wv.data(), w.bv.data(), B, T, C, C);
    attention_forward(la.atty.data(), la.att.data(), la.q.data(), la.k.data(), la.v.data(), B, T, C, NH);
    matmul_forward(a.proj.data(), la.atty.data(), w.wo.data(), w.bo.data(), B, T, C, C);
    residual_forward(la.res2.data(), residual, a.proj.data(), BT * C);
    layernorm_forward(la.ln2.data(), la.ln2_mean.data(), la.ln2_rstd.data(), la.res2.data(), w.ln2_w.data(),
                      w.ln2_b.data(), B, T, C, c.ln_eps);
    matmul_forward(la.fch.data(), la.ln2.data(), w.w1.data(), w.b1.data(), B, T, C, F);
    gelu_forward(la.fch_gelu.data(), la.fch.data(), BT * F);
    matmul_forward(a.proj.data(), la.fch_gelu.data(), w.w2.data(), w.b2.data(), B, T, F, C);
    residual_forward(la.res3.data(), la.res2.data(), a.proj.data(), BT * C);
    residual = la.res3.data();
  }
  layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), residual, params.lnf_w.data(),
                    params.lnf_b.data(), B, T, C, c.ln_eps);
  matmul_forward(a.logits.data(), a.lnf.data(), params.tok_emb.data(), static_cast<const Real*>(nullptr), B,
                 T, C, V);
}

template <typename Real>
std::span<const Real> Gpt<Real>::logits(std::span<const int> inputs, int B, int T) {
  forward_to_logits(inputs, B, T);
  targets_.clear();
  return std::span<const Real>(acts_.logits.data(), sz(B) * T * config_.vocab_size);
}

template <typename Real>
Real Gpt<Real>::forward(std::span<const int> inputs, std::span<const int> targets, int B, int T) {
  if (targets.size() != inputs.size())
    fail("gpt forward: {} targets for {} inputs", targets.size(), inputs.size());
  forward_to_logits(inputs, B, T);
  targets_.assign(targets.begin(), targets.end());
  check_ids(targets, config_.vocab_size, "target");
  softmax_crossentropy_forward(acts_.probs.data(), acts_.losses.data(), acts_.logits.data(), targets_.data(),
                               B, T, config_.vocab_size);
  Real sum = 0;
  for (size_t i = 0; i < sz(B) * T; ++i) sum += acts_.losses[i];
  return sum / static_cast<Real>(sz(B) * T);
}

template <typename Real>
void Gpt<Real>::backward() {
  assert(!targets_.empty() && "backward needs a forward with targets");
  const Config& c = config_;
  const int B = B_, T = T_, C = c.d_model, F = c.d_ff, NH = c.n_head, V = c.vocab_size;
  const size_t BT = sz(B) * T;
  auto& a = acts_;
  auto& d = dacts_;
  for (auto& t : tensors_of(grads, c)) std::fill(t.data.begin(), t.data.end(), Real(0));
  for (auto* v : {&d.dlogits, &d.dlnf, &d.dres_out}) zero(*v);

  // The loss is the mean over B*T positions.
  const std::vector<Real> dlosses(BT, Real(1) / static_cast<Real>(BT));
  crossentropy_softmax_backward(d.dlogits.data(), dlosses.data(), a.probs.data(), targets_.data(), B, T, V);
  matmul_backward(d.dlnf.data(), grads.tok_emb.data(), static_cast<Real*>(nullptr), d.dlogits.data(),
                  a.lnf.data(), params.tok_emb.data(), B, T, C, V);
  const Real* last = c.n_layer > 0 ? a.layers.back().res3.data() : a.encoded.data();
  layernorm_backward(d.dres_out.data(), grads.lnf_w.data(), grads.lnf_b.data(), d.dlnf.data(), last,
                     params.lnf_w.data(), a.lnf_mean.data(), a.lnf_rstd.data(), B, T, C);

  for (int l = c.n_layer - 1; l >= 0; --l) {
    const auto& w = params.layers[sz(l)];
    auto& g = grads.layers[sz(l)];
    const auto& la = a.layers[sz(l)];
    const Real* residual = l == 0 ? a.encoded.data() : a.layers[sz(l) - 1].res3.data();
    for (auto* v : {&d.dres_mid, &d.dres_in, &d.dproj, &d.dfch_gelu, &d.dfch, &d.dln}) zero(*v);

    // res3 = res2 + fc_out(gelu(fc_in(ln2(res2))))
    residual_backward(d.dres_mid.data(), d.dproj.data(), d.dres_out.data(), BT * C);
    matmul_backward(d.dfch_gelu.data(), g.w2.data(), g.b2.data(), d.dproj.data(), la.fch_gelu.data(),
                    w.w2.data(), B, T, F, C);
    gelu_backward(d.dfch.data(), la.fch.data(), d.dfch_gelu.data(), BT * F);
    matmul_backward(d.dln.data(), g.w1.data(), g.b1.data(), d.dfch.data(), la.ln2.data(), w.w1.data(), B, T,
                    C, F);
    layernorm_backward(d.dres_mid.data(), g.ln2_w.data(), g.ln2_b.data(), d.dln.data(), la.res2.data(),
                       w.ln2_w.data(), la.ln2_mean.data(), la.ln2_rstd.data(), B, T, C);

    // res2 = residual + o_proj(attention(rope(q_proj(ln1)), rope(k_proj(ln1)), v_proj(ln1)))
    for (auto* v : {&d.dproj, &d.dln, &d.datty, &d.dq, &d.dk, &d.dv}) zero(*v);
    residual_backward(d.dres_in.data(), d.dproj.data(), d.dres_mid.data(), BT * C);
    matmul_backward(d.datty.data(), g.wo.data(), g.bo.data(), d.dproj.data(), la.atty.data(), w.wo.data(), B,
                    T, C, C);
    attention_backward(d.dq.data(), d.dk.data(), d.dv.data(), d.datty.data(), la.q.data(), la.k.data(),
                       la.v.data(), la.att.data(), B, T, C, NH);
    zero(d.dqk_pre);
    rope_backward(d.dqk_pre.data(), d.dq.data(), rope_.cos.data(), rope_.sin.data(), B, T, C, NH);
    matmul_backward(d.dln.data(), g.wq.data(), g.bq.data(), d.dqk_pre.data(), la.ln1.data(), w.wq.data(), B,
                    T, C, C);
    zero(d.dqk_pre);
    rope_backward(d.dqk_pre.data(), d.dk.data(), rope_.cos.data(), rope_.sin.data(), B, T, C, NH);
    matmul_backward(d.dln.data(), g.wk.data(), g.bk.data(), d.dqk_pre.data(), la.ln1.data(), w.wk.data(), B,
                    T, C, C);
    matmul_backward(d.dln.data(), g.wv.data(), g.bv.data(), d.dv.data(), la.ln1.data(), w.wv.data(), B, T, C,
                    C);
    layernorm_backward(d.dres_in.data(), g.ln1_w.data(), g.ln1_b.data(), d.dln.data(), residual,
                       w.ln1_w.data(), la.ln1_mean.data(), la.ln1_rstd.data(), B, T, C);
    std::swap(d.dres_out, d.dres_in);
  }
  encoder_backward(grads.tok_emb.data(), d.dres_out.data(), inputs_.data(), B, T, C);
}

template class Gpt<float>;
template class Gpt<double>;
template Params<float> zero_params<float>(const Config&);
template Params<double> zero_params<double>(const Config&);
template Params<float> params_from_weights<float>(const Weights&, const Config&);
template Params<double> params_from_weights<double>(const Weights&, const Config&);
template Weights weights_from_params<float>(const Params<float>&, const Config&);
template Weights weights_from_params<double>(const Params<double>&, const Config&);
template std::vector<TensorRef<float>> tensors_of<float>(Params<float>&, const Config&);
template std::vector<TensorRef<double>> tensors_of<double>(Params<double>&, const Config&);

}  // namespace miniinfer::train
