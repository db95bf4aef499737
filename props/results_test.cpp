// The results file's reader refuses what props did not write, and every field out of its
// type's range, naming the file, the line and the field; a refused file is left as it was.
#include "props/results.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"

using namespace miniinfer;
using namespace miniinfer::props;
using nlohmann::json;

namespace {

const json kHeader = {{"props_results", 1}, {"seed", 3},         {"max_success", 100},
                      {"shard", "1/1"},     {"batch_cases", 10}, {"shaping_flags", json::array()}};

std::string plan_line() { return R"({"plan":"p0","sentence":"s","cases":25,"batches":3,"first":0,"end":3})"; }
std::string batch_line(const std::string& batch, const std::string& cases,
                       const std::string& status = "\"passed\"") {
  return R"({"property":"p0","batch":)" + batch + R"(,"case_seed":7,"cases":)" + cases +
         R"(,"seconds":0.5,"status":)" + status + "}";
}
// The lines as parse_results reads them: the header, then `rest`.
std::vector<json> lines_of(const std::vector<std::string>& rest) {
  std::string bytes = kHeader.dump() + "\n";
  for (const auto& l : rest) bytes += l + "\n";
  return parse_results(bytes, "r.jsonl").lines;
}

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("results_test." + std::to_string(getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name, const std::string& bytes) const {
    const std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
};

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("a file that props did not write is refused whole, whatever its length", "[results]") {
  for (const char* bytes : {"my notes", "my notes\n", "{\"a\":1}", "{\"a\":1}\n", "line one\nline two", "\n"})
    CHECK_THROWS_WITH(parse_results(bytes, "n.txt"),
                      Catch::Contains("--results n.txt: not a props results file"));
  // A torn header (no newline) was never written by props either: the header goes in whole.
  CHECK_THROWS_WITH(parse_results(kHeader.dump(), "h.jsonl"), Catch::Contains("not a props results file"));
  CHECK(parse_results("", "e.jsonl").lines.empty());
  const auto torn = parse_results(kHeader.dump() + "\n{\"batch\":3,\"ca", "t.jsonl");
  CHECK(torn.lines.size() == 1);
  CHECK(torn.good_bytes == kHeader.dump().size() + 1);
}

TEST_CASE("opening a file that is not a results file refuses it and leaves every byte", "[results]") {
  const TempDir dir;
  for (const char* bytes : {"my notes", "my notes\n", "first\nsecond\n", "{\"x\":1}\n{\"y\":"}) {
    const std::string path = dir.file("notes.txt", bytes);
    CHECK_THROWS_WITH(ResultsFile(path, kHeader), Catch::Contains("not a props results file"));
    CHECK(bytes_of(path) == bytes);
  }
}

TEST_CASE("a new results file holds its header, and a second opener is refused and leaves it", "[results]") {
  const TempDir dir;
  const std::string path = (dir.path / "new.jsonl").string();
  ResultsFile first(path, kHeader);
  first.append(json::parse(plan_line()));
  CHECK(bytes_of(path) == kHeader.dump() + "\n" + json::parse(plan_line()).dump() + "\n");
  CHECK_THROWS_WITH(ResultsFile(path, kHeader), Catch::Contains("another props run is appending to it"));
  CHECK(std::filesystem::exists(path));
  CHECK(std::filesystem::directory_iterator(dir.path) != std::filesystem::directory_iterator());
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator()) ==
        1);
}

TEST_CASE(
    "the lines a resumed run counts are in range, each batch once, and errors name file, line and field",
    "[results]") {
  CHECK_NOTHROW(
      check_results_lines(lines_of({plan_line(), batch_line("0", "10"), batch_line("2", "5")}), "r.jsonl"));
  const auto refused = [](const std::vector<std::string>& rest, const std::string& message) {
    INFO(message);
    CHECK_THROWS_WITH(check_results_lines(lines_of(rest), "r.jsonl"),
                      Catch::Contains("--results r.jsonl: line") && Catch::Contains(message));
  };
  refused({plan_line(), batch_line("0", "10"), batch_line("0", "10")}, "line 4: 'batch' is 0 again");
  refused({plan_line(), batch_line("0", "-5")}, "line 3: 'cases' is -5, outside 1..10");
  refused({plan_line(), batch_line("2", "10")}, "'cases' is 10, but batch 2 of p0 has 5 cases");
  refused({plan_line(), batch_line("0", "10", "\"maybe\"")}, "'status' is 'maybe', not passed or failed");
  refused({plan_line(), batch_line("3", "5")}, "'batch' is 3, outside the plan of p0");
  refused({plan_line(), batch_line("4294967296", "10")}, "'batch' is 4294967296, outside 0..2147483647");
  refused({plan_line(), batch_line("-1", "10")}, "'batch' is -1, outside 0..2147483647");
  refused({plan_line(), batch_line("18446744073709551615", "10")},
          "'batch' is 18446744073709551615, outside");
  refused({plan_line(), batch_line("1.5", "10")}, "'batch' is 1.5, not a whole number");
  refused({plan_line(), batch_line("0", "1e1")}, "'cases' is 10.0, not a whole number");
  refused({plan_line(), batch_line("0", "10", "\"failed\"")}, "'counterexample' is missing");
  refused({batch_line("0", "10")}, "'property' p0 has a batch before its plan");
  refused({plan_line(), plan_line()}, "'plan' p0 is planned twice");
  refused({R"({"plan":"p0","sentence":"s","cases":25,"batches":2,"first":0,"end":2})"},
          "'batches' is 2, but 25");
  refused({R"({"plan":"p0","sentence":"s","cases":-25,"batches":3,"first":0,"end":3})"}, "'cases' is -25");
  refused({R"({"plan":"p0","sentence":"s","cases":25,"batches":3,"first":2,"end":1})"},
          "'end' is 1, outside 2..3");
  refused({R"({"plan":"p0","sentence":"s","cases":25,"batches":3,"first":0,"end":3})",
           R"({"property":"p0","batch":0,"case_seed":-7,"cases":10,"seconds":0.5,"status":"passed"})"},
          "'case_seed' is -7, not a seed");
  refused(
      {plan_line(), R"({"property":"p0","batch":0,"case_seed":7,"cases":10,"seconds":-1,"status":"passed"})"},
      "'seconds' is -1, not a time in seconds");
  refused({R"({"something":"else"})"}, "line 2 is neither a plan nor a finished batch");
}
