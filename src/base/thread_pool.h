// A fixed set of worker threads for the forward pass: created once, woken per call, never one
// thread per call. parallel_for cuts [0, n) into contiguous parts by a static rule, a few per
// thread; the threads take the parts first come, first served, so a worker the OS runs late
// (another program holds its core) holds up at most one small part, and a worker not yet
// awake none. Which thread runs a part never changes what the part computes, and the kernels
// split only independent outputs, so the bytes depend neither on the parts nor on the threads
// (docs/invariance.md, "Thread-count invariance").
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
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

  // fn(begin, end, thread) for each part p of parts = min(n, kPartsPerThread * size()):
  // [n*p/parts, n*(p+1)/parts). `thread` (0 = the caller, up to size() - 1) is the thread that
  // runs the part, which runs its parts one after another: it may pick per-thread scratch.
  // The call returns when every part has run. An exception from any part is rethrown here (the
  // first one). One call at a time per pool.
  static constexpr int kPartsPerThread = 4;
  template <typename F>
  void parallel_for(int n, F&& fn) {
    if (size() == 1 || n <= 1) {
      if (n > 0) fn(0, n, 0);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    const Trampoline call = [](void* f, int b, int e, int t) { (*static_cast<Fn*>(f))(b, e, t); };
    run(n, std::min(n, kPartsPerThread * size()), call, &fn);
  }

 private:
  using Trampoline = void (*)(void*, int, int, int);
  void run(int n, int parts, Trampoline call, void* fn);
  void work(int thread);
  // Takes and runs parts of the current job on `thread` until none is left; returns the job's
  // epoch.
  uint32_t take_parts(int thread);

  std::vector<std::thread> workers_;
  // The job: read only by a thread holding one of its parts, so never while the next is written.
  Trampoline call_ = nullptr;
  void* fn_ = nullptr;
  int n_ = 0;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
  // The job's claims, one word: epoch (high 32 bits), parts (16), next part to take (low 16).
  std::atomic<uint64_t> claims_{0};
  std::atomic<int> done_{0};  // parts finished; the caller waits for all
  // A new job bumps epoch_; workers spin a little, then sleep on it (sleepers_ counts them, so a
  // job costs a system call only when one sleeps). caller_sleeps_: the same for the caller.
  std::atomic<uint32_t> epoch_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_sleeps_{false};
  std::atomic<bool> stop_{false};
};

// Work below this (multiply-adds, or element operations) runs on the caller: waking the workers
// costs about a microsecond when they spin, tens when they sleep. The threshold decides only
// where a part runs, never what it computes; tests set it to 0 so that even a tiny model's
// products, rows and heads are shared out (set_min_parallel_work(-1) restores the default).
inline constexpr long long kMinParallelWork = 1 << 16;
long long min_parallel_work();
void set_min_parallel_work(long long work);

// pool->parallel_for(n, fn) for `work` of at least min_parallel_work(), else fn(0, n, 0) here;
// a null pool is one thread.
template <typename F>
void parallel_for(ThreadPool* pool, int n, long long work, F&& fn) {
  if (pool == nullptr || pool->size() == 1 || work < min_parallel_work()) {
    if (n > 0) fn(0, n, 0);
    return;
  }
  pool->parallel_for(n, fn);
}

}  // namespace miniinfer
