// Proves the decode loop allocates nothing: this test binary replaces global operator new
// with one that counts calls while `g_counting` is set.
#include <atomic>
#include <cstdlib>
#include <new>

#include <catch2/catch.hpp>

#include "engine/engine_test_util.h"
#include "engine/generate.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

namespace {
void* counted_malloc(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
}  // namespace

// The whole unaligned family, so that every new is paired with our delete (under ASan too,
// which otherwise supplies the forms we leave out and then sees malloc'd memory freed by its
// own delete). Aligned forms stay the library's, pairing among themselves.
void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
// GCC pairs the built-in operator new with free() and warns; here both sides are ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {
// Allocations made by `body`.
template <typename F>
long allocations_in(F&& body) {
  g_allocations = 0;
  g_counting = true;
  body();
  g_counting = false;
  return g_allocations.load();
}
}  // namespace

TEST_CASE("the allocation counter sees an allocation (so a zero below means something)") {
  CHECK(allocations_in([] { std::vector<float> v(10); }) == 1);
}

TEST_CASE("decode, batched decode and sampling allocate nothing once the engine is built") {
  const Config c = make_config(300, 64, 4, 4, 256, 128);
  const Model model = random_model(c, 1);
  for (int B : {1, 4}) {
    Engine engine(model, {Backend::Invariant, B, 0, Fault::None, KvLayout::Contiguous, {}});
    Rng rng(2);
    std::vector<Chunk> chunks;
    std::vector<std::vector<int>> prompts;
    for (int b = 0; b < B; ++b) prompts.push_back(random_tokens(rng, 3 + 5 * b, c.vocab_size));
    for (int b = 0; b < B; ++b) chunks.push_back(Chunk{b, prompts[static_cast<size_t>(b)]});
    std::vector<float> logits(static_cast<size_t>(B) * c.vocab_size);
    std::vector<int> seqs(static_cast<size_t>(B)), next(static_cast<size_t>(B));
    for (int b = 0; b < B; ++b) seqs[static_cast<size_t>(b)] = b;
    engine.forward_batch(chunks, logits);
    SamplerScratch scratch;
    const SamplerOptions sampler{0.9f, 20, 0.95f};
    std::vector<Rng> streams;
    for (int b = 0; b < B; ++b) streams.push_back(Rng::stream(7, static_cast<uint64_t>(b)));
    auto step = [&] {
      for (int b = 0; b < B; ++b)
        next[static_cast<size_t>(b)] = sample(std::span(logits).subspan(static_cast<size_t>(b) * c.vocab_size, static_cast<size_t>(c.vocab_size)),
                                              sampler, streams[static_cast<size_t>(b)].uniform(), scratch);
      engine.decode(seqs, next, logits);
    };
    step();  // the sampler's scratch reaches its size here
    INFO("B = " << B);
    CHECK(allocations_in([&] {
            for (int i = 0; i < 50; ++i) step();
          }) == 0);
  }
}
