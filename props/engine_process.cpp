// An engine in any language behind EngineUnderTest: a child process speaking the engine protocol
// (docs/protocol.md) on its stdin/stdout. It is started once per run and kept warm between
// cases (AFL's fork server does the same), its capabilities come from its hello reply, and
// generate() runs the same loops as llama.cpp's adapter. A broken engine (it exits, hangs,
// writes a line that is not JSON, answers the wrong id, a wrong shape, NaN logits, an error
// for an op it claimed) is a finding: one line naming the engine, the request and the problem,
// the engine's last lines of stderr, and exit status 4 (kEngineBroken).
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
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
#include "engine/generate_loops.h"
#include "props/engine_registry.h"
#include "props/scenario.h"
#include "protocol/codec.h"

namespace miniinfer::props {
namespace {

using nlohmann::json;

constexpr int kEngineBroken = 4;  // props' exit status for a broken engine (props --help)
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
    return fmt::format("process '{}': {} {} (protocol {}{}{}{}{})", s_.cmd, s_.hello.value("name", "?"),
                       s_.hello.value("version", "?"), protocol::kVersion, kv_rows_ ? ", K/V rows" : "",
                       trace_ok_ ? ", trace" : "", poison_ ? ", poison" : "",
                       start_request_ ? ", start_request" : "");
  }
  bool has(Capability c) const override {
    return (c == Capability::KvRows && kv_rows_) || (c == Capability::Trace && trace_ok_);
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

 private:
  [[noreturn]] void broken(const json& req, const std::string& problem);
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
  bool kv_rows_ = false, trace_ok_ = false, poison_ = false, start_request_ = false;
  std::vector<int> to_engine_;  // our token id -> the engine's (identity for "minigpt")
  bool same_ids_ = false;       // to_engine_ is the identity
  std::vector<int> cursors_;    // mirrored from the operations: the protocol has no cursor query
  long next_id_ = 0;            // so the last request sent was next_id_ - 1
  Trace* trace_ = nullptr;      // trace_call's: the forward call countdown_ calls from now
  int countdown_ = 0;
  Trace* whole_ = nullptr;  // generate()'s traced run: every forward call of it
};

ProcessEngine::ProcessEngine(ProcessSettings s, const Model& model, int batch, int capacity)
    : s_(std::move(s)),
      config_(model.config),
      child_(s_.cmd, s_.timeout),
      batch_(batch),
      capacity_(capacity) {
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
  std::_Exit(kEngineBroken);  // not exit(): Catch2 and RapidCheck are mid-case
}

// One request, its reply checked for the id and for an error. out_of_capacity throws Error
// (ours throws there too); any other error is a finding.
json ProcessEngine::call(json req) {
  req["id"] = next_id_++;
  const std::string line = protocol::dump_line(req);
  std::string problem;
  const std::optional<std::string> text = child_.exchange(line, problem);
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
    broken(req, fmt::format("error {}: {}", code, message));
  }
  return reply;
}

void ProcessEngine::handshake(const Model& model, int batch, int capacity) {
  const json req = {{"id", 0}, {"op", "hello"}, {"protocol", {protocol::kVersion}}};
  next_id_ = 0;
  json reply = call(req);
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
    if (V != model.config.vocab_size)
      broken(req, fmt::format("vocab_size {}, the model's is {}", V, model.config.vocab_size));
    if (seqs < batch || positions < capacity)
      broken(req, fmt::format("holds {} sequences of {} positions; props needs {} of {}", seqs, positions,
                              batch, capacity));
    const json vocab = reply.at("vocab");
    to_engine_.resize(static_cast<size_t>(V));
    if (vocab == "minigpt") {
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

KvRows ProcessEngine::rows(const json& req, const json& reply, int T) {
  KvRows kv{.n_layer = config_.n_layer,
            .n_head = config_.n_head,
            .T = T,
            .d_head = config_.d_head(),
            .k = {},
            .v = {}};
  const std::vector<int> shape = {kv.n_layer, kv.n_head, T, kv.d_head};
  try {
    protocol::Tensor k = protocol::decode_tensor(reply.at("k"), "k"),
                     v = protocol::decode_tensor(reply.at("v"), "v");
    if (k.shape != shape || v.shape != shape)
      broken(req, fmt::format("K/V rows of shape {} and {}, expected {}", json(k.shape).dump(),
                              json(v.shape).dump(), json(shape).dump()));
    kv.k = std::move(k.data);
    kv.v = std::move(v.data);
  } catch (const std::exception& e) {
    broken(req, e.what());
  }
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
  return std::make_unique<ProcessEngine>(read_settings(settings), model, batch, capacity);
}

}  // namespace

const EngineDecl kProcess = {
    .name = "process",
    .note = "any engine speaking docs/protocol.md",
    .flags = {{.name = "--engine-cmd",
               .arg = " CMD",
               .help = "the engine's command line, run with /bin/sh -c once per run\n"
                       "(minigpt serve is ours); a broken engine ends the run with status 4",
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
};

}  // namespace miniinfer::props
