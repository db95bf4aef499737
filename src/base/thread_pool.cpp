#include "base/thread_pool.h"

namespace miniinfer {

namespace {

// About 50 us of polling before a thread sleeps: a decode step's kernels follow each other
// closer than that, so workers stay awake within a step and sleep between requests.
constexpr int kSpins = 1 << 11;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::atomic<long long> g_min_parallel_work{kMinParallelWork};

constexpr uint64_t job_word(uint32_t epoch, int parts) {
  return (static_cast<uint64_t>(epoch) << 32) | (static_cast<uint64_t>(parts) << 16);
}

}  // namespace

long long min_parallel_work() { return g_min_parallel_work.load(std::memory_order_relaxed); }

void set_min_parallel_work(long long work) {
  g_min_parallel_work.store(work < 0 ? kMinParallelWork : work, std::memory_order_relaxed);
}

ThreadPool::ThreadPool(int threads) {
  workers_.reserve(static_cast<size_t>(std::max(threads, 1) - 1));
  for (int id = 1; id < threads; ++id) workers_.emplace_back([this, id] { work(id); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  const uint32_t epoch = epoch_.load() + 1;
  claims_.store(job_word(epoch, 0));
  epoch_.store(epoch);
  epoch_.notify_all();
  for (std::thread& t : workers_) t.join();
}

// A claim is one fetch_add: the old word names the job (its epoch) and the part taken, which is
// a real part only below the job's count. A thread that claims past the count holds nothing.
uint32_t ThreadPool::take_parts(int thread) {
  for (;;) {
    const uint64_t old = claims_.fetch_add(1, std::memory_order_acq_rel);
    const int parts = static_cast<int>((old >> 16) & 0xFFFF), part = static_cast<int>(old & 0xFFFF);
    if (part >= parts) return static_cast<uint32_t>(old >> 32);
    const int begin = static_cast<int>(static_cast<long long>(n_) * part / parts);
    const int end = static_cast<int>(static_cast<long long>(n_) * (part + 1) / parts);
    try {
      call_(fn_, begin, end, thread);
    } catch (...) {
      if (!failed_.exchange(true)) error_ = std::current_exception();
    }
    if (done_.fetch_add(1) + 1 == parts && caller_sleeps_.load()) done_.notify_one();  // seq_cst: see run()
  }
}

void ThreadPool::run(int n, int parts, Trampoline call, void* fn) {
  call_ = call;
  fn_ = fn;
  n_ = n;
  error_ = nullptr;
  failed_.store(false, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  const uint32_t epoch = epoch_.load(std::memory_order_relaxed) + 1;
  claims_.store(job_word(epoch, parts), std::memory_order_release);  // publishes the job
  epoch_.store(epoch);
  if (sleepers_.load() > 0) epoch_.notify_all();
  take_parts(0);
  for (int spin = 0; spin < kSpins && done_.load(std::memory_order_acquire) != parts; ++spin) cpu_relax();
  if (done_.load() != parts) {
    caller_sleeps_.store(true);
    for (int d = done_.load(); d != parts; d = done_.load()) done_.wait(d);
    caller_sleeps_.store(false);
  }
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::work(int thread) {
  uint32_t seen = 0;
  // stop_ is set before the last epoch is published: a worker whose claim saw that epoch (and
  // so waits for the next, which never comes) sees stop_ here.
  while (!stop_.load()) {
    uint32_t now = epoch_.load(std::memory_order_acquire);
    for (int spin = 0; spin < kSpins && now == seen; ++spin) {
      cpu_relax();
      now = epoch_.load(std::memory_order_acquire);
    }
    if (now == seen) {
      sleepers_.fetch_add(1);
      for (now = epoch_.load(); now == seen; now = epoch_.load()) epoch_.wait(seen);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = take_parts(thread);
  }
}

}  // namespace miniinfer
