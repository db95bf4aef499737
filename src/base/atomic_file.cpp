// Atomic whole-file writes with POSIX calls: only rename(2) gives the all-or-nothing promise,
// and only fsync before it makes the promise survive a crash.
#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/error.h"

namespace miniinfer {

namespace {

std::string errno_text() { return std::strerror(errno); }

// Closes the descriptor and removes the temp file unless the write got all the way through.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // close() can report a deferred write error (NFS, full disk), so it is checked.
  bool close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  int fd_;
  bool committed_ = false;
};

// A fresh name beside the target; O_EXCL makes a collision with anyone else's temp a retry,
// and creating with 0666 lets the umask decide the final permissions as for a plain open.
TempFile create_temp(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.parent_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string name = "." + target.filename().string() + ".tmp." + std::to_string(::getpid()) +
                             "." + std::to_string(counter.fetch_add(1));
    const std::string temp = (dir / name).string();
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return TempFile(temp, fd);
    if (errno != EEXIST) fail("write {}: cannot create temp file {}: {}", path, temp, errno_text());
  }
  fail("write {}: cannot find a free temp file name", path);
}

void write_all(const TempFile& temp, const std::string& path, std::string_view bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(temp.fd(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write {}: {}", path, errno_text());
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// Makes the rename itself durable. Some file systems refuse fsync on a directory; the file's
// content is already safe then, so that refusal is not an error.
void sync_dir(const std::filesystem::path& dir) {
  const std::string d = dir.empty() ? "." : dir.string();
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes) {
  if (path.empty()) fail("write: empty file name");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("write {}: is a directory", path);
  TempFile temp = create_temp(path);
  write_all(temp, path, bytes);
  if (::fsync(temp.fd()) != 0) fail("write {}: fsync: {}", path, errno_text());
  if (!temp.close()) fail("write {}: close: {}", path, errno_text());
  if (::rename(temp.path().c_str(), path.c_str()) != 0) fail("write {}: rename: {}", path, errno_text());
  temp.commit();
  sync_dir(std::filesystem::path(path).parent_path());
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("read {}: {}", path, errno_text());
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = errno_text();  // EISDIR lands here
      ::close(fd);
      fail("read {}: {}", path, why);
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

}  // namespace miniinfer
