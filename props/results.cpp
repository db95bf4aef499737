#include "props/results.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/error.h"

namespace miniinfer::props {
namespace {

std::string read_all(int fd, const std::string& path) {
  std::string bytes;
  char buf[1 << 16];
  for (off_t at = 0;;) {
    const ssize_t n = pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("--results {}: cannot read it: {}", path, std::strerror(errno));
    if (n == 0) return bytes;
    bytes.append(buf, static_cast<size_t>(n));
    at += n;
  }
}

void write_all(int fd, const std::string& path, const std::string& bytes) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw OutputError(fmt::format("--results {}: cannot append to it: {}", path, std::strerror(errno)));
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) throw OutputError(fmt::format("--results {}: cannot fsync it: {}", path, std::strerror(errno)));
}

// A new file's folder entry is made durable too, or a crash could lose the whole file.
void fsync_parent(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const int dir = open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
}

// A line after the header is a plan ({"plan": id, ...}) or a finished batch; a batch line's
// fields are read without further checks, so they are checked here, once.
bool well_formed(const nlohmann::json& j) {
  if (j.contains("plan")) return j["plan"].is_string();
  const auto has = [&](const char* key, bool (nlohmann::json::*is)() const noexcept) {
    return j.contains(key) && (j[key].*is)();
  };
  return has("property", &nlohmann::json::is_string) && has("batch", &nlohmann::json::is_number_integer) &&
         has("case_seed", &nlohmann::json::is_number_unsigned) && has("cases", &nlohmann::json::is_number_integer) &&
         has("status", &nlohmann::json::is_string) && has("seconds", &nlohmann::json::is_number);
}

}  // namespace

ParsedResults parse_results(std::string_view bytes, const std::string& path) {
  // Complete lines end with '\n'. Whatever follows the last one is a torn write; so is a last
  // complete line that is not JSON (a crash between data and length reaching the disk).
  ParsedResults out;
  size_t line_no = 0;
  for (size_t at = 0; at < bytes.size();) {
    const size_t nl = bytes.find('\n', at);
    if (nl == std::string_view::npos) break;
    ++line_no;
    nlohmann::json j = nlohmann::json::parse(bytes.begin() + at, bytes.begin() + nl, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (nl + 1 < bytes.size())
        fail("--results {}: line {} is not a JSON object, and lines follow it: the file is damaged "
             "(move it aside to start this shard again)", path, line_no);
      break;
    }
    out.lines.push_back(std::move(j));
    at = out.good_bytes = nl + 1;
  }
  return out;
}

ResultsFile::ResultsFile(std::string path, const nlohmann::json& header) : path_(std::move(path)) {
  struct stat st {};
  const bool existed = stat(path_.c_str(), &st) == 0;
  if (existed && !S_ISREG(st.st_mode)) fail("--results {}: not a regular file", path_);
  fd_ = open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("--results {}: cannot open it for appending: {}", path_, std::strerror(errno));
  try {
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0)
      fail("--results {}: another props run is appending to it", path_);
    const std::string bytes = read_all(fd_, path_);
    auto [lines, good] = parse_results(bytes, path_);
    dropped_ = bytes.size() - good;
    if (dropped_ > 0 && ftruncate(fd_, static_cast<off_t>(good)) != 0)
      fail("--results {}: cannot drop its torn last line: {}", path_, std::strerror(errno));
    if (lines.empty()) {
      write_all(fd_, path_, header.dump() + "\n");
      if (!existed) fsync_parent(path_);
      return;
    }
    if (lines.front() != header)
      fail("--results {}: written by another run ({}), not by this one ({}); pass another file or remove it",
           path_, lines.front().dump(), header.dump());
    for (size_t i = 1; i < lines.size(); ++i)
      if (!well_formed(lines[i]))
        fail("--results {}: line {} is neither a plan nor a finished batch: {}", path_, i + 1, lines[i].dump());
    existing_.assign(std::make_move_iterator(lines.begin() + 1), std::make_move_iterator(lines.end()));
  } catch (...) {
    close(fd_);
    fd_ = -1;
    // A file this run created and could not use is not left behind.
    std::error_code ec;
    if (!existed) std::filesystem::remove(path_, ec);
    throw;
  }
}

ResultsFile::~ResultsFile() {
  if (fd_ >= 0) close(fd_);
}

void ResultsFile::append(const nlohmann::json& line) { write_all(fd_, path_, line.dump() + "\n"); }

}  // namespace miniinfer::props
