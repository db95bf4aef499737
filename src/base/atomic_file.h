// Whole-file I/O for artifacts (models, .npz dumps): a write either leaves the complete new
// file or the old one, never half a file, because it goes to a temp file in the same folder,
// is fsync'ed, and is renamed over the target. Every error names the path.
#pragma once
#include <string>
#include <string_view>

namespace miniinfer {

// Writes `bytes` to `path` atomically (temp file beside it, fsync, rename, fsync the folder).
// On failure the target is untouched, the temp file is removed, and Error names the path.
void write_file_atomic(const std::string& path, std::string_view bytes);

// The whole content of `path`. Throws Error naming the path if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace miniinfer
