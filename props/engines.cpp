#include "props/engines.h"

#include <filesystem>

#include "base/error.h"

namespace miniinfer::props {

const char* to_string(Capability c) {
  switch (c) {
    case Capability::KvRows: return "K/V rows per layer, head and slot";
    case Capability::Trace: return "a per-layer trace";
    case Capability::Faults: return "fault injection";
    case Capability::Architectures: return "engines for random architectures";
    case Capability::PrefixCache: return "prefix cache (submit reports the tokens it reused)";
    case Capability::Threads: return "settable thread count";
    case Capability::KvQuant: return "quantized K/V cache";
    case Capability::Window: return "sliding-window cache";
  }
  return "?";
}

void EngineUnderTest::forward_uncached(std::span<const int> tokens, std::span<float> logits) {
  const std::vector<float> row = forward_uncached(tokens, false);
  if (logits.size() != row.size()) fail("forward_uncached: logits span of {} floats for {}", logits.size(), row.size());
  std::copy(row.begin(), row.end(), logits.begin());
}

std::string source_relative_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path abs = fs::weakly_canonical(fs::absolute(path), ec);
  const fs::path root = fs::weakly_canonical(fs::path(MINIINFER_SOURCE_DIR), ec);
  const fs::path rel = abs.lexically_relative(root);
  if (!rel.empty() && *rel.begin() != "..") return rel.string();
  return abs.string();
}

std::string open_path(const std::string& stored) {
  const std::filesystem::path p(stored);
  return p.is_absolute() ? stored : (std::filesystem::path(MINIINFER_SOURCE_DIR) / p).string();
}

}  // namespace miniinfer::props
