// for_each_tensor, out of line so model.h stays a table of contents.
#pragma once
#include <string>
#include <vector>

namespace miniinfer {

template <typename W, typename F>
void for_each_tensor(W& w, const Config& c, F&& visit) {
  const int V = c.vocab_size, D = c.d_model, F_ = c.d_ff;
  using Shape = std::vector<int64_t>;
  visit(std::string("tok_emb.weight"), Shape{V, D}, w.tok_emb);
  for (int l = 0; l < c.n_layer; ++l) {
    auto& lw = w.layers[static_cast<size_t>(l)];
    const std::string p = "blocks." + std::to_string(l) + ".";
    visit(p + "ln1.weight", Shape{D}, lw.ln1_w);
    visit(p + "ln1.bias", Shape{D}, lw.ln1_b);
    visit(p + "attn.q_proj.weight", Shape{D, D}, lw.wq);
    visit(p + "attn.q_proj.bias", Shape{D}, lw.bq);
    visit(p + "attn.k_proj.weight", Shape{D, D}, lw.wk);
    visit(p + "attn.k_proj.bias", Shape{D}, lw.bk);
    visit(p + "attn.v_proj.weight", Shape{D, D}, lw.wv);
    visit(p + "attn.v_proj.bias", Shape{D}, lw.bv);
    visit(p + "attn.o_proj.weight", Shape{D, D}, lw.wo);
    visit(p + "attn.o_proj.bias", Shape{D}, lw.bo);
    visit(p + "ln2.weight", Shape{D}, lw.ln2_w);
    visit(p + "ln2.bias", Shape{D}, lw.ln2_b);
    visit(p + "mlp.fc_in.weight", Shape{F_, D}, lw.w1);
    visit(p + "mlp.fc_in.bias", Shape{F_}, lw.b1);
    visit(p + "mlp.fc_out.weight", Shape{D, F_}, lw.w2);
    visit(p + "mlp.fc_out.bias", Shape{D}, lw.b2);
  }
  visit(std::string("ln_f.weight"), Shape{D}, w.lnf_w);
  visit(std::string("ln_f.bias"), Shape{D}, w.lnf_b);
}

}  // namespace miniinfer
