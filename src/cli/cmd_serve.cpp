// `minigpt serve`: our engine over the engine protocol (docs/protocol.md) on stdin/stdout, so
// props can check it as it checks an engine written in any language. One request per line,
// one reply per line; stderr carries the log. It ends when stdin closes.
#include <sched.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/exit_status.h"
#include "cli/cache_flags.h"
#include "cli/command.h"
#include "engine/engine.h"
#include "model/model_file.h"
#include "protocol/codec.h"

namespace miniinfer::cli {
namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "usage: minigpt serve [--model FILE] [--batch N] [--inject FAULT] [--backend NAME]\n"
    "                     [--kv-cache contiguous|paged] [--block-size N] [--pool-blocks N]\n"
    "                     [--threads N]\n\n"
    "Our engine over the engine protocol (docs/protocol.md): JSON requests, one per line, on\n"
    "stdin; one reply per line on stdout; the log on stderr. Ends when stdin closes. props\n"
    "checks it with: props --engine process --engine-cmd 'minigpt serve'.\n\n"
    "  --model FILE    model file (default: the shipped model)\n"
    "  --batch N       sequences the cache holds (default 4)\n"
    "  --inject FAULT  a deliberate cache bug (minigpt generate --help lists them)\n"
    "  --backend NAME  invariant (default) or eigen\n"
    "  --kv-cache LAYOUT, --block-size N, --pool-blocks N: the cache (minigpt generate --help)\n"
    "  --threads N     worker threads (default: MINIINFER_THREADS, else the cores); same bytes\n\n"
    "Exit status 0 when stdin closes; 2 if a flag or the model is refused.";

// A request the engine refuses: becomes an error reply with this code.
struct Refusal {
  std::string code, message;
};

class Server {
 public:
  Server(const Model& model, EngineOptions o)
      : e_(model, o), block_size_(o.paged.block_size), prefix_caching_(o.paged.prefix_caching) {
    e_.set_fault(o.fault);
  }
  json handle(const json& req);

 private:
  json hello(const json& req) const;
  json forward(const std::string& op, const json& req);
  json rows(const KvRows& kv) const;
  KvRows cache_rows(int seq) const;
  json state_op(const std::string& op, const json& req);
  void poison(uint32_t bits);
  int seq_field(const json& req, const char* name) const;
  std::vector<int> tokens_field(const json& req, const char* name) const;

  bool prefix_cache() const { return e_.layout() == KvLayout::Paged && prefix_caching_; }

  Engine e_;
  int block_size_;
  bool prefix_caching_;
};

int Server::seq_field(const json& req, const char* name) const {
  const int s = req.at(name).get<int>();
  if (s < 0 || s >= e_.batch())
    throw Refusal{"bad_request", fmt::format("{} {} outside 0..{}", name, s, e_.batch() - 1)};
  return s;
}

std::vector<int> Server::tokens_field(const json& req, const char* name) const {
  std::vector<int> t = req.at(name).get<std::vector<int>>();
  for (int id : t)
    if (id < 0 || id >= e_.vocab_size())
      throw Refusal{"bad_request", fmt::format("{}: token {} outside 0..{}", name, id, e_.vocab_size() - 1)};
  return t;
}

json Server::hello(const json& req) const {
  const auto offered = req.at("protocol").get<std::vector<int>>();
  if (std::find(offered.begin(), offered.end(), protocol::kVersion) == offered.end())
    throw Refusal{"bad_request", fmt::format("this engine speaks protocol {}", protocol::kVersion)};
  json reply = {{"name", "minigpt"},
                {"version", "1"},
                {"protocol", protocol::kVersion},
                {"vocab", "minigpt"},
                {"vocab_size", e_.vocab_size()},
                {"sequences", e_.batch()},
                {"positions", e_.capacity()},
                {"max_recompute", e_.config().max_seq_len},
                {"capabilities", {{"kv_rows", true}, {"trace", true}, {"poison", true}, {"start_request", true}}}};
  // The paged layout's prefix cache (Engine::submit): reuse in whole blocks.
  if (prefix_cache()) {
    reply["capabilities"]["prefix_cache"] = true;
    reply["prefix_block"] = block_size_;
  }
  // One thread computes here: run on props' CPU, since the two take turns (docs/protocol.md).
  if (req.contains("cpu") && req["cpu"].is_number_integer()) {
    const int cpu = req["cpu"].get<int>();
    cpu_set_t one;
    CPU_ZERO(&one);
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(cpu, &one);
    reply["pinned"] = cpu >= 0 && cpu < CPU_SETSIZE && sched_setaffinity(0, sizeof one, &one) == 0;
  }
  return reply;
}

json Server::rows(const KvRows& kv) const {
  const std::vector<int> shape = {kv.n_layer, kv.n_head, kv.T, kv.d_head};
  return {{"k", protocol::encode_tensor(kv.k, shape)}, {"v", protocol::encode_tensor(kv.v, shape)}};
}

// The cache's rows for `seq`, slots 0..cursor-1, laid out as full recompute's KvRows.
KvRows Server::cache_rows(int seq) const { return e_.cache_rows(seq); }

// The four forward ops, with the trace attached to this one call when the request asks.
json Server::forward(const std::string& op, const json& req) {
  Trace trace;
  const bool traced = req.contains("trace") && !req.at("trace").is_null();
  if (traced) {
    trace.positions = req.at("trace").value("positions", std::vector<int>{});
    trace.cache_reads = req.at("trace").value("cache_reads", true);
    trace.seq = req.value("seq", 0);
    e_.set_trace(&trace);
  }
  struct Detach {
    Engine& e;
    ~Detach() { e.set_trace(nullptr); }
  } detach{e_};
  const bool all_rows = req.value("all_rows", false);
  std::vector<float> logits;
  std::vector<int> shape;
  const int V = e_.vocab_size();
  if (op == "forward_batch") {
    std::vector<std::vector<int>> tokens;
    std::vector<Chunk> chunks;
    for (const json& c : req.at("chunks")) tokens.push_back(tokens_field(c, "tokens"));
    size_t i = 0;
    for (const json& c : req.at("chunks")) chunks.push_back({seq_field(c, "seq"), tokens[i++]});
    logits.resize(chunks.size() * static_cast<size_t>(V));
    e_.forward_batch(chunks, logits);
    shape = {static_cast<int>(chunks.size()), V};
  } else if (op == "decode") {
    const std::vector<int> tokens = tokens_field(req, "tokens");
    const auto seqs = req.at("seqs").get<std::vector<int>>();
    logits.resize(seqs.size() * static_cast<size_t>(V));
    e_.decode(seqs, tokens, logits);
    shape = {static_cast<int>(seqs.size()), V};
  } else {
    const std::vector<int> tokens = tokens_field(req, "tokens");
    logits = op == "forward_cached" ? e_.forward_cached(seq_field(req, "seq"), tokens, all_rows)
                                    : e_.forward_uncached(tokens, all_rows);
    shape = all_rows ? std::vector<int>{static_cast<int>(tokens.size()), V} : std::vector<int>{V};
  }
  json reply = {{"logits", protocol::encode_tensor(logits, shape)}};
  if (traced) {
    json records = json::array();
    for (const TraceRecord& r : trace.records) records.push_back(protocol::encode_record(r));
    reply["trace"] = std::move(records);
  }
  return reply;
}

// Every slot no sequence holds (contiguous: at or past its cursor; paged: Engine::poison_unused),
// in every layer, K and V, set to the float with these bits: what props does to our cache
// in-process between cases (props/scenario.h).
void Server::poison(uint32_t bits) { e_.poison_unused(std::bit_cast<float>(bits)); }

json Server::state_op(const std::string& op, const json& req) {
  // truncate, fork and start_request say where they left the cursors: a faulty cache may
  // leave it elsewhere than the request implies, and props then sees it as in-process.
  if (op == "truncate") {
    const int seq = seq_field(req, "seq");
    e_.truncate(seq, req.at("pos").get<int>());
    return {{"cursor", e_.cursor(seq)}};
  } else if (op == "fork") {
    const int dst = seq_field(req, "dst");
    e_.fork(seq_field(req, "src"), dst, req.at("prefix_len").get<int>());
    return {{"cursor", e_.cursor(dst)}};
  } else if (op == "reset") {
    if (req.contains("seq"))
      e_.reset(seq_field(req, "seq"));
    else
      e_.reset();
    if (req.contains("poison")) {
      const json& bits = req.at("poison");
      if (!bits.is_number_unsigned() || bits.get<uint64_t>() > 0xffffffffu)
        throw Refusal{"bad_request", "poison: not the bits of an f32 (an integer in 0..4294967295)"};
      poison(bits.get<uint32_t>());
    }
  } else if (op == "start_request") {
    json cursors = json::array();
    for (const json& s : req.at("seqs")) {
      const int seq = seq_field({{"seq", s}}, "seq");
      e_.start_request(seq);  // the active fault's (stale-cache keeps the old rows)
      cursors.push_back(e_.cursor(seq));
    }
    return {{"cursors", std::move(cursors)}};
  } else if (op == "submit" || op == "free") {
    if (!prefix_cache())
      throw Refusal{"not_implemented", "no prefix cache here (minigpt serve --kv-cache paged has one)"};
    const int seq = seq_field(req, "seq");
    if (op == "free") {
      e_.free(seq);
      return json::object();
    }
    const std::vector<int> tokens = tokens_field(req, "tokens");
    if (tokens.empty()) throw Refusal{"bad_request", "tokens: a prompt is at least one token"};
    std::vector<float> logits(static_cast<size_t>(e_.vocab_size()));
    const int reused = e_.submit(seq, tokens, logits);
    return {{"logits", protocol::encode_tensor(logits, {e_.vocab_size()})},
            {"reused", reused},
            {"cursor", e_.cursor(seq)}};
  } else if (op == "cache_rows")
    return rows(cache_rows(seq_field(req, "seq")));
  else if (op == "recompute_rows") {
    KvRows kv;
    e_.forward_uncached(tokens_field(req, "tokens"), false, &kv);
    return rows(kv);
  } else
    throw Refusal{"unknown_op", "no such op"};
  return json::object();
}

json Server::handle(const json& req) {
  const json id = req.is_object() && req.contains("id") ? req.at("id") : json(nullptr);
  const std::string op =
      req.is_object() && req.contains("op") && req["op"].is_string() ? req["op"].get<std::string>() : "?";
  try {
    if (!req.is_object() || !id.is_number_integer())
      throw Refusal{"bad_request", "a request is an object with an integer id"};
    if (op == "?") throw Refusal{"bad_request", "a request names its op"};
    json reply = op == "hello"                                  ? hello(req)
                 : op.starts_with("forward_") || op == "decode" ? forward(op, req)
                                                                : state_op(op, req);
    reply["re"] = id;
    return reply;
  } catch (const Refusal& r) {
    return protocol::error_reply(id, r.code, op + ": " + r.message);
  } catch (const json::exception& e) {
    return protocol::error_reply(id, "bad_request", op + ": " + e.what());
  } catch (const Error& e) {
    // The engine refuses what would not fit in the cache with an Error naming the limit.
    const std::string what = e.what();
    const bool capacity =
        what.find("capacity") != std::string::npos || what.find("max_seq_len") != std::string::npos;
    return protocol::error_reply(id, capacity ? "out_of_capacity" : "bad_request", what);
  }
}

int run_serve(const std::vector<std::string>& argv) {
  const Args args(argv, {"model", "batch", "inject", "backend", "kv-cache", "block-size", "pool-blocks", "threads"},
                  {});
  EngineOptions o;
  o.batch = args.get_int("batch", 4);
  if (o.batch < 1 || o.batch > 64) fail("flag --batch: {} is outside 1..64", o.batch);
  o.backend = backend_from_name(args.get("backend", "invariant"));
  o.fault = fault_from_name(args.get("inject", "none"));
  const CacheFlags cache = cache_flags(args);
  o.layout = cache.layout;
  o.paged = cache.paged;
  o.threads = threads_flag(args);
  const Model model = read_model(args.get("model", default_model_path()));
  Server server(model, o);
  std::ios::sync_with_stdio(false);  // lines read and written in blocks, not a character at a time
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const json req = protocol::parse_line(line);
    const json reply = req.is_discarded()
                           ? protocol::error_reply(nullptr, "bad_request", "a line that is not JSON")
                           : server.handle(req);
    if (reply.contains("error"))
      std::fprintf(stderr, "serve: %s\n", reply["error"]["message"].get<std::string>().c_str());
    // The line and its newline in one write: a reply cut in two wakes props twice.
    std::string out = protocol::dump_line(reply);
    out += '\n';
    std::cout.write(out.data(), static_cast<std::streamsize>(out.size())).flush();
  }
  return kExitOk;
}

}  // namespace

MINIGPT_COMMAND("serve", "our engine over the engine protocol on stdin/stdout (docs/protocol.md)", kUsage,
                run_serve);

}  // namespace miniinfer::cli
