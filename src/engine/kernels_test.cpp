// Each kernel against its double-precision reference, with an error bound stated per op, and
// the invariance properties the engine's byte equality rests on: any subset of rows, at any
// place in the batch and any pointer offset, gives the bytes of computing all rows together.
#include "engine/kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include <catch2/catch.hpp>

#include "engine/engine_test_util.h"

using namespace miniinfer;
using namespace miniinfer::kernels;
using namespace miniinfer::testing;

namespace {

constexpr double kU = 1.0 / 16777216.0;  // unit roundoff of float, 2^-24
double gamma(int n) { return n * kU / (1.0 - n * kU); }

KvView cv(const float* rows, int ld) { return contiguous_view(rows, static_cast<size_t>(ld)); }

// The n rows (ld floats apart) of `rows` scattered over blocks of `block` slots in a pool, the
// blocks in a shuffled order with two spare blocks among them; every float no row holds is NaN,
// so a read through a wrong table entry or offset poisons the output.
struct PagedRows {
  std::vector<float> pool;
  std::vector<int> table;
  KvView view;
  PagedRows(const std::vector<float>& rows, int n, int ld, int block, Rng& rng) {
    const int blocks = (n + block - 1) / block, P = blocks + 2;
    std::vector<int> order(static_cast<size_t>(P));
    for (int i = 0; i < P; ++i) order[static_cast<size_t>(i)] = i;
    for (int i = P - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[rng.below(static_cast<uint32_t>(i + 1))]);
    table.assign(order.begin(), order.begin() + blocks);
    pool.assign(static_cast<size_t>(P) * block * ld, std::numeric_limits<float>::quiet_NaN());
    for (int j = 0; j < n; ++j)
      std::copy_n(rows.data() + static_cast<size_t>(j) * ld, ld,
                  pool.data() + (static_cast<size_t>(table[static_cast<size_t>(j / block)]) * block + j % block) * ld);
    view = KvView{pool.data(), table.data(), std::countr_zero(static_cast<unsigned>(block)), static_cast<size_t>(ld)};
  }
};

std::vector<float> random_floats(Rng& rng, size_t n, float scale = 1.0f) {
  std::vector<float> x(n);
  for (float& v : x) v = scale * rng.normal();
  return x;
}

// A copy of `x` starting `offset` floats into a fresh buffer: misaligned by offset*4 bytes.
struct Shifted {
  std::vector<float> buf;
  float* p;
  Shifted(std::span<const float> x, int offset) : buf(x.size() + 16, std::numeric_limits<float>::quiet_NaN()) {
    p = buf.data() + offset;
    std::copy(x.begin(), x.end(), p);
  }
};

const int kSizes[] = {1, 2, 3, 7, 8, 9, 16, 17, 63, 64, 65};

// The matmul widths this CPU runs: 8 lanes, and 16 where the build and CPU have AVX-512F. A
// test that loops over them restores the widest when it ends, passing or not.
std::vector<int> matmul_widths() {
  if (matmul_widest() == 16) return {8, 16};
  WARN("this CPU or build runs only the 8-lane matmul tiles: the 16-lane ones go unchecked here");
  return {8};
}
struct RestoreMatmulWidth {
  ~RestoreMatmulWidth() { set_matmul_width(0); }
};

// The documented sequence, written plainly: one scalar std::fma per term, k in order from the
// bias. The kernel must give these bytes for every element, whether it falls in a vector lane
// or a tail, in a tile of 4, 3, 2 or 1 rows, in any column group, at 8 or 16 lanes: that is
// what makes an element's bytes independent of M.
void matmul_plain(float* out, const float* inp, const float* weight, const float* bias, int T, int C, int OC) {
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < OC; ++n) {
      float acc = bias ? bias[n] : 0.0f;
      for (int k = 0; k < C; ++k)
        acc = std::fma(inp[static_cast<size_t>(t) * C + k], weight[static_cast<size_t>(n) * C + k], acc);
      out[static_cast<size_t>(t) * OC + n] = acc;
    }
}

// attention_forward's documented sequence, scalar: fma chains for scores and the weighted sum,
// the softmax sum as 8 lane-strided partial sums combined pairwise, then the tail in order.
void attention_plain(float* out, float* probs, const float* q, const float* k, const float* v, int n, int d_head,
                     int ld, float scale) {
  for (int j = 0; j < n; ++j) {
    float acc = 0.0f;
    for (int d = 0; d < d_head; ++d) acc = std::fma(q[d], k[static_cast<size_t>(j) * ld + d], acc);
    probs[j] = acc * scale;
  }
  float max = probs[0];
  for (int j = 1; j < n; ++j) max = std::max(max, probs[j]);
  for (int j = 0; j < n; ++j) probs[j] = exp_f(probs[j] - max);
  float lane[8] = {};
  const int n8 = n / 8 * 8;
  for (int j = 0; j < n8; ++j) lane[j % 8] = lane[j % 8] + probs[j];
  float sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  for (int j = n8; j < n; ++j) sum = sum + probs[j];
  for (int j = 0; j < n; ++j) probs[j] = probs[j] / sum;
  for (int d = 0; d < d_head; ++d) {
    float acc = 0.0f;
    for (int j = 0; j < n; ++j) acc = std::fma(probs[j], v[static_cast<size_t>(j) * ld + d], acc);
    out[d] = acc;
  }
}


}  // namespace

TEST_CASE("matmul is within gamma(C+1) * sum|terms| of the double reference") {
  Rng rng(1);
  double worst = 0.0;  // observed error / bound
  for (int T : {1, 3, 5, 17}) {
    for (int C : kSizes) {
      for (int OC : {1, 3, 8, 17, 65, 130}) {
        const auto x = random_floats(rng, static_cast<size_t>(T) * C);
        const auto w = random_floats(rng, static_cast<size_t>(OC) * C);
        const auto b = random_floats(rng, static_cast<size_t>(OC));
        const auto packed = pack_weight(w, C, OC);
        std::vector<float> out(static_cast<size_t>(T) * OC);
        std::vector<double> ref(out.size());
        matmul_forward(out.data(), x.data(), packed.data(), b.data(), T, C, OC);
        matmul_reference(ref.data(), x.data(), w.data(), b.data(), T, C, OC);
        for (int t = 0; t < T; ++t)
          for (int n = 0; n < OC; ++n) {
            double mag = std::abs(b[static_cast<size_t>(n)]);
            for (int k = 0; k < C; ++k)
              mag += std::abs(static_cast<double>(x[static_cast<size_t>(t * C + k)]) * w[static_cast<size_t>(n * C + k)]);
            const double err = std::abs(out[static_cast<size_t>(t * OC + n)] - ref[static_cast<size_t>(t * OC + n)]);
            const double bound = gamma(C + 1) * mag;
            worst = std::max(worst, err / bound);
            if (err > bound) FAIL_CHECK("T=" << T << " C=" << C << " OC=" << OC << " [" << t << "][" << n << "] error " << err << " > bound " << bound);
          }
      }
    }
  }
  WARN("matmul: worst error / bound = " << worst);
}

TEST_CASE("matmul rows give the same bytes alone, in any subset, at any offset, scattered or not") {
  RestoreMatmulWidth restore;
  for (const int width : matmul_widths()) {
    set_matmul_width(width);
    for (uint64_t seed = 1; seed <= 40; ++seed) {
      Rng rng(seed);
      const int T = kSizes[rng.below(std::size(kSizes))] + static_cast<int>(rng.below(5));
      const int C = kSizes[rng.below(std::size(kSizes))];
      const int OC = kSizes[rng.below(std::size(kSizes))] * (1 + static_cast<int>(rng.below(3)));
      const bool bias = rng.below(4) != 0;
      INFO("width " << width << " seed " << seed << " T=" << T << " C=" << C << " OC=" << OC << " bias "
                    << bias);
      const auto x = random_floats(rng, static_cast<size_t>(T) * C);
      const auto w = random_floats(rng, static_cast<size_t>(OC) * C);
      const auto b = random_floats(rng, static_cast<size_t>(OC));
      const auto packed = pack_weight(w, C, OC);
      std::vector<float> all(static_cast<size_t>(T) * OC);
      matmul_forward(all.data(), x.data(), packed.data(), bias ? b.data() : nullptr, T, C, OC);

      // A random subset of rows, every buffer misaligned by its own offset.
      const int i0 = static_cast<int>(rng.below(static_cast<uint32_t>(T)));
      const int n = 1 + static_cast<int>(rng.below(static_cast<uint32_t>(T - i0)));
      Shifted sx{std::span<const float>(x).subspan(static_cast<size_t>(i0) * C, static_cast<size_t>(n) * C),
                 static_cast<int>(rng.below(8))};
      Shifted sw(packed, static_cast<int>(rng.below(8)));
      Shifted sb(b, static_cast<int>(rng.below(8)));
      Shifted so(std::vector<float>(static_cast<size_t>(n) * OC), static_cast<int>(rng.below(8)));
      matmul_forward(so.p, sx.p, sw.p, bias ? sb.p : nullptr, n, C, OC);
      CHECK(same_bytes({so.p, static_cast<size_t>(n) * OC},
                       std::span(all).subspan(static_cast<size_t>(i0) * OC, static_cast<size_t>(n) * OC)));

      // Every row alone (the single-row tile) and rows scattered in reverse order.
      std::vector<float> one(static_cast<size_t>(OC)), scattered(all.size());
      std::vector<float*> rows(static_cast<size_t>(T));
      for (int t = 0; t < T; ++t) {
        matmul_forward(one.data(), x.data() + static_cast<size_t>(t) * C, packed.data(),
                       bias ? b.data() : nullptr, 1, C, OC);
        CHECK(same_bytes(one, std::span(all).subspan(static_cast<size_t>(t) * OC, static_cast<size_t>(OC))));
        rows[static_cast<size_t>(t)] = scattered.data() + static_cast<size_t>(T - 1 - t) * OC;
      }
      matmul_forward_rows(rows.data(), x.data(), packed.data(), bias ? b.data() : nullptr, T, C, OC);
      for (int t = 0; t < T; ++t)
        CHECK(same_bytes({rows[static_cast<size_t>(t)], static_cast<size_t>(OC)},
                         std::span(all).subspan(static_cast<size_t>(t) * OC, static_cast<size_t>(OC))));
    }
  }
}

TEST_CASE("matmul gives the plain scalar fma chain's bytes for every M from 1 to 19 and every column tail") {
  RestoreMatmulWidth restore;
  int checked = 0;
  for (const int width : matmul_widths()) {
    set_matmul_width(width);
    Rng rng(11);
    // Column counts cover every tail of an 8- and a 16-lane vector and of a 64-column group, and
    // one, two and three whole groups; C = 129 and 300 run k in blocks of 64 (a group with
    // several tiles carries its partial sums over in out).
    for (int C : {1, 3, 8, 17, 64, 129, 300}) {
      for (int OC : {1, 5, 8, 13, 24, 31, 64, 100, 128, 137, 192}) {
        const int T = 19;
        const auto x = random_floats(rng, static_cast<size_t>(T) * C);
        const auto w = random_floats(rng, static_cast<size_t>(OC) * C);
        const auto b = random_floats(rng, static_cast<size_t>(OC));
        const auto packed = pack_weight(w, C, OC);
        std::vector<float> plain(static_cast<size_t>(T) * OC);
        matmul_plain(plain.data(), x.data(), w.data(), b.data(), T, C, OC);
        for (int M = 1; M <= T; ++M) {
          std::vector<float> out(static_cast<size_t>(M) * OC);
          matmul_forward(out.data(), x.data(), packed.data(), b.data(), M, C, OC);
          INFO("width " << width << " M=" << M << " C=" << C << " OC=" << OC);
          CHECK(same_bytes(out, std::span(plain).first(out.size())));
          ++checked;
        }
      }
    }
  }
  WARN("matmul: " << checked << " (M, C, OC) shapes equal the scalar fma chain byte for byte");
}

TEST_CASE("attention gives the plain scalar sequence's bytes, for slot counts and head sizes with and without tails") {
  Rng rng(12);
  int checked = 0;
  for (int d_head : {2, 6, 8, 16, 24, 40, 64}) {
    for (int n : {1, 2, 7, 8, 9, 15, 16, 31, 32, 33, 40, 77}) {
      const int ld = d_head + 8;
      const auto q = random_floats(rng, static_cast<size_t>(d_head));
      const auto k = random_floats(rng, static_cast<size_t>(n) * ld);
      const auto v = random_floats(rng, static_cast<size_t>(n) * ld);
      const float scale = 1.0f / std::sqrt(static_cast<float>(d_head));
      std::vector<float> out(static_cast<size_t>(d_head)), probs(static_cast<size_t>(n));
      std::vector<float> pout(out.size()), pprobs(probs.size());
      attention_forward(out.data(), probs.data(), q.data(), cv(k.data(), ld), cv(v.data(), ld), n, d_head, scale);
      attention_plain(pout.data(), pprobs.data(), q.data(), k.data(), v.data(), n, d_head, ld, scale);
      INFO("d_head " << d_head << " n " << n);
      CHECK(same_bytes(probs, pprobs));
      CHECK(same_bytes(out, pout));
      ++checked;
    }
  }
  WARN("attention: " << checked << " (d_head, n) shapes equal the scalar sequence byte for byte");
}

TEST_CASE("causal attention over a block of rows gives each row the bytes of attention_forward alone") {
  int checked = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    Rng rng(seed);
    const int d_head = 2 * (1 + static_cast<int>(rng.below(32)));
    const int p0 = rng.below(3) == 0 ? 0 : static_cast<int>(rng.below(70));
    const int rows = 1 + static_cast<int>(rng.below(40));
    const int N = p0 + rows;
    const int ld = d_head * (1 + static_cast<int>(rng.below(3)));
    const int ld_out = d_head + static_cast<int>(rng.below(5));
    const auto q = random_floats(rng, static_cast<size_t>(rows) * ld);
    const auto k = random_floats(rng, static_cast<size_t>(N) * ld);
    const auto v = random_floats(rng, static_cast<size_t>(N) * ld);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d_head));
    std::vector<float> scratch(attention_causal_scratch(N, d_head), std::numeric_limits<float>::quiet_NaN());
    std::vector<float> out(static_cast<size_t>(rows) * ld_out, 0.0f);
    attention_forward_causal(out.data(), ld_out, scratch.data(), q.data(), ld, cv(k.data(), ld), cv(v.data(), ld), p0,
                             rows, d_head, scale);
    std::vector<float> one(static_cast<size_t>(d_head)), probs(static_cast<size_t>(N));
    for (int i = 0; i < rows; ++i) {
      attention_forward(one.data(), probs.data(), q.data() + static_cast<size_t>(i) * ld, cv(k.data(), ld),
                        cv(v.data(), ld), p0 + i + 1, d_head, scale);
      INFO("seed " << seed << " d_head " << d_head << " p0 " << p0 << " rows " << rows << " row " << i);
      CHECK(same_bytes(one, std::span(out).subspan(static_cast<size_t>(i) * ld_out, static_cast<size_t>(d_head))));
      ++checked;
    }
  }
  WARN("causal attention: " << checked << " rows equal their one-row call byte for byte");
}

TEST_CASE("attention over all heads of a row at once gives each head the bytes of attention_forward alone") {
  Rng rng(13);
  int checked = 0;
  for (int H : {1, 2, 3, 4, 8}) {
    for (int d_head : {2, 6, 8, 16, 24, 64}) {
      const int n = 1 + static_cast<int>(rng.below(90));
      const int D = H * d_head, ld = D + 8 * static_cast<int>(rng.below(2));
      const auto q = random_floats(rng, static_cast<size_t>(D));
      const auto k = random_floats(rng, static_cast<size_t>(n) * ld);
      const auto v = random_floats(rng, static_cast<size_t>(n) * ld);
      const float scale = 1.0f / std::sqrt(static_cast<float>(d_head));
      const int probs_ld = n + 3;
      std::vector<float> out(static_cast<size_t>(D)), probs(static_cast<size_t>(H) * probs_ld);
      attention_forward_heads(out.data(), probs.data(), probs_ld, q.data(), cv(k.data(), ld), cv(v.data(), ld), n, H,
                              d_head, scale);
      std::vector<float> one(static_cast<size_t>(d_head)), p(static_cast<size_t>(n));
      for (int h = 0; h < H; ++h) {
        const size_t off = static_cast<size_t>(h) * d_head;
        attention_forward(one.data(), p.data(), q.data() + off, cv(k.data() + off, ld), cv(v.data() + off, ld), n, d_head,
                          scale);
        INFO("H " << H << " d_head " << d_head << " n " << n << " head " << h);
        CHECK(same_bytes(one, std::span(out).subspan(off, static_cast<size_t>(d_head))));
        CHECK(same_bytes(p, std::span(probs).subspan(static_cast<size_t>(h) * probs_ld, static_cast<size_t>(n))));
        ++checked;
      }
    }
  }
  WARN("attention over heads: " << checked << " heads equal their one-head call byte for byte");
}

TEST_CASE("every attention kernel reads a paged view over shuffled blocks to the contiguous view's bytes") {
  int checked = 0;
  for (int block : {1, 2, 4, 8, 16}) {
    for (uint64_t seed = 1; seed <= 12; ++seed) {
      Rng rng(seed * 31 + static_cast<uint64_t>(block));
      const int H = 1 + static_cast<int>(rng.below(4));
      const int d_head = seed % 3 == 0 ? 6 : 8 * (1 + static_cast<int>(rng.below(4)));  // with and without tails
      const int D = H * d_head;
      const int p0 = static_cast<int>(rng.below(40));
      const int rows = 1 + static_cast<int>(rng.below(24));
      const int n = p0 + rows;
      const auto q = random_floats(rng, static_cast<size_t>(rows) * D);
      const auto k = random_floats(rng, static_cast<size_t>(n) * D);
      const auto v = random_floats(rng, static_cast<size_t>(n) * D);
      const PagedRows pk(k, n, D, block, rng), pv(v, n, D, block, rng);
      const KvView ck = cv(k.data(), D), cvv = cv(v.data(), D);
      const float scale = 1.0f / std::sqrt(static_cast<float>(d_head));
      INFO("block " << block << " seed " << seed << " H " << H << " d_head " << d_head << " n " << n);
      const size_t uD = static_cast<size_t>(D), udh = static_cast<size_t>(d_head), un = static_cast<size_t>(n);
      // attention_scores, attention_forward and the fp64 kernel, head 1 (or 0) of the last row.
      const size_t off = static_cast<size_t>(H - 1) * udh;
      const float* qr = q.data() + static_cast<size_t>(rows - 1) * uD + off;
      std::vector<float> a(un), b(un);
      attention_scores(a.data(), qr, ck.at(off), n, d_head, scale);
      attention_scores(b.data(), qr, pk.view.at(off), n, d_head, scale);
      CHECK(same_bytes(a, b));
      std::vector<float> oa(udh), ob(udh);
      attention_forward(oa.data(), a.data(), qr, ck.at(off), cvv.at(off), n, d_head, scale);
      attention_forward(ob.data(), b.data(), qr, pk.view.at(off), pv.view.at(off), n, d_head, scale);
      CHECK(same_bytes(oa, ob));
      CHECK(same_bytes(a, b));
      attention_forward_f64(oa.data(), a.data(), qr, ck.at(off), cvv.at(off), n, d_head, scale);
      attention_forward_f64(ob.data(), b.data(), qr, pk.view.at(off), pv.view.at(off), n, d_head, scale);
      CHECK(same_bytes(oa, ob));
      // All heads of the last row at once.
      std::vector<float> ha(uD), hb(uD), pa(static_cast<size_t>(H) * un), pb(pa.size());
      attention_forward_heads(ha.data(), pa.data(), n, q.data() + static_cast<size_t>(rows - 1) * uD, ck, cvv, n, H,
                              d_head, scale);
      attention_forward_heads(hb.data(), pb.data(), n, q.data() + static_cast<size_t>(rows - 1) * uD, pk.view, pv.view,
                              n, H, d_head, scale);
      CHECK(same_bytes(ha, hb));
      CHECK(same_bytes(pa, pb));
      // The causal block kernel, head by head, including its packing of the keys.
      std::vector<float> ca(static_cast<size_t>(rows) * uD), cb(ca.size());
      std::vector<float> scratch(attention_causal_scratch(n, d_head));
      for (int h = 0; h < H; ++h) {
        const size_t ho = static_cast<size_t>(h) * udh;
        attention_forward_causal(ca.data() + ho, D, scratch.data(), q.data() + ho, D, ck.at(ho), cvv.at(ho), p0, rows,
                                 d_head, scale);
        attention_forward_causal(cb.data() + ho, D, scratch.data(), q.data() + ho, D, pk.view.at(ho), pv.view.at(ho), p0,
                                 rows, d_head, scale);
      }
      CHECK(same_bytes(ca, cb));
      ++checked;
    }
  }
  WARN("paged views: " << checked << " cases x 5 kernels equal the contiguous view byte for byte");
}

TEST_CASE("layernorm is within (2C+16)u of the reference, scaled by |w|(|xhat|+1)+|b|, and rows are independent") {
  // Mean and variance are C-term sums (error up to C u each, relative to the row's scale), then
  // sqrt, a division and three pointwise ops: (2C + 16) u covers it.
  double worst = 0.0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Rng rng(seed);
    const int T = 1 + static_cast<int>(rng.below(20)), C = kSizes[rng.below(std::size(kSizes))] + 1;
    const float shift = 3.0f * rng.normal();  // a non-zero mean exercises the centering
    auto x = random_floats(rng, static_cast<size_t>(T) * C, 2.0f);
    for (float& v : x) v += shift;
    const auto w = random_floats(rng, static_cast<size_t>(C)), b = random_floats(rng, static_cast<size_t>(C));
    std::vector<float> out(x.size());
    std::vector<double> ref(x.size());
    layernorm_forward(out.data(), x.data(), w.data(), b.data(), 1e-5f, T, C);
    layernorm_reference(ref.data(), x.data(), w.data(), b.data(), 1e-5f, T, C);
    INFO("seed " << seed << " T=" << T << " C=" << C);
    for (size_t i = 0; i < out.size(); ++i) {
      const size_t ci = i % static_cast<size_t>(C);
      const double xhat = w[ci] != 0.0f ? (ref[i] - b[ci]) / w[ci] : 0.0;
      const double bound = (2.0 * C + 16.0) * kU * (std::abs(w[ci]) * (std::abs(xhat) + 1.0) + std::abs(b[ci]));
      worst = std::max(worst, std::abs(out[i] - ref[i]) / bound);
      CHECK(std::abs(out[i] - ref[i]) <= bound);
    }
    const int i0 = static_cast<int>(rng.below(static_cast<uint32_t>(T)));
    Shifted sx{std::span<const float>(x).subspan(static_cast<size_t>(i0) * C, static_cast<size_t>(C)), 1 + static_cast<int>(rng.below(7))};
    Shifted so(std::vector<float>(static_cast<size_t>(C)), static_cast<int>(rng.below(8)));
    layernorm_forward(so.p, sx.p, w.data(), b.data(), 1e-5f, 1, C);
    CHECK(same_bytes({so.p, static_cast<size_t>(C)}, std::span(out).subspan(static_cast<size_t>(i0) * C, static_cast<size_t>(C))));
  }
  WARN("layernorm: worst error / bound = " << worst);
}

TEST_CASE("rope matches the double reference within 4u(|x_i|+|x_i+half|) at every position") {
  // Two products and one add or subtract, with cos/sin each rounded once from double: 4u.
  for (int d_head : {2, 4, 8, 16, 24, 64}) {
    const RopeTable table = make_rope_table(512, d_head, 10000.0);
    Rng rng(static_cast<uint64_t>(d_head));
    for (int pos : {0, 1, 2, 17, 100, 255, 511}) {
      const int H = 3;
      const auto x = random_floats(rng, static_cast<size_t>(H) * d_head);
      std::vector<float> y = x;
      std::vector<double> ref(x.begin(), x.end());
      rope_forward(y.data(), table.cos_at(pos), table.sin_at(pos), H, d_head);
      rope_reference(ref.data(), pos, H, d_head, 10000.0);
      const int half = d_head / 2;
      for (size_t i = 0; i < y.size(); ++i) {
        const size_t in_head = i % static_cast<size_t>(d_head), base = i - in_head, j = in_head % static_cast<size_t>(half);
        const double bound = 4 * kU * (std::abs(x[base + j]) + std::abs(x[base + j + static_cast<size_t>(half)]));
        INFO("d_head " << d_head << " pos " << pos << " element " << i);
        CHECK(std::abs(y[i] - ref[i]) <= bound);
      }
      Shifted s(x, 3);
      rope_forward(s.p, table.cos_at(pos), table.sin_at(pos), H, d_head);
      CHECK(same_bytes({s.p, x.size()}, y));
    }
  }
}

TEST_CASE("attention is within the softmax error bound of the reference, and offsets and row stride change no byte") {
  // Score j has absolute error e_j <= gamma(d_head) * sum_d |q_d k_jd| * scale; a softmax turns
  // absolute score error into relative probability error (<= 2 max e), plus exp_f (2 ulp), the
  // n-term sum and a division; the n-term weighted sum of v adds gamma(n).
  // So |out_d - ref_d| <= (2 max_j e_j + (2n + 8) u) * sum_j p_j |v_jd|.
  double worst = 0.0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Rng rng(seed);
    const int d_head = 2 * (1 + static_cast<int>(rng.below(32)));
    const int n = kSizes[rng.below(std::size(kSizes))] + static_cast<int>(rng.below(100));
    const int ld = d_head + static_cast<int>(rng.below(3)) * 8;
    const float spread = 0.5f + 2.0f * rng.uniform();  // from near-uniform to peaked attention
    const auto q = random_floats(rng, static_cast<size_t>(d_head), spread);
    const auto k = random_floats(rng, static_cast<size_t>(n) * ld, spread);
    const auto v = random_floats(rng, static_cast<size_t>(n) * ld);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d_head));
    std::vector<float> out(static_cast<size_t>(d_head)), probs(static_cast<size_t>(n));
    std::vector<double> ref(out.size());
    attention_forward(out.data(), probs.data(), q.data(), cv(k.data(), ld), cv(v.data(), ld), n, d_head, scale);
    attention_reference(ref.data(), q.data(), k.data(), v.data(), n, d_head, ld);
    double max_e = 0.0;
    for (int j = 0; j < n; ++j) {
      double mag = 0.0;
      for (int d = 0; d < d_head; ++d) mag += std::abs(static_cast<double>(q[static_cast<size_t>(d)]) * k[static_cast<size_t>(j * ld + d)]);
      max_e = std::max(max_e, gamma(d_head + 1) * mag * scale);
    }
    INFO("seed " << seed << " d_head " << d_head << " n " << n << " ld " << ld);
    for (int d = 0; d < d_head; ++d) {
      double pv = 0.0;
      for (int j = 0; j < n; ++j) pv += probs[static_cast<size_t>(j)] * std::abs(v[static_cast<size_t>(j * ld + d)]);
      const double bound = (2 * max_e + (2.0 * n + 8) * kU) * pv * 1.01;
      worst = std::max(worst, std::abs(out[static_cast<size_t>(d)] - ref[static_cast<size_t>(d)]) / bound);
      CHECK(std::abs(out[static_cast<size_t>(d)] - ref[static_cast<size_t>(d)]) <= bound);
    }
    // The same rows at other offsets and with a packed row stride; and each score alone (the
    // one-slot tail) equals its lane in a block of 8.
    std::vector<float> kp(static_cast<size_t>(n) * d_head), vp(kp.size());
    for (int j = 0; j < n; ++j) {
      std::copy_n(k.data() + static_cast<size_t>(j) * ld, d_head, kp.data() + static_cast<size_t>(j) * d_head);
      std::copy_n(v.data() + static_cast<size_t>(j) * ld, d_head, vp.data() + static_cast<size_t>(j) * d_head);
    }
    Shifted sq(q, 1 + static_cast<int>(rng.below(7))), sk(kp, static_cast<int>(rng.below(8))), sv(vp, static_cast<int>(rng.below(8)));
    Shifted so(out, static_cast<int>(rng.below(8)));
    std::vector<float> probs2(static_cast<size_t>(n));
    attention_forward(so.p, probs2.data(), sq.p, cv(sk.p, d_head), cv(sv.p, d_head), n, d_head, scale);
    // Scores of any run of slots [j0, j0+m), lanes or tail, equal those of the whole call.
    std::vector<float> all_scores(static_cast<size_t>(n)), some(static_cast<size_t>(n));
    attention_scores(all_scores.data(), q.data(), cv(k.data(), ld), n, d_head, scale);
    const int j0 = static_cast<int>(rng.below(static_cast<uint32_t>(n)));
    const int m = 1 + static_cast<int>(rng.below(static_cast<uint32_t>(n - j0)));
    attention_scores(some.data(), q.data(), cv(k.data() + static_cast<size_t>(j0) * ld, ld), m, d_head, scale);
    CHECK(same_bytes(std::span(some).first(static_cast<size_t>(m)), std::span(all_scores).subspan(static_cast<size_t>(j0), static_cast<size_t>(m))));
    CHECK(same_bytes({so.p, out.size()}, out));
    CHECK(same_bytes(probs2, probs));
  }
  WARN("attention: worst error / bound = " << worst);
}

TEST_CASE("exp_f is within 2 ulp of exp over its range, and its vector lanes give the scalar call's bytes") {
  float (*volatile scalar_exp)(float) = exp_f;  // through a pointer: an out-of-line scalar copy
  std::vector<float> xs;
  for (float x = -87.0f; x < 88.0f; x += 0.0173f) xs.push_back(x);
  std::vector<float> vec(xs.size());
  exp_forward(vec.data(), xs.data(), static_cast<int>(xs.size()));  // 8 lanes at a time
  double worst_ulp = 0.0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double ref = std::exp(static_cast<double>(xs[i]));
    const double ulp = std::ldexp(1.0, std::ilogb(ref) - 23);
    const double err = std::abs(vec[i] - ref) / ulp;
    worst_ulp = std::max(worst_ulp, err);
    INFO("x = " << xs[i]);
    CHECK(err <= 2.0);
    const float s = scalar_exp(xs[i]);
    CHECK(std::memcmp(&s, &vec[i], sizeof s) == 0);
  }
  CHECK(exp_f(-100.0f) == 0.0f);
  CHECK(exp_f(-87.3f) == 0.0f);
  CHECK(exp_f(0.0f) == 1.0f);
  CHECK(exp_f(89.0f) == std::numeric_limits<float>::infinity());
  WARN("exp_f: worst error " << worst_ulp << " ulp over " << xs.size() << " points in [-87, 88]");
}

TEST_CASE("gelu is within (8|u|+8)u relative of the reference, and element-wise, at any offset") {
  // u = sqrt(2/pi)(x + 0.044715x^3) carries a few ulp of relative error, which exp(-2u)
  // multiplies by 2|u|; exp_f adds 2 ulp, then one add and one division: (8|u| + 8) u relative.
  // Where the true value is below FLT_MIN (x < -10 or so) float has no relative precision left:
  // there the bound also allows FLT_MIN, the spacing of subnormals' neighbourhood.
  std::vector<float> x;
  Rng rng(9);
  for (int i = 0; i < 4000; ++i) x.push_back(3.0f * rng.normal());
  for (float v = -20.0f; v <= 20.0f; v += 0.37f) x.push_back(v);
  std::vector<float> out(x.size());
  std::vector<double> ref(x.size());
  gelu_forward(out.data(), x.data(), static_cast<int>(x.size()));
  gelu_reference(ref.data(), x.data(), static_cast<int>(x.size()));
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double u = 0.7978845608 * (x[i] + 0.044715 * x[i] * x[i] * x[i]);
    const double bound = (8 * std::abs(u) + 8) * kU * std::abs(ref[i]) +
                         (std::abs(ref[i]) < std::numeric_limits<float>::min() ? std::numeric_limits<float>::min() : 0.0);
    worst = std::max(worst, std::abs(out[i] - ref[i]) / bound);
    INFO("x = " << x[i]);
    CHECK(std::abs(out[i] - ref[i]) <= bound);
    float one;
    gelu_forward(&one, &x[i], 1);  // the scalar tail
    CHECK(std::memcmp(&one, &out[i], sizeof one) == 0);
  }
  Shifted s(x, 5);
  gelu_forward(s.p, s.p, static_cast<int>(x.size()));
  CHECK(same_bytes({s.p, x.size()}, out));
  WARN("gelu: worst error / bound = " << worst);
}

TEST_CASE("the gelu reference's x/(1+exp(-2u)) is the spec's 0.5x(1+tanh(u))") {
  for (double x = -5.0; x <= 5.0; x += 0.01) {
    const double u = std::sqrt(2.0 / 3.141592653589793) * (x + 0.044715 * x * x * x);
    const double spec = 0.5 * x * (1.0 + std::tanh(u));
    const float xf = static_cast<float>(x);
    double ref;
    gelu_reference(&ref, &xf, 1);
    const double spec_f = 0.5 * xf * (1.0 + std::tanh(std::sqrt(2.0 / 3.141592653589793) * (xf + 0.044715 * xf * xf * xf)));
    INFO("x = " << x << " spec " << spec);
    CHECK(std::abs(ref - spec_f) <= 1e-12 * std::abs(xf) + 1e-300);
  }
}

TEST_CASE("set_matmul_width takes 8, the widest or 0 (the widest) and names anything else") {
  RestoreMatmulWidth restore;
  CHECK(matmul_width() == matmul_widest());
  set_matmul_width(8);
  CHECK(matmul_width() == 8);
  set_matmul_width(0);
  CHECK(matmul_width() == matmul_widest());
  CHECK_THROWS_WITH(set_matmul_width(12),
                    Catch::Matchers::StartsWith("matmul width 12: this build and CPU run 8"));
  if (matmul_widest() == 8) CHECK_THROWS(set_matmul_width(16));
}

TEST_CASE("kernel size checks hold in Release: pack_weight's size, the fp64 attention's d_head") {
  CHECK_THROWS_WITH(pack_weight(std::vector<float>(11), 3, 4), "pack_weight: a (4 x 3) weight needs 12 floats, got 11");
  const int dh = 258;
  std::vector<float> q(dh, 0.1f), k(dh, 0.2f), v(dh, 0.3f), out(dh), probs(1);
  CHECK_THROWS_WITH(attention_forward_f64(out.data(), probs.data(), q.data(), cv(k.data(), dh), cv(v.data(), dh), 1, dh, 1.0f),
                    "attention (fp64): d_head 258 exceeds the 256 this kernel supports");
}

TEST_CASE("exp_f of NaN is NaN, in the scalar call and in every vector lane (no undefined conversion)") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(exp_f(nan)));
  std::vector<float> in(19, 0.5f), out(19);
  in[3] = nan;
  in[17] = nan;  // a lane of a vector, and an element of the scalar tail
  exp_forward(out.data(), in.data(), 19);
  for (int i = 0; i < 19; ++i) {
    INFO("element " << i);
    CHECK(std::isnan(out[static_cast<size_t>(i)]) == (i == 3 || i == 17));
  }
}
