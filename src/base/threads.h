// The engine's thread count: asked for (an option or a flag), else the MINIINFER_THREADS
// environment variable, else the machine's cores. The worker pool itself is the threads
// helper's (issue 30); this header only names the count.
#pragma once

namespace miniinfer {

// The most threads the engine takes, from a flag or MINIINFER_THREADS: far past any core count
// it would be given, and below what a typo (5000) asks for.
inline constexpr int kMaxThreads = 1024;

// `requested` if > 0; else MINIINFER_THREADS if set (a positive decimal, or Error naming the
// variable and its value); else std::thread::hardware_concurrency() (1 if unknown). Throws
// Error for a negative request.
int resolve_threads(int requested);

}  // namespace miniinfer
