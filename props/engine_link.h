// A bare link to an engine process speaking docs/protocol.md: the process engine's own child
// and transport (engine_process.cpp), for callers that judge the replies themselves
// (props --conform, props/conform.h) instead of ending the run at the first bad one.
#pragma once
#include <memory>
#include <optional>
#include <string>

namespace miniinfer::props {

class EngineLink {
 public:
  EngineLink(const std::string& cmd, double timeout_seconds);
  ~EngineLink();  // closes the engine's stdin, waits a second, then kills its process group
  // Empty on success, else why the command could not be started.
  std::string start();
  // Sends one line and reads one back; nullopt (and `problem`) when the engine exited or hung.
  std::optional<std::string> exchange(const std::string& line, std::string& problem);
  std::string stderr_tail() const;  // its last lines of stderr
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace miniinfer::props
