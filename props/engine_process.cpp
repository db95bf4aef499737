// An engine in any language behind EngineUnderTest: a child process speaking the engine protocol
// (docs/protocol.md) on its stdin/stdout. It is started once per run and kept warm between
// cases (AFL's fork server does the same), its capabilities come from its hello reply, and
// generate() runs the same loops as llama.cpp's adapter. A broken engine (it exits, hangs,
// writes a line that is not JSON, answers the wrong id, a wrong shape, NaN logits, an error
// for an op it claimed) is a finding: one line naming the engine, the request and the problem,
// the engine's last lines of stderr, and exit status kExitEngineBroke (base/exit_status.h). A crash during a case
// (it exits, is killed, or answers `internal` after its hello) is that case's finding instead:
// the engine is restarted and EngineCrashed thrown (run_engine_case, props/runner.h).
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/exit_status.h"
#include "engine/generate_loops.h"
#include "props/engine_link.h"
#include "props/engine_registry.h"
#include "props/engine_tokenized.h"
#include "props/scenario.h"
#include "protocol/codec.h"

namespace miniinfer::props {
namespace {

using nlohmann::json;

constexpr int kStderrTail = 5;    // lines of the engine's stderr a finding shows

// The child: its process group (so a shell's own children die with it), its pipes, and its
// stderr in an unlinked temporary file, read back only when there is something to report.
class Child {
 public:
  Child(const std::string& cmd, double timeout) : cmd_(cmd), timeout_(timeout) {}
  ~Child() { stop(); }
  // Empty on success, else what went wrong.
  std::string start();
  // Sends one line and reads one back; on failure returns nullopt and sets `problem`.
  std::optional<std::string> exchange(const std::string& line, std::string& problem);
  std::string stderr_tail() const;
  void stop();  // closes stdin, waits a second, then kills the group; reaps it either way
  // Stops this one and starts the command again: empty on success, else what went wrong.
  std::string restart();
  bool exited() const { return reaped_; }  // it ended on its own (an exchange found it gone)
  std::string how() const;                 // "exit status 3", "signal 11"
  const std::string& cmd() const { return cmd_; }

 private:
  std::string exited_how();
  std::string cmd_;
  double timeout_;
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string buffer_;       // bytes read past the last line
  std::vector<char> chunk_;  // what one read() gets
  int status_ = 0;
  bool reaped_ = false;
};

std::string Child::start() {
  signal(SIGPIPE, SIG_IGN);  // a write to an exited engine is EPIPE, reported as its exit
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) || pipe2(from_child, O_CLOEXEC)) return "cannot make pipes";
  char name[] = "/tmp/props-engine-stderr-XXXXXX";
  err_ = mkstemp(name);
  if (err_ < 0) return "cannot make a file for its stderr";
  unlink(name);
  pid_ = fork();
  if (pid_ < 0) return "cannot fork";
  if (pid_ == 0) {
    setpgid(0, 0);
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    dup2(err_, 2);
    execl("/bin/sh", "sh", "-c", cmd_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid_, pid_);  // also here, so the group exists whichever runs first
  // Pipes of 1 MiB (Linux's default limit for a user), so a reply of many logits rows crosses
  // in one or a few writes instead of 64 KiB at a time, each a wake-up of props. Refused: 64 KiB.
  fcntl(from_child[0], F_SETPIPE_SZ, 1 << 20);
  fcntl(to_child[1], F_SETPIPE_SZ, 1 << 20);
  close(to_child[0]);
  close(from_child[1]);
  in_ = to_child[1];
  out_ = from_child[0];
  return "";
}

std::string Child::exited_how() {
  if (!reaped_ && waitpid(pid_, &status_, 0) == pid_) reaped_ = true;
  if (WIFSIGNALED(status_)) return fmt::format("the engine was killed by signal {}", WTERMSIG(status_));
  if (WEXITSTATUS(status_) == 127) return "the engine command did not start (exit status 127)";
  return fmt::format("the engine exited with status {}", WEXITSTATUS(status_));
}

std::string Child::how() const {
  if (WIFSIGNALED(status_)) return fmt::format("signal {}", WTERMSIG(status_));
  const int code = WEXITSTATUS(status_);  // the shell's status for a child a signal killed: 128 + it
  return code > 128 && code < 128 + 65
             ? fmt::format("exit status {}: signal {} under /bin/sh", code, code - 128)
             : fmt::format("exit status {}", code);
}

std::string Child::restart() {
  stop();
  pid_ = -1;
  buffer_.clear();
  status_ = 0;
  reaped_ = false;
  return start();
}

std::optional<std::string> Child::exchange(const std::string& line, std::string& problem) {
  const std::string out = line + "\n";
  for (size_t done = 0; done < out.size();) {
    const ssize_t n = write(in_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      problem = exited_how();
      return std::nullopt;
    }
    done += static_cast<size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
  for (size_t seen = 0;;) {  // buffer_[0, seen) holds no newline
    const size_t nl = buffer_.find('\n', seen);
    if (nl != std::string::npos) {
      std::string reply;
      if (nl + 1 == buffer_.size()) {  // the usual case: the buffer is the line, moved, not copied
        reply.swap(buffer_);
        reply.pop_back();
      } else {
        reply = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
      }
      return reply;
    }
    seen = buffer_.size();
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{out_, POLLIN, 0};
    const int ready = left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      problem = fmt::format("no reply within {:g} s (--engine-timeout)", timeout_);
      return std::nullopt;
    }
    chunk_.resize(1 << 20);  // as much as the pipe holds
    const ssize_t n = read(out_, chunk_.data(), chunk_.size());
    if (n <= 0) {
      problem = exited_how();
      return std::nullopt;
    }
    buffer_.append(chunk_.data(), static_cast<size_t>(n));
  }
}

std::string Child::stderr_tail() const {
  struct stat st;
  if (err_ < 0 || fstat(err_, &st) != 0) return "";
  const off_t size = st.st_size, from = size > 4096 ? size - 4096 : 0;
  std::string text(static_cast<size_t>(size - from), '\0');
  if (pread(err_, text.data(), text.size(), from) != static_cast<ssize_t>(text.size())) return "";
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) return "";
  size_t at = text.size();
  for (int i = 0; i < kStderrTail && at != std::string::npos && at > 0; ++i) at = text.rfind('\n', at - 1);
  return at == std::string::npos ? text : text.substr(at + 1);
}

void Child::stop() {
  if (in_ >= 0) close(in_);
  in_ = -1;
  if (pid_ > 0 && !reaped_) {
    for (int i = 0; i < 100 && !reaped_; ++i) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_)
        reaped_ = true;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(-pid_, SIGKILL);  // the group: a shell's children too
    if (!reaped_ && waitpid(pid_, &status_, 0) == pid_) reaped_ = true;
  }
  if (out_ >= 0) close(out_);
  if (err_ >= 0) close(err_);
  out_ = err_ = -1;
}

struct ProcessSettings {
  std::string cmd;
  double timeout = 60;
  json hello;  // the engine's hello reply, once started (a replay checks it is the same engine)
};

ProcessSettings read_settings(const json& j) {
  if (!j.is_object()) fail("engine settings: must be an object");
  try {
    ProcessSettings s;
    s.cmd = j.at("cmd").get<std::string>();
    s.timeout = j.at("timeout").get<double>();
    s.hello = j.value("hello", json());
    if (!(s.timeout > 0 && s.timeout <= 86400))
      fail("engine settings: timeout {} outside (0, 86400]", s.timeout);
    return s;
  } catch (const json::exception& e) {
    fail("engine settings: {}", e.what());
  }
}

class ProcessEngine final : public EngineUnderTest {
 public:
  ProcessEngine(ProcessSettings s, const Model& model, int batch, int capacity);

  std::string name() const override { return "process"; }
  json settings() const override { return {{"cmd", s_.cmd}, {"timeout", s_.timeout}, {"hello", s_.hello}}; }
  std::string describe() const override {
    return fmt::format("process '{}': {} {} (protocol {}{}{}{}{}{})", s_.cmd, s_.hello.value("name", "?"),
                       s_.hello.value("version", "?"), protocol::kVersion, kv_rows_ ? ", K/V rows" : "",
                       trace_ok_ ? ", trace" : "", poison_ ? ", poison" : "",
                       start_request_ ? ", start_request" : "",
                       prefix_block_ ? fmt::format(", prefix cache in blocks of {}", prefix_block_) : "");
  }
  bool has(Capability c) const override {
    return (c == Capability::KvRows && kv_rows_) || (c == Capability::Trace && trace_ok_) ||
           (c == Capability::PrefixCache && prefix_block_ > 0);
  }
  std::string lacks_why(Capability c) const override {
    return c == Capability::Threads ? "the protocol has no command that sets a thread count (docs/protocol.md): the "
                                      "process runs on the threads it chose itself"
                                    : "";
  }
  const Config& config() const override { return config_; }
  int vocab_size() const override { return config_.vocab_size; }
  int batch() const override { return batch_; }
  int capacity() const override { return capacity_; }
  int max_seq_len() const override { return max_recompute_; }
  int cursor(int seq) const override { return cursors_.at(static_cast<size_t>(seq)); }

  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits) override;
  void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) override;
  std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows) override;
  std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows) override;
  void truncate(int seq, int p) override {
    const json req = {{"op", "truncate"}, {"seq", seq}, {"pos", p}};
    cursors_.at(static_cast<size_t>(seq)) = cursor_after(req, call(req), p);
  }
  void fork(int src, int dst, int prefix_len) override {
    const json req = {{"op", "fork"}, {"src", src}, {"dst", dst}, {"prefix_len", prefix_len}};
    cursors_.at(static_cast<size_t>(dst)) = cursor_after(req, call(req), prefix_len);
  }
  void reset() override {
    call({{"op", "reset"}});
    std::fill(cursors_.begin(), cursors_.end(), 0);
  }
  void reset(int seq) override {
    call({{"op", "reset"}, {"seq", seq}});
    cursors_.at(static_cast<size_t>(seq)) = 0;
  }
  // As ours in-process (props/scenario.h): a reset, then, where the engine offers it, every
  // free slot poisoned; an engine without the capability `poison` gets the reset alone.
  void clean_slate() override {
    if (poison_)
      call({{"op", "reset"}, {"poison", std::bit_cast<uint32_t>(kPoison)}});  // one round trip
    else
      call({{"op", "reset"}});
    std::fill(cursors_.begin(), cursors_.end(), 0);
    trace_ = nullptr;
  }
  // Where the engine offers it, the engine's own start of a request (ours asks the active
  // fault, as in-process), and the cursor it leaves; otherwise a reset of the sequence.
  void start_request(int seq) override {
    if (!start_request_) return reset(seq);
    start_requests({seq});
  }
  GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) override {
    detail::check_request(prompts, o, batch(), capacity());
    if (o.trace && trace_) fail("process: generate with a trace while trace_call waits for a call");
    if (start_request_) {  // on every sequence, as Engine::start_request()
      std::vector<int> all(static_cast<size_t>(batch()));
      for (int seq = 0; seq < batch(); ++seq) all[static_cast<size_t>(seq)] = seq;
      start_requests(all);
    } else {
      reset();
    }
    // A traced run (the reporter's) traces every forward call of the loops, as ours does.
    struct Whole {
      Trace*& t;
      ~Whole() { t = nullptr; }
    } whole{whole_ = o.trace};
    EngineUnderTest& self = *this;  // the loops call the base's forward_uncached(tokens, logits)
    return detail::run_loops(self, prompts, o);
  }
  bool trace_call(Trace* trace, int nth) override {
    if (!trace_ok_) return false;
    trace_ = trace;
    countdown_ = nth;
    return true;
  }
  std::optional<KvRows> cache_rows(int seq) override;
  std::optional<KvRows> recompute_rows(std::span<const int> tokens) override;

  // Capability PrefixCache (the hello's prefix_cache and prefix_block): the engine's own
  // submit and free; without it, the defaults (start_request and one chunk; reset).
  Submitted submit(int seq, std::span<const int> prompt) override;
  int prefix_block() const override { return prefix_block_; }
  void free(int seq) override {
    if (!prefix_block_) return reset(seq);
    call({{"op", "free"}, {"seq", seq}});
    cursors_.at(static_cast<size_t>(seq)) = 0;
  }

  // A hello with "vocab": "tokenize": the engine's ids of each of `words`, asked once; a reply
  // that is malformed, a word that is no tokens, or too few positions for `capacity` words of
  // the longest is a broken engine (exit status 4). Empty for an engine that takes our ids.
  std::vector<std::vector<int>> tokenize(const std::vector<std::string>& words, int capacity);

 private:
  [[noreturn]] void broken(const json& req, const std::string& problem);
  [[noreturn]] void crashed(const json& req, const std::string& how);
  json call(json req);
  void handshake(const Model& model, int batch, int capacity);
  json engine_tokens(std::span<const int> ours) const;
  int cursor_after(const json& req, const json& reply, int expected);
  int checked_cursor(const json& req, const json& c);
  void start_requests(const std::vector<int>& seqs);
  std::vector<float> logits(const json& req, const json& reply, std::vector<int> shape);
  json forward(json req, int trace_seq);
  KvRows rows(const json& req, const json& reply, int T);

  ProcessSettings s_;
  Config config_;
  Child child_;
  int batch_, capacity_, max_recompute_ = 0;
  bool kv_rows_ = false, trace_ok_ = false, tokenizes_ = false, poison_ = false, start_request_ = false;
  int prefix_block_ = 0;        // capability prefix_cache's granularity; 0 without it
  int positions_ = 0;           // the engine's, from hello
  std::vector<int> to_engine_;  // our token id -> the engine's (identity for "minigpt")
  bool same_ids_ = false;       // to_engine_ is the identity
  std::vector<int> cursors_;    // mirrored from the operations: the protocol has no cursor query
  long next_id_ = 0;            // so the last request sent was next_id_ - 1
  Trace* trace_ = nullptr;      // trace_call's: the forward call countdown_ calls from now
  int countdown_ = 0;
  const Model* model_;  // for the handshake of a restarted engine
  int asked_batch_, asked_capacity_;
  bool started_ = false;  // the first handshake is done: a crash from now on is a case's
  Trace* whole_ = nullptr;  // generate()'s traced run: every forward call of it
};

ProcessEngine::ProcessEngine(ProcessSettings s, const Model& model, int batch, int capacity)
    : s_(std::move(s)),
      config_(model.config),
      child_(s_.cmd, s_.timeout),
      batch_(batch),
      capacity_(capacity),
      model_(&model),
      asked_batch_(batch),
      asked_capacity_(capacity) {
  const json saved = s_.hello;
  if (const std::string why = child_.start(); !why.empty()) broken({{"id", 0}, {"op", "hello"}}, why);
  handshake(model, batch, capacity);
  // A replayed case names the engine it was saved against: the same name and version.
  if (saved.is_object() && (saved.value("name", "") != s_.hello.value("name", "") ||
                            saved.value("version", "") != s_.hello.value("version", "")))
    fail("--engine-cmd '{}': the case was saved against {} {}, this engine is {} {}", s_.cmd,
         saved.value("name", "?"), saved.value("version", "?"), s_.hello.value("name", "?"),
         s_.hello.value("version", "?"));
  cursors_.assign(static_cast<size_t>(batch_), 0);
  started_ = true;
}

// The engine exited, was killed, or answered `internal` during a case: the case's finding. The
// engine is started again (a case is a pure function of its inputs, so the next case, or this
// one re-run, must not see what broke it), then EngineCrashed names the request and the op.
void ProcessEngine::crashed(const json& req, const std::string& how) {
  std::string tail = child_.stderr_tail();
  for (size_t at = tail.find('\n'); at != std::string::npos; at = tail.find('\n', at + 3))
    tail.replace(at, 1, " | ");
  const std::string line = fmt::format(
      "the engine {} ({}) at request {} (op {}){}", how.starts_with("error") ? "failed" : "crashed", how,
      req.value("id", json(next_id_ - 1)).dump(), req.value("op", std::string("?")),
      tail.empty() ? "" : "; its stderr ended: " + tail);
  if (const std::string why = child_.restart(); !why.empty()) broken({{"id", 0}, {"op", "hello"}}, why);
  trace_ = nullptr;
  handshake(*model_, asked_batch_, asked_capacity_);
  cursors_.assign(static_cast<size_t>(batch_), 0);
  throw EngineCrashed(line);
}

void ProcessEngine::broken(const json& req, const std::string& problem) {
  const std::string tail = child_.stderr_tail();
  child_.stop();
  std::fprintf(stderr, "props: engine '%s': request %s %s: %s\n", s_.cmd.c_str(),
               req.value("id", json(next_id_ - 1)).dump().c_str(), req.value("op", std::string("?")).c_str(),
               problem.c_str());
  if (!tail.empty()) {
    size_t at = 0;
    while (at <= tail.size()) {
      const size_t nl = tail.find('\n', at);
      std::fprintf(stderr, "  engine stderr: %s\n", tail.substr(at, nl - at).c_str());
      if (nl == std::string::npos) break;
      at = nl + 1;
    }
  }
  std::fflush(nullptr);
  std::_Exit(kExitEngineBroke);  // not exit(): Catch2 and RapidCheck are mid-case
}

// One request, its reply checked for the id and for an error. out_of_capacity throws Error
// (ours throws there too); any other error is a finding.
json ProcessEngine::call(json req) {
  req["id"] = next_id_++;
  const std::string line = protocol::dump_line(req);
  std::string problem;
  const std::optional<std::string> text = child_.exchange(line, problem);
  if (!text && started_ && child_.exited()) crashed(req, child_.how());
  if (!text) broken(req, problem);
  const json reply = protocol::parse_line(*text);
  if (reply.is_discarded() || !reply.is_object())
    broken(req, fmt::format("a reply that is not a JSON object: '{}'", text->substr(0, 80)));
  if (reply.value("re", json()) != req["id"])
    broken(req,
           fmt::format("a reply to id {} (expected {})", reply.value("re", json()).dump(), req["id"].dump()));
  if (reply.contains("error")) {
    const json& e = reply["error"];
    const std::string code = e.is_object() ? e.value("code", "?") : "?";
    const std::string message = e.is_object() ? e.value("message", "") : e.dump();
    if (code == "out_of_capacity") fail("{}", message);
    if (code == "internal" && started_) crashed(req, "error internal: " + message);
    broken(req, fmt::format("error {}: {}", code, message));
  }
  return reply;
}

void ProcessEngine::handshake(const Model& model, int batch, int capacity) {
  // props and the engine take turns (one request at a time), so they can share one CPU: the CPU
  // props is on goes in the hello, and an engine that computes on one thread runs itself there
  // and answers "pinned": then props stays there too, and no request waits for a wake-up on
  // another core (docs/protocol.md, "The handshake").
  const int cpu = sched_getcpu();
  json req = {{"id", 0}, {"op", "hello"}, {"protocol", {protocol::kVersion}}};
  if (cpu >= 0) req["cpu"] = cpu;
  next_id_ = 0;
  json reply = call(req);
  if (cpu >= 0 && reply.contains("pinned") && reply["pinned"] == true) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);  // best effort: on failure props runs where it may
  }
  try {
    if (reply.at("protocol").get<int>() != protocol::kVersion)
      broken(req, fmt::format("chose protocol {}, props offered [{}]", reply.at("protocol").dump(),
                              protocol::kVersion));
    const int V = reply.at("vocab_size").get<int>(), seqs = reply.at("sequences").get<int>();
    const int positions = reply.at("positions").get<int>();
    max_recompute_ = std::min(reply.at("max_recompute").get<int>(), model.config.max_seq_len);
    const json caps = reply.value("capabilities", json::object());
    kv_rows_ = caps.value("kv_rows", false);
    trace_ok_ = caps.value("trace", false);
    poison_ = caps.value("poison", false);
    start_request_ = caps.value("start_request", false);
    prefix_block_ = 0;
    if (caps.value("prefix_cache", false)) {
      const json block = reply.value("prefix_block", json());
      if (!block.is_number_integer() || block.get<long>() < 1 || block.get<long>() > 1 << 20)
        broken(req, fmt::format("claims prefix_cache with prefix_block {}: the granularity of reuse is "
                                "an integer of at least 1",
                                block.is_null() ? "missing" : printable_name(block.dump())));
      prefix_block_ = block.get<int>();
    }
    const json vocab = reply.at("vocab");
    tokenizes_ = vocab == "tokenize";
    positions_ = positions;
    if (tokenizes_) {  // the engine's own ids: tokenize() maps our words, engine_tokenized.cpp the rest
      if (V < 1) broken(req, fmt::format("vocab_size {}", V));
      if (seqs < batch) broken(req, fmt::format("holds {} sequences; props needs {}", seqs, batch));
      config_.vocab_size = V;
      capacity_ = positions;
      max_recompute_ = reply.at("max_recompute").get<int>();
    } else {
      if (V != model.config.vocab_size)
        broken(req, fmt::format("vocab_size {}, the model's is {}", V, model.config.vocab_size));
      if (seqs < batch || positions < capacity)
        broken(req, fmt::format("holds {} sequences of {} positions; props needs {} of {}", seqs, positions,
                                batch, capacity));
      batch_ = seqs;  // all it holds: p11 draws programs on up to 8 of them
    }
    to_engine_.resize(static_cast<size_t>(V));
    if (tokenizes_ || vocab == "minigpt") {  // ids as they are: the engine's own, or ours
      for (int i = 0; i < V; ++i) to_engine_[static_cast<size_t>(i)] = i;
    } else {
      const auto words = vocab.get<std::vector<std::string>>();
      if (static_cast<int>(words.size()) != V)
        broken(req, fmt::format("vocab lists {} strings, vocab_size is {}", words.size(), V));
      std::map<std::string, int> id;
      for (int i = 0; i < V; ++i) id[words[static_cast<size_t>(i)]] = i;
      for (int i = 0; i < V; ++i) {
        const auto it = id.find(model.vocab[static_cast<size_t>(i)]);
        if (it == id.end())
          broken(req, fmt::format("vocab lacks the model's token '{}'", model.vocab[static_cast<size_t>(i)]));
        to_engine_[static_cast<size_t>(i)] = it->second;
      }
    }
  } catch (const json::exception& e) {
    broken(req, fmt::format("a hello reply without the fields docs/protocol.md lists: {}", e.what()));
  }
  reply.erase("re");
  reply.erase("pinned");  // where it runs, not what it is: not in case files
  s_.hello = std::move(reply);
  same_ids_ = true;
  for (size_t i = 0; i < to_engine_.size(); ++i)
    same_ids_ = same_ids_ && to_engine_[i] == static_cast<int>(i);
}

// The cursor a truncate, fork or start_request left: the reply's `cursor` when it has one (the
// engine's own, which a cache bug may have put elsewhere: props reads ours in-process too),
// else the one the request implies.
int ProcessEngine::cursor_after(const json& req, const json& reply, int expected) {
  return reply.contains("cursor") ? checked_cursor(req, reply["cursor"]) : expected;
}

int ProcessEngine::checked_cursor(const json& req, const json& c) {
  if (!c.is_number_integer() || c.get<long>() < 0 || c.get<long>() > capacity_)
    broken(req, fmt::format("a reply whose cursor is {}, not 0..{}", c.dump(), capacity_));
  return c.get<int>();
}

void ProcessEngine::start_requests(const std::vector<int>& seqs) {
  const json req = {{"op", "start_request"}, {"seqs", seqs}};
  const json reply = call(req);
  const json cursors = reply.value("cursors", json());
  if (!cursors.is_array() || cursors.size() != seqs.size())
    broken(req, fmt::format("a start_request reply without {} cursors", seqs.size()));
  for (size_t i = 0; i < seqs.size(); ++i)
    cursors_.at(static_cast<size_t>(seqs[i])) = checked_cursor(req, cursors[i]);
}

std::vector<std::vector<int>> ProcessEngine::tokenize(const std::vector<std::string>& words, int capacity) {
  if (!tokenizes_) return {};
  const json req = {{"op", "tokenize"}, {"texts", words}};
  const json reply = call(req);
  const json ids = reply.value("ids", json());
  if (!ids.is_array() || ids.size() != words.size())
    broken(req, fmt::format(
                    "a tokenize reply whose 'ids' is not a list of {} lists of token ids (one per text): {}",
                    words.size(), printable_name(reply.dump())));
  std::vector<std::vector<int>> out(words.size());
  size_t longest = 0;
  for (size_t w = 0; w < words.size(); ++w) {
    const json& list = ids[w];
    if (!list.is_array() || list.empty())
      broken(req, fmt::format("the word '{}' tokenizes to {}: every word must be at least one token",
                              words[w], printable_name(list.dump())));
    for (const json& t : list) {
      if (!t.is_number_integer() || t.get<long>() < 0 || t.get<long>() >= vocab_size())
        broken(req, fmt::format("the word '{}' tokenizes to {}: ids are integers in 0..{}", words[w],
                                printable_name(list.dump()), vocab_size() - 1));
      out[w].push_back(t.get<int>());
    }
    longest = std::max(longest, out[w].size());
  }
  if (static_cast<long>(positions_) < static_cast<long>(capacity) * static_cast<long>(longest))
    broken(req, fmt::format("holds {} positions a sequence; props needs {} words of up to {} tokens: {}",
                            positions_, capacity, longest,
                            static_cast<long>(capacity) * static_cast<long>(longest)));
  return out;
}

json ProcessEngine::engine_tokens(std::span<const int> ours) const {
  json out = json::array();
  for (int t : ours) out.push_back(t >= 0 && t < vocab_size() ? to_engine_[static_cast<size_t>(t)] : t);
  return out;
}

// A reply's logits: the shape props asked for, finite, and back in our token order.
std::vector<float> ProcessEngine::logits(const json& req, const json& reply, std::vector<int> shape) {
  protocol::Tensor t;
  try {
    t = protocol::decode_tensor(reply.at("logits"), "logits");
  } catch (const std::exception& e) {
    broken(req, e.what());
  }
  if (t.shape != shape)
    broken(req, fmt::format("logits of shape {}, expected {}", json(t.shape).dump(), json(shape).dump()));
  const size_t V = static_cast<size_t>(vocab_size());
  if (same_ids_) {  // the engine's ids are ours: the rows as they came, once checked
    for (size_t k = 0; k < t.data.size(); ++k)
      if (!std::isfinite(t.data[k]))
        broken(req, fmt::format("logit {} of row {} is {}", k % V, k / V, t.data[k]));
    return std::move(t.data);
  }
  std::vector<float> out(t.data.size());
  for (size_t r = 0; r < t.data.size() / V; ++r)
    for (size_t i = 0; i < V; ++i) {
      const float x = t.data[r * V + static_cast<size_t>(to_engine_[i])];
      if (!std::isfinite(x)) broken(req, fmt::format("logit {} of row {} is {}", i, r, x));
      out[r * V + i] = x;
    }
  return out;
}

// A forward request, traced when trace_call's countdown reaches it.
json ProcessEngine::forward(json req, int trace_seq) {
  Trace* trace = whole_;
  if (!trace && trace_ && countdown_-- == 0) {
    trace = trace_;
    trace_ = nullptr;
  }
  if (trace) {
    req["trace"] = {{"positions", trace->positions}, {"cache_reads", trace->cache_reads}};
    req["seq"] = req.value("seq", trace_seq);
  }
  json reply = call(req);
  if (!trace) return reply;
  try {
    for (const json& r : reply.at("trace")) {
      TraceRecord rec = protocol::decode_record(r);
      rec.step = trace->step;
      rec.call = trace->calls;
      trace->records.push_back(std::move(rec));
    }
  } catch (const std::exception& e) {
    broken(req, fmt::format("trace: {}", e.what()));
  }
  ++trace->calls;
  return reply;
}

void ProcessEngine::forward_batch(std::span<const Chunk> chunks, std::span<float> out) {
  json list = json::array();
  for (const Chunk& c : chunks) list.push_back({{"seq", c.seq}, {"tokens", engine_tokens(c.tokens)}});
  const json req = {{"op", "forward_batch"}, {"chunks", list}};
  const std::vector<float> l = logits(req, forward(req, 0), {static_cast<int>(chunks.size()), vocab_size()});
  std::copy(l.begin(), l.end(), out.begin());
  for (const Chunk& c : chunks) cursors_.at(static_cast<size_t>(c.seq)) += static_cast<int>(c.tokens.size());
}

void ProcessEngine::decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> out) {
  const json req = {{"op", "decode"},
                    {"seqs", std::vector<int>(seqs.begin(), seqs.end())},
                    {"tokens", engine_tokens(tokens)}};
  const std::vector<float> l = logits(req, forward(req, 0), {static_cast<int>(seqs.size()), vocab_size()});
  std::copy(l.begin(), l.end(), out.begin());
  for (int s : seqs) ++cursors_.at(static_cast<size_t>(s));
}

std::vector<float> ProcessEngine::forward_cached(int seq, std::span<const int> tokens, bool all_rows) {
  const json req = {
      {"op", "forward_cached"}, {"seq", seq}, {"tokens", engine_tokens(tokens)}, {"all_rows", all_rows}};
  const int n = static_cast<int>(tokens.size());
  std::vector<float> l = logits(
      req, forward(req, seq), all_rows ? std::vector<int>{n, vocab_size()} : std::vector<int>{vocab_size()});
  cursors_.at(static_cast<size_t>(seq)) += n;
  return l;
}

std::vector<float> ProcessEngine::forward_uncached(std::span<const int> tokens, bool all_rows) {
  json req = {{"op", "forward_uncached"}, {"tokens", engine_tokens(tokens)}, {"all_rows", all_rows}};
  const int n = static_cast<int>(tokens.size());
  const int seq = whole_ ? whole_->seq : trace_ ? trace_->seq : 0;
  return logits(req, forward(req, seq),
                all_rows ? std::vector<int>{n, vocab_size()} : std::vector<int>{vocab_size()});
}

// A new request on `seq` holding exactly `prompt`; the engine may reuse rows of an earlier
// prompt and says how many tokens: a whole number of prefix blocks, never the last position.
Submitted ProcessEngine::submit(int seq, std::span<const int> prompt) {
  if (!prefix_block_) return EngineUnderTest::submit(seq, prompt);
  const json req = {{"op", "submit"}, {"seq", seq}, {"tokens", engine_tokens(prompt)}};
  const json reply = call(req);
  Submitted out{logits(req, reply, {vocab_size()}), 0};
  const json reused = reply.value("reused", json());
  const long n = static_cast<long>(prompt.size());
  if (!reused.is_number_integer() || reused.get<long>() < 0)
    broken(req, fmt::format("a submit reply whose reused is {}, not a count of tokens",
                            reused.is_null() ? "missing" : printable_name(reused.dump())));
  const long r = reused.get<long>();
  if (r > n - 1)
    broken(req, fmt::format("reused {} tokens of a prompt of {}: at most {} (the last position is always "
                            "computed)",
                            r, n, n - 1));
  if (r % prefix_block_ != 0)
    broken(req, fmt::format("reused {} tokens, not a multiple of prefix_block {}", r, prefix_block_));
  out.reused = static_cast<int>(r);
  cursors_.at(static_cast<size_t>(seq)) = cursor_after(req, reply, static_cast<int>(n));
  return out;
}

KvRows ProcessEngine::rows(const json& req, const json& reply, int T) {
  KvRows kv{.n_layer = config_.n_layer,
            .n_head = config_.n_head,
            .T = T,
            .d_head = config_.d_head(),
            .k = {},
            .v = {},
            .held = {}};
  const std::vector<int> shape = {kv.n_layer, kv.n_head, T, kv.d_head};
  protocol::Tensor k, v;
  try {
    k = protocol::decode_tensor(reply.at("k"), "k");
    v = protocol::decode_tensor(reply.at("v"), "v");
  } catch (const std::exception& e) {
    broken(req, e.what());
  }
  // Rows of the right form but another count: the engine's cursor is not the one props
  // counted, a finding of the property that asked (p11's cursor check), not a broken engine.
  if (k.shape == v.shape && k.shape.size() == 4 && k.shape[2] != T &&
      std::vector<int>{k.shape[0], k.shape[1], T, k.shape[3]} == shape)
    fail("cache_rows: the engine holds {} rows of sequence {}, where its operations put {}", k.shape[2],
         req.value("seq", -1), T);
  if (k.shape != shape || v.shape != shape)
    broken(req, fmt::format("K/V rows of shape {} and {}, expected {}", json(k.shape).dump(),
                            json(v.shape).dump(), json(shape).dump()));
  kv.k = std::move(k.data);
  kv.v = std::move(v.data);
  return kv;
}

std::optional<KvRows> ProcessEngine::cache_rows(int seq) {
  if (!kv_rows_) return std::nullopt;
  const json req = {{"op", "cache_rows"}, {"seq", seq}};
  return rows(req, call(req), cursor(seq));
}

std::optional<KvRows> ProcessEngine::recompute_rows(std::span<const int> tokens) {
  if (!kv_rows_) return std::nullopt;
  const json req = {{"op", "recompute_rows"}, {"tokens", engine_tokens(tokens)}};
  return rows(req, call(req), static_cast<int>(tokens.size()));
}

// ---- the declaration ---------------------------------------------------------------------------

json settings(const RunConfig& run) {
  const std::string cmd = flag_value(run, "--engine-cmd");
  const double timeout = std::stod(flag_value(run, "--engine-timeout").substr(0, 9));
  if (!(timeout >= 1)) fail("--engine-timeout: {} is less than 1 second", timeout);
  return {{"cmd", cmd}, {"timeout", timeout}};
}

json read_saved(const json& saved) {
  const ProcessSettings s = read_settings(saved);
  return {{"cmd", s.cmd}, {"timeout", s.timeout}, {"hello", s.hello}};
}

// The saved command (and the engine it answered as), unless this run's --engine-cmd names another.
json replay(const std::string&, const json& saved, const RunConfig& run) {
  json out = read_saved(saved);
  if (!flag_value(run, "--engine-cmd").empty()) out["cmd"] = flag_value(run, "--engine-cmd");
  return out;
}

std::unique_ptr<EngineUnderTest> make(const json& settings, const Model& model, int batch, int capacity) {
  auto engine = std::make_unique<ProcessEngine>(read_settings(settings), model, batch, capacity);
  std::vector<std::vector<int>> ids = engine->tokenize(model.vocab, capacity);
  if (ids.empty()) return engine;
  return tokenized_engine(std::move(engine), std::move(ids), model.config, capacity);
}

}  // namespace

const EngineDecl kProcess = {
    .name = "process",
    .note = "any engine speaking docs/protocol.md",
    .flags = {{.name = "--engine-cmd",
               .arg = " CMD",
               .help = "the engine's command line, run with /bin/sh -c once per run\n"
                       "(minigpt serve is ours; again after a crash); a broken engine ends\n"
                       "the run with status 4, a crash during a case fails the case",
               .fallback = "",
               .elsewhere = "only --engine process starts a command",
               .required = "e.g. --engine-cmd 'build/minigpt serve'"},
              {.name = "--engine-timeout",
               .arg = " SEC",
               .help = "seconds one request may take before the engine counts as hung\n(default 60)",
               .fallback = "60",
               .number = true}},
    .flag_prefix = "--engine-",
    .settings = settings,
    .read_saved = read_saved,
    .replay = replay,
    .make = make,
    .fixed_size = true,
};

// ---- props --conform's link: the same child and transport (props/engine_link.h) -----------------

struct EngineLink::Impl {
  Impl(const std::string& cmd, double timeout) : child(cmd, timeout) {}
  Child child;
};
EngineLink::EngineLink(const std::string& cmd, double timeout)
    : impl_(std::make_unique<Impl>(cmd, timeout)) {}
EngineLink::~EngineLink() = default;
std::string EngineLink::start() { return impl_->child.start(); }
std::optional<std::string> EngineLink::exchange(const std::string& line, std::string& problem) {
  return impl_->child.exchange(line, problem);
}
std::string EngineLink::stderr_tail() const { return impl_->child.stderr_tail(); }
void EngineLink::stop() { impl_->child.stop(); }

}  // namespace miniinfer::props
