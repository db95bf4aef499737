#include "base/thread_pool.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace miniinfer;

TEST_CASE("parallel_for runs the static parts once each, on threads of the pool, for 1 to 5 threads") {
  for (int threads = 1; threads <= 5; ++threads) {
    ThreadPool pool(threads);
    REQUIRE(pool.size() == threads);
    for (int n : {0, 1, 2, 3, 7, 64, 1000}) {
      // first[i]: where the part holding item i begins; ran[i]: how often item i ran.
      std::vector<int> first(static_cast<size_t>(n), -1), ran(static_cast<size_t>(n), 0);
      std::atomic<bool> bad_thread{false};
      pool.parallel_for(n, [&](int begin, int end, int thread) {
        if (thread < 0 || thread >= threads) bad_thread = true;
        for (int i = begin; i < end; ++i) {
          first[static_cast<size_t>(i)] = begin;
          ++ran[static_cast<size_t>(i)];
        }
      });
      // Part p holds [n*p/parts, n*(p+1)/parts): the rule, whatever thread ran first.
      const int parts = threads == 1 ? std::min(n, 1) : std::min(n, ThreadPool::kPartsPerThread * threads);
      std::vector<int> expect_first;
      for (int p = 0; p < parts; ++p)
        expect_first.insert(expect_first.end(), static_cast<size_t>(n * (p + 1) / parts - n * p / parts),
                            n * p / parts);
      INFO("threads " << threads << ", n " << n);
      CHECK(first == expect_first);
      CHECK(ran == std::vector<int>(static_cast<size_t>(n), 1));
      CHECK_FALSE(bad_thread);
    }
  }
}

TEST_CASE("a pool runs many calls back to back, and sleeps and wakes between them") {
  ThreadPool pool(3);
  long long total = 0;
  std::vector<long long> sums(3);
  for (int call = 0; call < 2000; ++call) {
    std::fill(sums.begin(), sums.end(), 0);
    pool.parallel_for(30, [&](int begin, int end, int thread) {  // a thread runs its parts in turn
      for (int i = begin; i < end; ++i) sums[static_cast<size_t>(thread)] += i;
    });
    total += sums[0] + sums[1] + sums[2];
    if (call % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the workers sleep
  }
  CHECK(total == 2000LL * (29 * 30 / 2));
}

TEST_CASE("an exception in any part reaches the caller, and the pool still works after") {
  ThreadPool pool(2);
  CHECK_THROWS_WITH(pool.parallel_for(2,
                                      [](int begin, int, int) {
                                        if (begin == 1) throw std::runtime_error("part 1 failed");
                                      }),
                    "part 1 failed");
  int ran = 0;
  pool.parallel_for(2, [&](int begin, int end, int) {
    if (begin == 0) ran += end - begin;
  });
  CHECK(ran == 1);
}
