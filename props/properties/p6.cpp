// p6: the logits of every step are byte-identical with and without cache. The sharpest
// property: it compares logits, so a decode fault fails its first one-token case.
#include "props/properties/cached_uncached.h"

namespace miniinfer::props {

const Property& p6() {
  static const CachedEqualsUncached property(
      {"p6", "the logits of every step are byte-identical with and without cache", 60}, 32, true);
  return property;
}

}  // namespace miniinfer::props
