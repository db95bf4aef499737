#include "props/results.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "base/error.h"

namespace miniinfer::props {
namespace {

using nlohmann::json;

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

std::string parent_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// A new file's folder entry is made durable too, or a crash could lose the whole file.
void fsync_parent(const std::string& path) {
  const int dir = open(parent_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
}

// Test hook (props/results_race_test.sh, docs/nightly.md): the variable
// MINIINFER_TEST_RESULTS_CREATE_DELAY_MS widens the window between finding the file absent and
// creating it, where another run can create it first; a line on stderr tells the test the
// window is open. Unset, it costs one getenv per run.
void test_hook_create_delay(const std::string& path) {
  if (const char* ms = std::getenv("MINIINFER_TEST_RESULTS_CREATE_DELAY_MS")) {
    std::fprintf(stderr, "props: test hook: %s is absent; waiting %s ms before creating it\n", path.c_str(),
                 ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
  }
}

// Test hook (props/results_race_test.sh): MINIINFER_TEST_RESULTS_CREATED_HOLD_MS holds the run
// that created the file, with its lock, for that long after creating it, so that a race's loser
// meets the lock whatever the machine's speed; a line on stderr says so.
void test_hook_created_hold(const std::string& path) {
  if (const char* ms = std::getenv("MINIINFER_TEST_RESULTS_CREATED_HOLD_MS")) {
    std::fprintf(stderr, "props: test hook: created %s; holding it %s ms\n", path.c_str(), ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
  }
}

// A fresh, unnamed file in the target's folder (O_TMPFILE, linked later through /proc), or,
// where the file system has no unnamed files or there is no /proc, a named one beside the
// target that is unlinked once linked.
int open_unnamed(const std::string& path, std::string& named) {
  if (access("/proc/self/fd", X_OK) == 0) {
    const int fd = open(parent_of(path).c_str(), O_TMPFILE | O_RDWR | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR)) return fd;
  }
  named = fmt::format("{}.new.{}", path, getpid());
  return open(named.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
}

// Gives the locked, complete new file its name; false when the name exists already (link
// never replaces a file: another run made it first, and it is theirs).
bool link_into_place(int fd, const std::string& named, const std::string& path) {
  const std::string from = named.empty() ? fmt::format("/proc/self/fd/{}", fd) : named;
  const int rc =
      linkat(AT_FDCWD, from.c_str(), AT_FDCWD, path.c_str(), named.empty() ? AT_SYMLINK_FOLLOW : 0);
  const int err = errno;
  if (!named.empty()) unlink(named.c_str());
  if (rc == 0) return true;
  if (err == EEXIST) return false;
  fail("--results {}: cannot create it: {}", path, std::strerror(err));
}

// Creates `path` holding `header`, locked before it has a name: no other run ever sees it
// without its header or unlocked, so only its creator could ever remove it. Returns -1 when
// another run created the file first.
int create_locked(const std::string& path, const std::string& header) {
  std::string named;
  const int fd = open_unnamed(path, named);
  if (fd < 0) fail("--results {}: cannot open it for appending: {}", path, std::strerror(errno));
  try {
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
      fail("--results {}: cannot lock a new file: {}", path, std::strerror(errno));
    write_all(fd, path, header);
    if (link_into_place(fd, named, path)) {
      fsync_parent(path);
      test_hook_created_hold(path);
      return fd;
    }
  } catch (...) {
    if (!named.empty()) unlink(named.c_str());
    close(fd);
    throw;
  }
  close(fd);
  return -1;
}

// A field of the wrong type or missing: the line is not one props writes.
[[noreturn]] void refuse_shape(const std::string& path, size_t line, const char* key,
                               const std::string& why) {
  fail("--results {}: line {} is neither a plan nor a finished batch: '{}' {}", path, line, key, why);
}

// Reads one field of a results line, each as its own type and range: a whole number that does
// not fit an int is refused, not wrapped, and a number of cases outside 1..batch_cases is not
// counted (issue 32: a negative count, a duplicate or a wrong status once counted silently).
class LineReader {
 public:
  LineReader(const json& j, const std::string& path, size_t line) : j_(j), path_(path), line_(line) {}
  const json& at(const char* key) const {
    if (!j_.contains(key)) refuse_shape(path_, line_, key, "is missing");
    return j_[key];
  }
  long long whole(const char* key, long long lo, long long hi) const {
    const json& v = at(key);
    if (!v.is_number_integer())
      refuse_shape(path_, line_, key, fmt::format("is {}, not a whole number", v.dump()));
    // (an unsigned value above INT64_MAX must not wrap into range through get<int64_t>)
    const bool fits = (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(hi)) &&
                      v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
    if (!fits) refuse(key, fmt::format("is {}, outside {}..{}", v.dump(), lo, hi));
    return v.get<long long>();
  }
  uint64_t seed(const char* key) const {
    const json& v = at(key);
    if (!v.is_number_unsigned())
      refuse_shape(path_, line_, key, fmt::format("is {}, not a seed (0..2^64-1)", v.dump()));
    return v.get<uint64_t>();
  }
  double seconds(const char* key) const {
    const json& v = at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
      refuse(key, fmt::format("is {}, not a time in seconds (0 or more)", v.dump()));
    return v.get<double>();
  }
  const std::string& text(const char* key) const {
    const json& v = at(key);
    if (!v.is_string()) refuse_shape(path_, line_, key, fmt::format("is {}, not a string", v.dump()));
    return v.get_ref<const std::string&>();
  }
  // A field out of range, or at odds with the lines before it.
  [[noreturn]] void refuse(const char* key, const std::string& why) const {
    fail("--results {}: line {}: '{}' {}", path_, line_, key, why);
  }

 private:
  const json& j_;
  const std::string& path_;
  size_t line_;
};

// The lines after the header, checked in order: a plan per property before its batches, each
// batch inside its plan's slice with the cases its index gets, each batch once.
class LinesChecker {
 public:
  LinesChecker(const std::string& path, long long batch_cases) : path_(path), batch_cases_(batch_cases) {}
  void check(const json& j, size_t line) {
    const LineReader r(j, path_, line);
    if (j.contains("plan"))
      check_plan(r);
    else if (j.contains("batch"))
      check_batch(r, line);
    else
      fail("--results {}: line {} is neither a plan nor a finished batch: {}", path_, line, j.dump());
  }

 private:
  struct Plan {
    long long cases, first, end;
  };
  void check_plan(const LineReader& r) {
    const std::string& id = r.text("plan");
    r.text("sentence");
    const long long cases = r.whole("cases", 1, INT_MAX);
    const long long batches = r.whole("batches", 1, INT_MAX);
    if (batches != (cases + batch_cases_ - 1) / batch_cases_)
      r.refuse("batches", fmt::format("is {}, but {} cases make {} batches", batches, cases,
                                      (cases + batch_cases_ - 1) / batch_cases_));
    const long long first = r.whole("first", 0, batches), end = r.whole("end", first, batches);
    if (!plans_.emplace(id, Plan{cases, first, end}).second)
      r.refuse("plan", fmt::format("{} is planned twice", id));
  }
  void check_batch(const LineReader& r, size_t line) {
    const std::string& id = r.text("property");
    const long long batch = r.whole("batch", 0, INT_MAX);
    const auto plan = plans_.find(id);
    if (plan == plans_.end()) r.refuse("property", fmt::format("{} has a batch before its plan", id));
    const Plan& p = plan->second;
    if (batch < p.first || batch >= p.end)
      r.refuse("batch",
               fmt::format("is {}, outside the plan of {} (batches {}..{})", batch, id, p.first, p.end - 1));
    r.seed("case_seed");
    const long long want = std::min(batch_cases_, p.cases - batch * batch_cases_);
    if (const long long cases = r.whole("cases", 1, batch_cases_); cases != want)
      r.refuse("cases", fmt::format("is {}, but batch {} of {} has {} cases", cases, batch, id, want));
    const std::string& status = r.text("status");
    if (status != "passed" && status != "failed")
      r.refuse("status", fmt::format("is '{}', not passed or failed", status));
    r.seconds("seconds");
    if (status == "failed")
      for (const char* key : {"counterexample", "reproduce", "message"}) r.text(key);
    if (const auto [at, fresh] = seen_.emplace(std::make_pair(id, batch), line); !fresh)
      r.refuse("batch", fmt::format("is {} again: batch {} of {} is already on line {}", batch, batch, id,
                                    at->second));
  }

  const std::string& path_;
  long long batch_cases_;
  std::map<std::string, Plan> plans_;
  std::map<std::pair<std::string, long long>, size_t> seen_;
};

}  // namespace

ParsedResults parse_results(std::string_view bytes, const std::string& path) {
  // Only a file props wrote is ever repaired: its first line is a whole header. Anything else
  // (notes, another program's data) is refused and left as it is, whatever its length.
  if (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    const json first =
        nl == std::string_view::npos
            ? json(nullptr)
            : json::parse(bytes.begin(), bytes.begin() + static_cast<long>(nl), nullptr, false);
    if (!first.is_object() || !first.contains("props_results"))
      fail(
          "--results {}: not a props results file (its first line is no props header); left as it is: "
          "pass another file",
          path);
  }
  // Complete lines end with '\n'. Whatever follows the last one is a torn write; so is a last
  // complete line that is not JSON (a crash between data and length reaching the disk).
  ParsedResults out;
  size_t line_no = 0;
  for (size_t at = 0; at < bytes.size();) {
    const size_t nl = bytes.find('\n', at);
    if (nl == std::string_view::npos) break;
    ++line_no;
    json j = json::parse(bytes.begin() + static_cast<long>(at), bytes.begin() + static_cast<long>(nl),
                         nullptr, false);
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

void check_results_lines(const std::vector<json>& lines, const std::string& path) {
  if (lines.empty()) return;
  LinesChecker checker(path, LineReader(lines.front(), path, 1).whole("batch_cases", 1, INT_MAX));
  for (size_t i = 1; i < lines.size(); ++i) checker.check(lines[i], i + 1);
}

ResultsFile::ResultsFile(std::string path, const json& header) : path_(std::move(path)) {
  struct stat st {};
  if (stat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) fail("--results {}: not a regular file", path_);
  fd_ = open_existing();
  if (fd_ < 0) {
    test_hook_create_delay(path_);
    fd_ = create_locked(path_, header.dump() + "\n");
    if (fd_ >= 0) return;
    fd_ = open_existing();  // another run created it meanwhile: theirs, and locked
    if (fd_ < 0) fail("--results {}: cannot open it for appending: {}", path_, std::strerror(errno));
  }
  try {
    resume(header);
  } catch (...) {
    // The file is left as it is: it was there before this run, so it is not this run's.
    close(fd_);
    fd_ = -1;
    throw;
  }
}

int ResultsFile::open_existing() {
  const int fd = open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT)
    fail("--results {}: cannot open it for appending: {}", path_, std::strerror(errno));
  return fd;
}

// Locks the existing file, and then only reads it unless it is this run's: the header must
// match and every line after it must check, before a torn last line is dropped.
void ResultsFile::resume(const json& header) {
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) fail("--results {}: another props run is appending to it", path_);
  const std::string bytes = read_all(fd_, path_);
  if (bytes.empty()) {  // an empty file holds nothing to lose: it is taken as new
    write_all(fd_, path_, header.dump() + "\n");
    return;
  }
  auto [lines, good] = parse_results(bytes, path_);  // (its first line is a whole header)
  if (lines.front() != header)
    fail("--results {}: written by another run ({}), not by this one ({}); pass another file or remove it",
         path_, lines.front().dump(), header.dump());
  check_results_lines(lines, path_);
  dropped_ = bytes.size() - good;
  if (dropped_ > 0 && ftruncate(fd_, static_cast<off_t>(good)) != 0)
    fail("--results {}: cannot drop its torn last line: {}", path_, std::strerror(errno));
  existing_.assign(std::make_move_iterator(lines.begin() + 1), std::make_move_iterator(lines.end()));
}

ResultsFile::~ResultsFile() {
  if (fd_ >= 0) close(fd_);
}

void ResultsFile::append(const json& line) { write_all(fd_, path_, line.dump() + "\n"); }

}  // namespace miniinfer::props
