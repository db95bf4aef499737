#include "base/thread_pool.h"

namespace miniinfer {

namespace {

// About 50-100 us of polling before a thread sleeps: a decode step's kernels follow each other
// closer than that, so workers stay awake within a step and sleep between requests.
constexpr int kSpins = 1 << 12;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  workers_.reserve(static_cast<size_t>(std::max(threads, 1) - 1));
  for (int id = 1; id < threads; ++id) workers_.emplace_back([this, id] { work(id); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  epoch_.fetch_add(1);
  epoch_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::run_part(int part) {
  if (part >= parts_) return;
  const int begin = static_cast<int>(static_cast<long long>(n_) * part / parts_);
  const int end = static_cast<int>(static_cast<long long>(n_) * (part + 1) / parts_);
  try {
    call_(fn_, begin, end, part);
  } catch (...) {
    if (!failed_.exchange(true)) error_ = std::current_exception();
  }
}

// Every worker answers every job, also when it has no part (pending_ counts all of them): so
// the caller never writes the next job while a worker may still read this one.
void ThreadPool::run(int n, int parts, Trampoline call, void* fn) {
  call_ = call;
  fn_ = fn;
  n_ = n;
  parts_ = parts;
  error_ = nullptr;
  failed_.store(false, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  epoch_.fetch_add(1);  // publishes the job
  if (sleepers_.load() > 0) epoch_.notify_all();
  run_part(0);
  for (int spin = 0; spin < kSpins && pending_.load(std::memory_order_acquire) != 0; ++spin) cpu_relax();
  if (pending_.load() != 0) {
    caller_sleeps_.store(true);
    for (int left = pending_.load(); left != 0; left = pending_.load()) pending_.wait(left);
    caller_sleeps_.store(false);
  }
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::work(int id) {
  unsigned seen = 0;
  for (;;) {
    unsigned now = epoch_.load(std::memory_order_acquire);
    for (int spin = 0; spin < kSpins && now == seen; ++spin) {
      cpu_relax();
      now = epoch_.load(std::memory_order_acquire);
    }
    if (now == seen) {
      sleepers_.fetch_add(1);
      for (now = epoch_.load(); now == seen; now = epoch_.load()) epoch_.wait(seen);
      sleepers_.fetch_sub(1);
    }
    seen = now;
    if (stop_) return;
    run_part(id);
    if (pending_.fetch_sub(1) == 1 && caller_sleeps_.load()) pending_.notify_one();
  }
}

}  // namespace miniinfer
