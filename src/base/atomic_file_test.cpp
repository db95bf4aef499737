// Atomic writes: the content arrives whole, a failed write leaves the old file and no temp
// file behind, and every error names the path.
#include "base/atomic_file.h"
#include "base/temp_dir.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "base/error.h"

namespace miniinfer {
namespace {

namespace fs = std::filesystem;


TEST_CASE("write_file_atomic writes, overwrites, and leaves only the target", "[atomic_file]") {
  TempDir dir("atomic");
  const std::string path = dir.file("out.bin");
  std::string bytes(100000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 + 7);
  write_file_atomic(path, bytes);
  CHECK(read_file(path) == bytes);
  write_file_atomic(path, "short");
  CHECK(read_file(path) == "short");
  write_file_atomic(path, "");
  CHECK(read_file(path).empty());
  CHECK(dir.entries() == 1);
}

TEST_CASE("a write that fails midway keeps the old file and removes its temp file", "[atomic_file]") {
  TempDir dir("atomic_fail");
  const std::string path = dir.file("model.bin");
  write_file_atomic(path, "old content");
  // A file-size limit makes write(2) fail with EFBIG partway through: a real mid-write failure.
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* previous = signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string message;
  try {
    write_file_atomic(path, std::string(100000, 'x'));
  } catch (const Error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, previous);
  CHECK_THAT(message, Catch::StartsWith("write " + path + ":") && Catch::Contains("too large"));
  CHECK(read_file(path) == "old content");
  CHECK(dir.entries() == 1);
}

TEST_CASE("atomic_file errors name the path", "[atomic_file]") {
  TempDir dir("atomic_err");
  const std::string no_dir = dir.file("no/such/dir/out.bin");
  CHECK_THROWS_WITH(write_file_atomic(no_dir, "x"), Catch::Contains(no_dir) && Catch::Contains("No such file"));
  CHECK_THROWS_WITH(write_file_atomic(dir.path.string(), "x"), Catch::Contains(dir.path.string()) && Catch::Contains("directory"));
  const std::string missing = dir.file("missing.bin");
  CHECK_THROWS_WITH(read_file(missing), "read " + missing + ": No such file or directory");
  CHECK_THROWS_WITH(read_file(dir.path.string()), Catch::Contains(dir.path.string()) && Catch::Contains("directory"));
  CHECK_THROWS_WITH(write_file_atomic("", "x"), Catch::Contains("empty file name"));
  CHECK(dir.entries() == 0);
}

TEST_CASE("a relative path writes into the working directory's own folder", "[atomic_file]") {
  TempDir dir("atomic_rel");
  const fs::path saved = fs::current_path();
  fs::current_path(dir.path);
  write_file_atomic("plain.txt", "hello");
  fs::current_path(saved);
  CHECK(read_file(dir.file("plain.txt")) == "hello");
  CHECK(dir.entries() == 1);
}

}  // namespace
}  // namespace miniinfer
