// A fixed set of worker threads for the forward pass: created once, woken per call, never one
// thread per call. parallel_for splits [0, n) into contiguous parts by a static rule, so which
// part a thread runs never depends on timing; the kernels split only independent outputs, so
// the bytes do not depend on the part count either (docs/invariance.md, "Thread-count
// invariance").
#pragma once
#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <type_traits>
#include <vector>

namespace miniinfer {

class ThreadPool {
 public:
  // `threads` >= 1: the caller and threads - 1 workers.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // fn(begin, end, part) for part p of parts = min(size(), n): [n*p/parts, n*(p+1)/parts).
  // Part 0 runs on the caller; the call returns when every part has. An exception from any
  // part is rethrown here (the first one). One call at a time per pool.
  template <typename F>
  void parallel_for(int n, F&& fn) {
    const int parts = std::min(size(), n);
    if (parts <= 1) {
      if (n > 0) fn(0, n, 0);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    run(n, parts, [](void* f, int b, int e, int p) { (*static_cast<Fn*>(f))(b, e, p); }, &fn);
  }

 private:
  using Trampoline = void (*)(void*, int, int, int);
  void run(int n, int parts, Trampoline call, void* fn);
  void work(int id);
  void run_part(int part);

  std::vector<std::thread> workers_;
  // The job the workers read after seeing a new epoch.
  Trampoline call_ = nullptr;
  void* fn_ = nullptr;
  int n_ = 0, parts_ = 0;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
  // A new job: epoch_ moves on. Workers spin a little, then sleep on it (sleepers_ counts them,
  // so a job wakes them with a system call only when one sleeps).
  std::atomic<unsigned> epoch_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> pending_{0};  // parts still running; the caller waits for 0
  std::atomic<bool> caller_sleeps_{false};
  bool stop_ = false;  // read after an epoch change
};

// Work below this (multiply-adds, or element operations) runs on the caller: waking the workers
// costs about a microsecond when they spin, tens when they sleep. The threshold decides only
// where a part runs, never what it computes.
inline constexpr long long kMinParallelWork = 1 << 16;

// pool->parallel_for(n, fn) for `work` of at least kMinParallelWork, else fn(0, n, 0) here;
// a null pool is one thread.
template <typename F>
void parallel_for(ThreadPool* pool, int n, long long work, F&& fn) {
  if (pool == nullptr || pool->size() == 1 || work < kMinParallelWork) {
    if (n > 0) fn(0, n, 0);
    return;
  }
  pool->parallel_for(n, fn);
}

}  // namespace miniinfer
