// The list of properties, in the order a run checks them: the cheap, sharp ones first (p6
// compares logits, so a decode fault fails its first case with a one-token prompt), the 64- and
// 256-token runs last, so an injected fault is found and shrunk within a second or two.
//
// The scripted properties stay beside p11, the model-based one: each is a sharper, cheaper
// special case (p6 fails a decode fault on its first one-token case and shrinks to 2 new tokens),
// or checks what p11 cannot: p1/p2 run 64 and 256 tokens where p11's sequences hold 12, p3 and
// p9 compare generate() batches with solo runs and with a second request, p10 varies the
// architecture, p12 the sampler's edges. p11 covers what they cannot: interleaved sequences,
// forks, rollbacks, continuous batching and the calls an engine must refuse. p13 (the paged
// cache's prefix hits) runs right after p11, which finds the pool's faults with its programs.
// p14 (thread counts) follows: one cached run on each of two counts and full recompute, a few
// tokens, as cheap as p6's cases. p17 (speculation: verify and rollback with random drafts)
// follows it: a few short rounds per case.
//
// A new property is a file in props/properties/ defining `const Property& pN()`, and one line here.
#include <array>

#include "props/property.h"

#define MINIINFER_PROPERTIES(X) \
  X(p0)                         \
  X(p6)                         \
  X(p7)                         \
  X(p4)                         \
  X(p5)                         \
  X(p3)                         \
  X(p11)                        \
  X(p13)                        \
  X(p14)                        \
  X(p15)                        \
  X(p16)                        \
  X(p17)                        \
  X(p8)                         \
  X(p9)                         \
  X(p12)                        \
  X(p10)                        \
  X(p1)                         \
  X(p2)

namespace miniinfer::props {

#define MINIINFER_DECLARE(id) const Property& id();
MINIINFER_PROPERTIES(MINIINFER_DECLARE)

std::span<const Property* const> all_properties() {
#define MINIINFER_ENTRY(id) &id(),
  static const std::array list = {MINIINFER_PROPERTIES(MINIINFER_ENTRY)};
  return list;
}

}  // namespace miniinfer::props
