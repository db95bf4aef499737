// props_report_check DIR...: every report props wrote into DIR (ID.report.txt beside
// ID.report.json) read back, and its lines checked against each other and against its JSON
// (verdict.h report_contradictions). Prints one line per report and one per contradiction;
// exits 1 on any contradiction, 2 when a folder holds no report or a file cannot be read.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/exit_status.h"
#include "props/verdict.h"

namespace {

bool read(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: props_report_check DIR...\n");
    return miniinfer::kExitRefused;
  }
  int reports = 0, bad = 0;
  for (int a = 1; a < argc; ++a) {
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(argv[a], ec))
      if (entry.path().string().ends_with(".report.json")) found.push_back(entry.path());
    if (ec) {
      std::fprintf(stderr, "props_report_check: %s: %s\n", argv[a], ec.message().c_str());
      return miniinfer::kExitRefused;
    }
    if (found.empty()) {
      std::fprintf(stderr, "props_report_check: %s holds no report\n", argv[a]);
      return miniinfer::kExitRefused;
    }
    std::sort(found.begin(), found.end());
    for (const auto& json_path : found) {
      std::string stem = json_path.string();
      stem.resize(stem.size() - std::string(".report.json").size());
      std::string json_text, text;
      if (!read(json_path, json_text) || !read(stem + ".report.txt", text)) {
        std::fprintf(stderr, "props_report_check: cannot read %s or its .report.txt\n", json_path.c_str());
        return miniinfer::kExitRefused;
      }
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(json_text);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "props_report_check: %s: %s\n", json_path.c_str(), e.what());
        return miniinfer::kExitRefused;
      }
      ++reports;
      const auto found_bad = miniinfer::props::report_contradictions(text, j);
      std::printf("%s  %s (verdict %s)\n", found_bad.empty() ? "ok  " : "FAIL", stem.c_str(),
                  j.contains("verdict") ? j["verdict"].dump().c_str() : "none");
      for (const auto& why : found_bad) std::printf("      %s\n", why.c_str());
      bad += !found_bad.empty();
    }
  }
  std::printf("props_report_check: %d reports, %d with contradictions\n", reports, bad);
  return bad ? miniinfer::kExitFailed : miniinfer::kExitOk;
}
