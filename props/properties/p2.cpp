// p2: p1 over 256 new tokens. 256 steps of full recompute cost ~30 times a 64-token case: 3
// cases by default; the nightly run's --rc-max-success=2000 makes that 60.
#include "props/properties/cached_uncached.h"

namespace miniinfer::props {

const Property& p2() {
  static const CachedEqualsUncached property(
      {"p2", "cached and uncached generation give the same tokens over 256 new tokens", 3}, 256, false);
  return property;
}

}  // namespace miniinfer::props
