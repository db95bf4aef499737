// QuantKvCache: compact storage (codes, scales, residual float rows), the per-layer working rows
// attention reads, and the quantizers both paths share.
#include "engine/quant_cache.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "base/error.h"

namespace miniinfer {

const char* to_string(KvQuant format) {
  switch (format) {
    case KvQuant::F32: return "f32";
    case KvQuant::Bf16: return "bf16";
    case KvQuant::Int8: return "int8";
  }
  return "?";
}

KvQuant kv_quant_from_name(std::string_view name) {
  if (name == "f32") return KvQuant::F32;
  if (name == "bf16") return KvQuant::Bf16;
  if (name == "int8") return KvQuant::Int8;
  fail("unknown kv cache format '{}' (known: f32, bf16, int8)", name);
}

// ---- quantizers ---------------------------------------------------------------------------------

uint16_t bf16_from_float(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  // Add half an ulp of the kept part, minus one unless the kept part is odd: ties go to even.
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

float float_from_bf16(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

int round_half_even(float x) {
  const int t = static_cast<int>(x);  // truncation toward zero: defined, mode-free
  const float frac = x - static_cast<float>(t);  // exact: t and x share x's exponent range
  const int away = x < 0.0f ? -1 : 1;
  const float half = 0.5f * static_cast<float>(away);
  if (frac == half) return (t % 2 == 0) ? t : t + away;
  return std::fabs(frac) > 0.5f ? t + away : t;
}

float quantize_int8(const float* x, int n, int8_t* codes) {
  float absmax = 0.0f;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    finite = finite && std::isfinite(x[i]);
    absmax = std::max(absmax, std::fabs(x[i]));
  }
  const float scale = !finite ? std::numeric_limits<float>::quiet_NaN() : absmax / 127.0f;
  if (!finite || scale == 0.0f) {
    std::fill_n(codes, n, int8_t{0});
    return finite ? 0.0f : scale;
  }
  for (int i = 0; i < n; ++i)
    codes[i] = static_cast<int8_t>(std::clamp(round_half_even(x[i] / scale), -127, 127));
  return scale;
}

void dequantize_int8(const int8_t* codes, float scale, int n, float* out) {
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(codes[i]) * scale;
}

// ---- the cache ----------------------------------------------------------------------------------

QuantKvCache::QuantKvCache(int n_layer, int batch, int n_head, int d_head, int capacity, KvQuant format, int residual)
    : n_layer_(n_layer), batch_(batch), n_head_(n_head), d_head_(d_head), capacity_(capacity), format_(format),
      residual_(residual) {
  if (format == KvQuant::F32) fail("kv cache: the quantized cache needs bf16 or int8, not f32");
  if (batch <= 0 || capacity <= 0) fail("kv cache: batch {} and capacity {} must be positive", batch, capacity);
  if (residual < 0 || residual > capacity || (residual & (residual - 1)) != 0)
    fail("kv cache: residual {} must be 0 or a power of two up to the capacity {}", residual, capacity);
  const int D = n_head * d_head;
  const size_t slots = static_cast<size_t>(n_layer) * batch * capacity;
  const int blocks = residual == 0 ? 0 : (capacity + residual - 1) / residual;
  half_ = residual == 0 ? capacity : blocks * residual;
  shift_ = residual == 0 ? 0 : std::countr_zero(static_cast<unsigned>(residual));
  for (Side* s : {&k_, &v_}) {
    if (format == KvQuant::Int8) {
      s->codes8.assign(slots * D, 0);
      s->scales.assign(slots * n_head, 0.0f);
    } else {
      s->codes16.assign(slots * D, 0);
    }
    s->resid.assign(static_cast<size_t>(n_layer) * batch * residual * D, 0.0f);
    s->work.assign(static_cast<size_t>(batch) * region_rows() * D, 0.0f);
  }
  for (int k = 0; k <= blocks; ++k)
    for (int i = 0; i < blocks; ++i) tables_.push_back(i < k ? blocks + i : i);
  cursor_.assign(static_cast<size_t>(batch), 0);
  flushed_.assign(static_cast<size_t>(batch), 0);
  tmp_codes_.assign(static_cast<size_t>(D), 0);
}

int QuantKvCache::read_boundary(int p) const { return residual_ == 0 ? p + 1 : p / residual_ * residual_; }

int QuantKvCache::view_last(int p) const { return residual_ == 0 ? 1 << 30 : read_boundary(p) + residual_ - 1; }

void QuantKvCache::check_seq(int seq) const {
  if (seq < 0 || seq >= batch_) fail("sequence {} out of range (batch size {})", seq, batch_);
}

int QuantKvCache::cursor(int seq) const {
  check_seq(seq);
  return cursor_[static_cast<size_t>(seq)];
}

int QuantKvCache::flushed(int seq) const {
  check_seq(seq);
  return flushed_[static_cast<size_t>(seq)];
}

void QuantKvCache::check_room(int seq, int n) const { check_positions(seq, cursor(seq), n, capacity_); }

void QuantKvCache::advance(int seq, int n) {
  check_room(seq, n);
  const size_t s = static_cast<size_t>(seq);
  cursor_[s] += n;
  flushed_[s] = std::max(flushed_[s], std::min(cursor_[s], var_->kv_flush(cursor_[s], residual_)));
}

size_t QuantKvCache::slot_index(int layer, int seq, int slot) const {
  return (static_cast<size_t>(layer) * batch_ + seq) * capacity_ + slot;
}

float* QuantKvCache::work_row(const Side& s, int seq, int slot, bool dequantized) const {
  const size_t D = static_cast<size_t>(n_head_) * d_head_;
  const size_t row = static_cast<size_t>(seq) * region_rows() + (dequantized && residual_ > 0 ? half_ : 0) + slot;
  return const_cast<float*>(s.work.data()) + row * D;
}

float* QuantKvCache::resid_row(const Side& s, int layer, int seq, int slot) const {
  const size_t D = static_cast<size_t>(n_head_) * d_head_;
  const size_t row = (static_cast<size_t>(layer) * batch_ + seq) * residual_ + slot % residual_;
  return const_cast<float*>(s.resid.data()) + row * D;
}

float* QuantKvCache::k_write(int, int seq, int slot) { return work_row(k_, seq, slot, false); }
float* QuantKvCache::v_write(int, int seq, int slot) { return work_row(v_, seq, slot, false); }

// Residual mode: the working rows as blocks of R, float blocks first, then their dequantized
// copies; view k's block table sends blocks below k to the copies.
kernels::KvView QuantKvCache::view(const Side& s, int seq, int pos) const {
  const size_t D = static_cast<size_t>(n_head_) * d_head_;
  if (residual_ == 0) return kernels::contiguous_view(work_row(s, seq, 0, true), D);
  const int blocks = half_ / residual_;
  const int k = std::clamp(read_boundary(pos) / residual_, 0, blocks);
  kernels::KvView v;
  v.base = work_row(s, seq, 0, false);
  v.table = tables_.data() + static_cast<size_t>(k) * blocks;
  v.shift = shift_;
  v.ld = D;
  return v;
}

kernels::KvView QuantKvCache::k_view(int layer, int seq) const { return k_view_at(layer, seq, cursor(seq)); }
kernels::KvView QuantKvCache::v_view(int layer, int seq) const { return v_view_at(layer, seq, cursor(seq)); }
kernels::KvView QuantKvCache::k_view_at(int, int seq, int pos) const { return view(k_, seq, pos); }
kernels::KvView QuantKvCache::v_view_at(int, int seq, int pos) const { return view(v_, seq, pos); }

void QuantKvCache::store_row(Side& s, int layer, int seq, int slot, const float* x) {
  const size_t at = slot_index(layer, seq, slot);
  const int D = n_head_ * d_head_;
  if (format_ == KvQuant::Bf16) {
    for (int i = 0; i < D; ++i) s.codes16[at * D + i] = bf16_from_float(x[i]);
    return;
  }
  const int group = var_->kv_scale_group(d_head_, D);
  for (int g0 = 0; g0 < D; g0 += group) {
    const float scale = quantize_int8(x + g0, group, s.codes8.data() + at * D + g0);
    for (int h = g0 / d_head_; h < (g0 + group) / d_head_; ++h) s.scales[at * n_head_ + h] = scale;
  }
}

void QuantKvCache::load_row(const Side& s, int layer, int seq, int slot, float* out) const {
  const size_t at = slot_index(layer, seq, slot);
  const int D = n_head_ * d_head_;
  if (format_ == KvQuant::Bf16) {
    for (int i = 0; i < D; ++i) out[i] = float_from_bf16(s.codes16[at * D + i]);
    return;
  }
  for (int h = 0; h < n_head_; ++h)
    dequantize_int8(s.codes8.data() + at * D + h * d_head_, s.scales[at * n_head_ + h], d_head_, out + h * d_head_);
}

// The row through the quantizer and back, exactly as store_row then load_row would give it.
void QuantKvCache::round_trip(const float* x, float* out) {
  const int D = n_head_ * d_head_;
  if (format_ == KvQuant::Bf16) {
    for (int i = 0; i < D; ++i) out[i] = float_from_bf16(bf16_from_float(x[i]));
    return;
  }
  const int group = var_->kv_scale_group(d_head_, D);
  for (int g0 = 0; g0 < D; g0 += group) {
    const float scale = quantize_int8(x + g0, group, tmp_codes_.data() + g0);
    dequantize_int8(tmp_codes_.data() + g0, scale, group, out + g0);
  }
}

void QuantKvCache::begin_layer(int layer, std::span<const SeqRows> rows) {
  const size_t D = static_cast<size_t>(n_head_) * d_head_;
  const int R = residual_;
  for (const SeqRows& r : rows) {
    const int c = cursor(r.seq), q = flushed_[static_cast<size_t>(r.seq)];
    const int end = std::max(c, r.pos0 + r.n);
    const int last_boundary = std::min(R == 0 ? end : read_boundary(end - 1), capacity_);
    for (Side* s : {&k_, &v_}) {
      for (int j = 0; j < q; ++j) {
        float* dq = work_row(*s, r.seq, j, true);
        load_row(*s, layer, r.seq, j, dq);
        if (R > 0) std::copy_n(dq, D, work_row(*s, r.seq, j, false));  // what storage holds
      }
      if (R == 0) {  // one working half: each new row stored, then read back in its place
        for (int j = q; j < std::min(end, capacity_); ++j) {
          store_row(*s, layer, r.seq, j, work_row(*s, r.seq, j, false));
          load_row(*s, layer, r.seq, j, work_row(*s, r.seq, j, true));
        }
        continue;
      }
      for (int j = q; j < c && R > 0; ++j)
        std::copy_n(resid_row(*s, layer, r.seq, j), D, work_row(*s, r.seq, j, false));
      for (int j = q; j < last_boundary; ++j) round_trip(work_row(*s, r.seq, j, false), work_row(*s, r.seq, j, true));
    }
  }
}

void QuantKvCache::end_layer(int layer, std::span<const SeqRows> rows) {
  const size_t D = static_cast<size_t>(n_head_) * d_head_;
  const int R = residual_;
  if (R == 0) return;  // begin_layer stored every new row: with no residual all are quantized
  for (const SeqRows& r : rows) {
    const int q = flushed_[static_cast<size_t>(r.seq)];
    const int end = std::min(std::max(cursor(r.seq), r.pos0 + r.n), capacity_);
    const int q_new = std::max(q, std::min(end, var_->kv_flush(end, R)));
    for (Side* s : {&k_, &v_}) {
      for (int j = q; j < q_new; ++j) store_row(*s, layer, r.seq, j, work_row(*s, r.seq, j, false));
      for (int j = std::max(q_new, end - R); j < end && R > 0; ++j)
        std::copy_n(work_row(*s, r.seq, j, false), D, resid_row(*s, layer, r.seq, j));
    }
  }
}

void QuantKvCache::rows(int seq, std::vector<float>& k, std::vector<float>& v) const {
  const int T = cursor(seq), q = flushed_[static_cast<size_t>(seq)];
  const size_t D = static_cast<size_t>(n_head_) * d_head_, dh = static_cast<size_t>(d_head_);
  k.assign(static_cast<size_t>(n_layer_) * n_head_ * T * dh, 0.0f);
  v.assign(k.size(), 0.0f);
  std::vector<float> row(D);
  for (int l = 0; l < n_layer_; ++l)
    for (int j = 0; j < T; ++j)
      for (const auto& [side, out] : {std::pair{&k_, &k}, std::pair{&v_, &v}}) {
        if (j < q)
          load_row(*side, l, seq, j, row.data());
        else
          std::copy_n(resid_row(*side, l, seq, j), D, row.data());
        for (int h = 0; h < n_head_; ++h)
          std::copy_n(row.data() + h * dh, dh, out->data() + ((static_cast<size_t>(l) * n_head_ + h) * T + j) * dh);
      }
}

void QuantKvCache::reset() {
  std::fill(cursor_.begin(), cursor_.end(), 0);
  std::fill(flushed_.begin(), flushed_.end(), 0);
}

void QuantKvCache::reset(int seq) {
  check_seq(seq);
  cursor_[static_cast<size_t>(seq)] = flushed_[static_cast<size_t>(seq)] = 0;
}

int QuantKvCache::recompute_from(int seq, int p) const {
  return p < flushed(seq) && read_boundary(p) < p ? read_boundary(p) : p;
}

void QuantKvCache::truncate(int seq, int p) {
  if (p < 0 || p > cursor(seq)) fail("sequence {}: cannot truncate to {} tokens, it holds {}", seq, p, cursor(seq));
  const size_t s = static_cast<size_t>(seq);
  if (p < flushed_[s] && read_boundary(p) < p)
    fail("sequence {}: cannot truncate to {} tokens: slots {}..{} are stored {} (residual {}), their float rows are gone",
         seq, p, read_boundary(p), p - 1, to_string(format_), residual_);
  cursor_[s] = p;
  flushed_[s] = std::min(flushed_[s], p);
}

void QuantKvCache::fork(int src, int dst, int prefix_len) {
  check_seq(dst);
  if (src == dst) fail("fork: source and destination are both sequence {}", src);
  if (prefix_len < 0 || prefix_len > cursor(src))
    fail("fork: sequence {} holds {} tokens, cannot fork a prefix of {}", src, cursor(src), prefix_len);
  const int q = flushed_[static_cast<size_t>(src)];
  if (prefix_len < q && read_boundary(prefix_len) < prefix_len)
    fail("fork: sequence {}: a prefix of {} cuts slots {}..{}, stored {} (residual {}): their float rows are gone", src,
         prefix_len, read_boundary(prefix_len), prefix_len - 1, to_string(format_), residual_);
  const int q_dst = std::min(q, prefix_len);
  const size_t D = static_cast<size_t>(n_head_) * d_head_;
  for (Side* s : {&k_, &v_})
    for (int l = 0; l < n_layer_; ++l) {
      const size_t from = slot_index(l, src, 0), to = slot_index(l, dst, 0);
      if (!s->codes8.empty()) std::copy_n(s->codes8.data() + from * D, q_dst * D, s->codes8.data() + to * D);
      if (!s->codes16.empty()) std::copy_n(s->codes16.data() + from * D, q_dst * D, s->codes16.data() + to * D);
      if (!s->scales.empty())
        std::copy_n(s->scales.data() + from * n_head_, q_dst * n_head_, s->scales.data() + to * n_head_);
      if (residual_ > 0) std::copy_n(resid_row(*s, l, src, 0), residual_ * D, resid_row(*s, l, dst, 0));
    }
  cursor_[static_cast<size_t>(dst)] = prefix_len;
  flushed_[static_cast<size_t>(dst)] = q_dst;
}

void QuantKvCache::poison_unused(int seq, float value) {
  const int c = cursor(seq);
  const size_t D = static_cast<size_t>(n_head_) * d_head_;
  for (Side* s : {&k_, &v_}) {
    for (int l = 0; l < n_layer_; ++l)
      for (int j = c; j < capacity_; ++j) {
        const size_t at = slot_index(l, seq, j);
        if (format_ == KvQuant::Bf16) {
          std::fill_n(s->codes16.data() + at * D, D, bf16_from_float(value));
        } else {
          std::fill_n(s->codes8.data() + at * D, D, int8_t{127});
          std::fill_n(s->scales.data() + at * n_head_, n_head_, value / 127.0f);
        }
      }
    std::fill_n(work_row(*s, seq, 0, false), static_cast<size_t>(region_rows()) * D, value);
  }
}

size_t QuantKvCache::storage_bytes() const {
  size_t n = 0;
  for (const Side* s : {&k_, &v_})
    n += s->codes8.size() + 2 * s->codes16.size() + sizeof(float) * (s->scales.size() + s->resid.size());
  return n;
}

size_t QuantKvCache::working_bytes() const { return sizeof(float) * (k_.work.size() + v_.work.size()); }

}  // namespace miniinfer
