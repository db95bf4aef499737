// p1: the lab's property. Cached and uncached generation give the same tokens over 64 new
// tokens.
#include "props/properties/cached_uncached.h"

namespace miniinfer::props {

const Property& p1() {
  static const CachedEqualsUncached property(
      {"p1", "cached and uncached generation give the same tokens over 64 new tokens", 100}, 64, false);
  return property;
}

}  // namespace miniinfer::props
