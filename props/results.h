// The append-only results file (props --results FILE): a header line naming the run, then one
// JSON line per finished batch, each written with one write() and fsync'd before the next batch
// starts. A kill can tear only the last line; opening the file again drops that line (its batch
// runs again) and keeps everything before it. Only a file whose first line is props' header is
// ever resumed or repaired: anything else is refused and left byte for byte as it was.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace miniinfer::props {

// A write to an output the run keeps (the results file, the summary) failed, e.g. a full disk:
// the run stops at once with exit status 3 (props/modes.cpp) instead of counting on.
class OutputError : public Error {
 public:
  using Error::Error;
};

// What a results file's bytes hold: its whole lines, each a JSON object, and the bytes they
// span; what follows is a torn tail to drop (a last line without its newline, or a last line
// that is not a JSON object). Throws Error naming `path` when a bad line has lines after it, or
// when the bytes are not empty and their first line is not a whole props header.
struct ParsedResults {
  std::vector<nlohmann::json> lines;
  size_t good_bytes = 0;
};
ParsedResults parse_results(std::string_view bytes, const std::string& path);

// Checks the lines after the header (`lines` as parse_results returns them) as the reader
// will use them: every field of its type and in range, a property's plan before its batches,
// each batch inside its plan with the cases its index gets, and no batch twice. Throws Error
// naming `path`, the line and the field.
void check_results_lines(const std::vector<nlohmann::json>& lines, const std::string& path);

class ResultsFile {
 public:
  // Opens `path` for appending, creating it with `header` as its first line. An existing file
  // must start with the same header (the same seed, scale, shard and shaping flags); an empty
  // one is taken as new. Takes an exclusive lock: two runs never append to one file, and a new
  // file is locked before it gets its name, so a run that loses the race for it never touches
  // it. Throws Error naming the path; a refused file is left as it was.
  ResultsFile(std::string path, const nlohmann::json& header);
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  // The lines after the header that were in the file when it was opened, in order.
  const std::vector<nlohmann::json>& existing() const { return existing_; }
  // Bytes of a torn last line dropped at open (0: none).
  size_t dropped_bytes() const { return dropped_; }
  const std::string& path() const { return path_; }

  // Appends `line` and a newline in one write, then fsyncs. Throws OutputError naming the path
  // and the OS's reason.
  void append(const nlohmann::json& line);

 private:
  int open_existing();
  void resume(const nlohmann::json& header);

  std::string path_;
  int fd_ = -1;
  std::vector<nlohmann::json> existing_;
  size_t dropped_ = 0;
};

}  // namespace miniinfer::props
