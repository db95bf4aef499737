// The cache's bookkeeping: layout of rows, cursors, truncate / reset / fork, the guard
// regions, and the errors a caller can cause.
#include "engine/kv_cache.h"

#include <cmath>

#include <catch2/catch.hpp>

#include "base/error.h"

using namespace miniinfer;

namespace {
// Fill every slot of (layer, seq) with a value that names it: layer*1e4 + seq*1e3 + slot + element/100.
void fill_named(KvCache& c, int layer, int seq) {
  for (int slot = 0; slot < c.capacity(); ++slot)
    for (int e = 0; e < c.d_model(); ++e) {
      const float v = static_cast<float>(layer * 10000 + seq * 1000 + slot) + static_cast<float>(e) / 100.0f;
      c.k_slab(layer, seq)[slot * c.d_model() + e] = v;
      c.v_slab(layer, seq)[slot * c.d_model() + e] = -v;
    }
}
}  // namespace

TEST_CASE("a cache row is the (layer, seq, head, slot) block of d_head floats of its slab") {
  KvCache c(3, 2, 4, 6, 10);
  for (int l = 0; l < 3; ++l)
    for (int s = 0; s < 2; ++s) fill_named(c, l, s);
  c.advance(1, 10);
  const auto k = c.k_row(2, 1, 3, 7), v = c.v_row(2, 1, 3, 7);
  REQUIRE(k.size() == 6);
  for (int e = 0; e < 6; ++e) {
    CHECK(k[static_cast<size_t>(e)] == static_cast<float>(21007) + static_cast<float>(3 * 6 + e) / 100.0f);
    CHECK(v[static_cast<size_t>(e)] == -k[static_cast<size_t>(e)]);
  }
  CHECK(c.guards_intact());
}

TEST_CASE("cursors: advance, truncate, reset one or all") {
  KvCache c(1, 3, 2, 2, 8);
  c.advance(0, 5);
  c.advance(2, 8);
  CHECK(c.cursor(0) == 5);
  c.truncate(0, 2);
  CHECK(c.cursor(0) == 2);
  CHECK_THROWS_WITH(c.truncate(0, 3), "sequence 0: cannot truncate to 3 tokens, it holds 2");
  c.reset(2);
  CHECK(c.cursor(2) == 0);
  CHECK(c.cursor(0) == 2);
  c.reset();
  CHECK(c.cursor(0) == 0);
}

TEST_CASE("fork copies the prefix of every layer and leaves the source alone") {
  KvCache c(2, 3, 2, 4, 12);
  for (int l = 0; l < 2; ++l) {
    fill_named(c, l, 0);
    fill_named(c, l, 2);
  }
  c.advance(0, 9);
  c.advance(2, 11);
  c.fork(0, 2, 6);
  CHECK(c.cursor(2) == 6);
  CHECK(c.cursor(0) == 9);
  for (int l = 0; l < 2; ++l)
    for (int slot = 0; slot < 6; ++slot)
      for (int h = 0; h < 2; ++h) {
        CHECK(std::equal(c.k_row(l, 2, h, slot).begin(), c.k_row(l, 2, h, slot).end(), c.k_row(l, 0, h, slot).begin()));
        CHECK(std::equal(c.v_row(l, 2, h, slot).begin(), c.v_row(l, 2, h, slot).end(), c.v_row(l, 0, h, slot).begin()));
      }
  CHECK_THROWS_WITH(c.fork(0, 1, 10), "fork: sequence 0 holds 9 tokens, cannot fork a prefix of 10");
  CHECK_THROWS_WITH(c.fork(1, 1, 0), "fork: source and destination are both sequence 1");
  CHECK(c.guards_intact());
}

TEST_CASE("exceeding the capacity is an error naming the sequence, the position and the capacity") {
  KvCache c(1, 3, 1, 2, 512);
  c.advance(2, 500);
  CHECK_NOTHROW(c.check_room(2, 12));
  CHECK_THROWS_WITH(c.check_room(2, 13), "sequence 2: position 512 exceeds the cache capacity 512 (slots 0..511)");
  CHECK_THROWS_AS(c.advance(2, 13), Error);
  CHECK(c.cursor(2) == 500);
  CHECK_THROWS_WITH(c.cursor(3), "sequence 3 out of range (batch size 3)");
}

TEST_CASE("a write one row past either buffer, or one float before it, breaks a guard") {
  for (int which = 0; which < 4; ++which) {
    KvCache c(2, 2, 2, 4, 5);
    REQUIRE(c.guards_intact());
    float* k_end = c.k_slab(1, 1) + c.capacity() * c.d_model();  // one slot past the last K row
    float* v_end = c.v_slab(1, 1) + c.capacity() * c.d_model();
    switch (which) {
      case 0: k_end[0] = 0.0f; break;
      case 1: v_end[c.d_model() - 1] = 0.0f; break;
      case 2: c.k_slab(0, 0)[-1] = 0.0f; break;
      case 3: c.v_slab(0, 0)[-1] = 0.0f; break;
    }
    INFO("corruption " << which);
    CHECK_FALSE(c.guards_intact());
  }
}

TEST_CASE("poison_unused fills only slots at or past the cursor") {
  KvCache c(1, 1, 1, 2, 4);
  fill_named(c, 0, 0);
  c.advance(0, 2);
  c.poison_unused(0);
  CHECK(c.k_slab(0, 0)[2 * 2 - 1] == 1.01f);
  CHECK(std::isnan(c.k_slab(0, 0)[2 * 2]));
  CHECK(std::isnan(c.v_slab(0, 0)[4 * 2 - 1]));
  CHECK(c.guards_intact());
}
