// The variation points' defaults that touch the cache or need <cmath>: the model as written.
#include "engine/variation.h"

#include <cmath>

#include "engine/kv_cache.h"

namespace miniinfer {

Numerics Variation::attention_numerics(const RowSite& r) const {
  return {1.0f / std::sqrt(static_cast<float>(r.d_head)), false};
}

void Variation::start_request(KvCache& cache, int seq) const { cache.reset(seq); }
void Variation::truncate(KvCache& cache, int seq, int p) const { cache.truncate(seq, p); }
void Variation::fork(KvCache& cache, int src, int dst, int prefix_len) const { cache.fork(src, dst, prefix_len); }
void Variation::rollback(KvCache& cache, int seq, int keep) const { truncate(cache, seq, keep); }

const Variation& model_variation() {
  static const Variation model;
  return model;
}

}  // namespace miniinfer
