#include "props_run.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "base/error.h"

extern char** environ;

namespace miniinfer::mutation {

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);

  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int err = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) fail("cannot run {}: {}", argv[0], std::strerror(err));

  int status = 0;
  rusage usage{};
  // wait4 gives this child's own CPU time, which RUSAGE_CHILDREN cannot when several run at once.
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) fail("waiting for {}: {}", argv[0], std::strerror(errno));
  }
  ProcessResult r;
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  r.cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  std::ifstream in(log_path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  r.output = text.str();
  return r;
}

std::optional<PropertyLine> PropsOutput::first_failure() const {
  for (const auto& p : properties)
    if (!p.ok) return p;
  return std::nullopt;
}

double PropsOutput::seconds_before(const std::string& id) const {
  double sum = 0.0;
  for (const auto& p : properties) {
    if (p.id == id) break;
    sum += p.seconds;
  }
  return sum;
}

PropsOutput read_props_run(const std::string& text, const std::string& summary_path) {
  // props: model NAME (V=.. D=.. L=4 H=.. F=..)   (the next line names the engine and level)
  static const std::regex header(R"(^props: model .* \(V=\d+ D=\d+ L=(\d+) H=\d+ F=\d+\))");
  static const std::regex falsified(R"(Falsifiable after (\d+) tests)");
  PropsOutput out;
  std::istringstream in(text);
  std::string s;
  std::smatch m;
  while (std::getline(in, s))
    if (std::regex_search(s, m, header)) {
      out.n_layer = std::stoi(m[1]);
      break;
    }
  if (out.n_layer < 0)
    fail("props output has no 'props: model ... (.. L=N ..)' header line");

  std::ifstream file(summary_path);
  if (!file) fail("props wrote no summary {} (see its log)", summary_path);
  try {
    const auto j = nlohmann::json::parse(file);
    out.model = j.at("model").get<std::string>();
    out.model_sha256 = j.at("model_sha256").get<std::string>();
    out.fault = j.at("fault").get<std::string>();
    for (const auto& p : j.at("properties")) {
      const std::string status = p.at("status").get<std::string>();
      if (status == "skipped") continue;
      out.properties.push_back(
          {p.at("id").get<std::string>(), status == "passed", p.at("seconds").get<double>()});
      const std::string ce = p.value("counterexample", std::string());
      if (status == "failed" && out.cases_to_failure < 0 && std::regex_search(ce, m, falsified))
        out.cases_to_failure = std::stoi(m[1]);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("summary {}: {}", summary_path, e.what());
  }
  return out;
}

nlohmann::json read_report(const std::string& dir, const std::string& property) {
  const std::string path = dir + "/" + property + ".report.json";
  std::ifstream in(path);
  if (!in) fail("report {}: missing (props printed FAIL for {} but wrote no report)", path, property);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("report {}: not valid JSON ({})", path, e.what());
  }
}

}  // namespace miniinfer::mutation
