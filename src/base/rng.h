// The project's own random numbers. No std:: distributions anywhere: their output differs
// between standard libraries. Every stream is derived from (seed, index), so a sequence's
// draws depend on nothing but its own seed and position in the batch.
#pragma once
#include <cstdint>

namespace miniinfer {

// SplitMix64 finalizer: a bijective mix of 64 bits (Steele, Lea, Flood 2014).
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A SplitMix64 stream. Small, fast, and fully specified by its 64-bit state.
class Rng {
 public:
  explicit constexpr Rng(uint64_t seed) : state_(seed) {}
  // The stream for sequence `index` of a run seeded with `seed`.
  static constexpr Rng stream(uint64_t seed, uint64_t index) {
    return Rng(mix64(seed ^ mix64(index + 0x9e3779b97f4a7c15ULL)));
  }

  constexpr uint64_t next_u64() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(state_);
  }
  constexpr uint32_t next_u32() { return static_cast<uint32_t>(next_u64() >> 32); }
  // Uniform in [0, 1) with 24 random bits: exactly representable as a float.
  constexpr float uniform() { return static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f); }
  // The uniform() this Rng returns after `i` others (uniform_at(0) is the next one), without
  // advancing: a coin indexed by position, as speculative decoding draws them (speculative.h).
  constexpr float uniform_at(uint64_t i) const { return Rng(state_ + i * 0x9e3779b97f4a7c15ULL).uniform(); }
  // Uniform integer in [0, n) for n > 0 (Lemire's multiply-shift; the bias is below 2^-32).
  constexpr uint32_t below(uint32_t n) {
    return static_cast<uint32_t>((static_cast<uint64_t>(next_u32()) * n) >> 32);
  }
  // Approximately standard normal: Irwin-Hall sum of 12 uniforms minus 6. Pure arithmetic,
  // so it gives the same bits on every machine and library (used for weight init only).
  constexpr float normal() {
    float sum = 0.0f;
    for (int i = 0; i < 12; ++i) sum += uniform();
    return sum - 6.0f;
  }
  constexpr uint64_t state() const { return state_; }

 private:
  uint64_t state_;
};

}  // namespace miniinfer
