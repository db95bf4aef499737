#include "base/threads.h"

#include <cstdlib>
#include <string>
#include <thread>

#include "base/error.h"

namespace miniinfer {

int resolve_threads(int requested) {
  if (requested < 0) fail("threads: {} is not a thread count (0 = the default, or 1 and up)", requested);
  if (requested > 0) return requested;
  if (const char* env = std::getenv("MINIINFER_THREADS"); env != nullptr) {
    const std::string s = env;
    size_t used = 0;
    long n = 0;
    try {
      n = std::stol(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (s.empty() || used != s.size() || n < 1 || n > kMaxThreads)
      fail("MINIINFER_THREADS='{}': not a thread count (1 to {})", s, kMaxThreads);
    return static_cast<int>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace miniinfer
