// props --conform: one scripted exchange with an engine, one line per check. Every check that
// compares logits compares them with the engine's own full recompute (forward_uncached) of the
// same tokens, bit for bit: the claim props checks. Each check starts from a reset, so a wrong
// op spoils its own line and the lines that use it, not the whole list.
#include "props/conform.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "base/exit_status.h"
#include "corpus/tokenizer.h"
#include "model/model_file.h"
#include "props/context.h"
#include "props/engine_link.h"
#include "props/engine_registry.h"
#include "props/property.h"
#include "props/report.h"
#include "protocol/codec.h"

namespace miniinfer::props {
namespace {

using nlohmann::json;

// The check's sentence, in MiniGPT's words: every engine takes it (through its vocabulary
// list or its tokenize op), and it is long enough for truncate and fork points inside it.
constexpr const char* kSentence = "<bos> yesterday I visited the city .";

enum class Verdict { Ok, Missing, Wrong };

struct Finding {  // ends one check
  Verdict verdict;
  std::string detail;
  bool differs = false;  // cached logits differ from full recompute's (a cache bug, not the protocol)
};
struct Broken {  // ends the exchange: the transport broke (exit status 4)
  std::string line;
};

using Row = std::vector<float>;
using Tokens = std::vector<int>;

Tokens concat(Tokens a, const Tokens& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Tokens prefix(const Tokens& t, int n) { return Tokens(t.begin(), t.begin() + n); }

// The properties that need capability `c`: "p7, p11", or "".
std::string needing(Capability c) {
  std::string out;
  for (const Property* p : all_properties())
    for (Capability n : p->info().needs)
      if (n == c) out += (out.empty() ? "" : ", ") + std::string(p->id());
  return out;
}

class Conformance {
 public:
  Conformance(EngineLink& link, std::string cmd, const Model& model)
      : link_(link), cmd_(std::move(cmd)), model_(model) {}
  int run();

 private:
  json ask(json req);
  json op(json req);
  void expect_error(json req, const std::string& code);
  Row rows(const json& reply, const std::vector<int>& shape, const char* field = "logits");
  Row recompute(const Tokens& t);
  void same(const Row& got, const Row& want, const std::string& what);
  void check(const std::string& name, const std::function<std::string()>& body);
  void line(Verdict v, const std::string& name, const std::string& detail);
  bool hello();
  bool vocabulary();
  void script();
  std::string prefix_cache();
  int submit(int seq, const Tokens& prompt, const std::string& what);

  EngineLink& link_;
  std::string cmd_;
  const Model& model_;
  long next_id_ = 0;
  json hello_;
  int V_ = 0, sequences_ = 0, positions_ = 0, max_recompute_ = 0;
  bool kv_rows_ = false, trace_ = false, tokenize_ = false, prefix_cache_ = false;
  json prefix_block_;  // the hello's, when it claims prefix_cache
  std::vector<Tokens> word_ids_;  // the engine's ids of each of the model's words
  Tokens P_;                      // kSentence in the engine's ids
  int ok_ = 0, missing_ = 0, wrong_ = 0, differs_ = 0;
  bool required_missing_ = false, nondeterministic_ = false;
};

json Conformance::ask(json req) {
  req["id"] = next_id_++;
  std::string problem;
  const std::optional<std::string> text = link_.exchange(req.dump(), problem);
  const std::string where = fmt::format("request {} {}", req["id"].dump(), req.value("op", "?"));
  if (!text) throw Broken{where + ": " + problem};
  const json reply = json::parse(*text, nullptr, false);
  if (reply.is_discarded() || !reply.is_object())
    throw Broken{fmt::format("{}: a reply that is not a JSON object: '{}'", where,
                             printable_name(text->substr(0, 80)))};
  if (reply.value("re", json()) != req["id"])
    throw Broken{fmt::format("{}: a reply to id {} (expected {})", where, reply.value("re", json()).dump(),
                             req["id"].dump())};
  return reply;
}

// A request that must succeed: an error reply ends the check (missing for unknown_op and
// not_implemented, wrong for any other code).
json Conformance::op(json req) {
  const std::string name = req.value("op", "?");
  const json reply = ask(std::move(req));
  if (!reply.contains("error")) return reply;
  const json& e = reply["error"];
  const std::string code = e.is_object() ? e.value("code", "?") : "?";
  const std::string message = e.is_object() ? e.value("message", "") : e.dump();
  if (code == "unknown_op" || code == "not_implemented")
    throw Finding{Verdict::Missing, fmt::format("{} answers {}: {}", name, code, message)};
  throw Finding{Verdict::Wrong, fmt::format("{} answers error {}: {}", name, code, message)};
}

void Conformance::expect_error(json req, const std::string& code) {
  const std::string name = req.value("op", "?");
  const json reply = ask(std::move(req));
  if (!reply.contains("error") || !reply["error"].is_object())
    throw Finding{Verdict::Wrong, fmt::format("{} was answered without an error (expected {})", name, code)};
  const std::string got = reply["error"].value("code", "?");
  if (got != code)
    throw Finding{Verdict::Wrong, fmt::format("{} answers error {} (expected {})", name, got, code)};
}

// A reply's tensor: the expected shape, every value finite.
Row Conformance::rows(const json& reply, const std::vector<int>& shape, const char* field) {
  protocol::Tensor t;
  try {
    if (!reply.contains(field)) throw Finding{Verdict::Wrong, fmt::format("the reply has no '{}'", field)};
    t = protocol::decode_tensor(reply.at(field), field);
  } catch (const Error& e) {
    throw Finding{Verdict::Wrong, e.what()};
  }
  if (t.shape != shape)
    throw Finding{Verdict::Wrong, fmt::format("{} of shape {}, expected {}", field, json(t.shape).dump(),
                                              json(shape).dump())};
  for (size_t i = 0; i < t.data.size(); ++i)
    if (!std::isfinite(t.data[i]))
      throw Finding{Verdict::Wrong, fmt::format("{}: value {} is {}", field, i, t.data[i])};
  return t.data;
}

// Full recompute's last row of `t`, the reference every cached row is compared with.
Row Conformance::recompute(const Tokens& t) {
  try {
    return rows(op({{"op", "forward_uncached"}, {"tokens", t}, {"all_rows", false}}), {V_});
  } catch (const Finding& f) {
    throw Finding{Verdict::Wrong, "full recompute (the reference): " + f.detail};
  }
}

void Conformance::same(const Row& got, const Row& want, const std::string& what) {
  if (got.size() == want.size() && std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0)
    return;
  size_t first = got.size(), differ = 0;
  uint64_t worst = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) == 0) continue;
    if (first == got.size()) first = i;
    ++differ;
    worst = std::max(worst, ulp_distance(got[i], want[i]));
  }
  const size_t V = static_cast<size_t>(V_);
  throw Finding{Verdict::Wrong,
                fmt::format("{}: {} of {} logits differ from full recompute's, the first at row {} logit {} "
                            "({:.9g} vs {:.9g}), at most {} ULP",
                            what, differ, got.size(), first / V, first % V, got[first], want[first], worst),
                true};
}

void Conformance::line(Verdict v, const std::string& name, const std::string& detail) {
  const char* word = v == Verdict::Ok ? "ok" : v == Verdict::Missing ? "missing" : "wrong";
  (v == Verdict::Ok ? ok_ : v == Verdict::Missing ? missing_ : wrong_)++;
  std::printf("  %-8s %-18s %s\n", word, name.c_str(), detail.c_str());
  std::fflush(stdout);
}

void Conformance::check(const std::string& name, const std::function<std::string()>& body) {
  try {
    line(Verdict::Ok, name, body());
  } catch (const Finding& f) {
    line(f.verdict, name, f.detail);
    differs_ += f.differs;
    // A required op the engine does not know: props cannot run on it.
    if (f.verdict == Verdict::Missing) required_missing_ = true;
  }
}

bool Conformance::hello() {
  bool ok = false;
  check("hello", [&] {
    const json reply = op({{"op", "hello"}, {"protocol", {protocol::kVersion}}});
    std::string missing;
    for (const char* field :
         {"name", "version", "protocol", "vocab", "vocab_size", "sequences", "positions", "max_recompute"})
      if (!reply.contains(field)) missing += (missing.empty() ? "" : ", ") + std::string(field);
    if (!missing.empty()) throw Finding{Verdict::Wrong, "the reply lacks " + missing};
    try {
      if (reply.at("protocol").get<int>() != protocol::kVersion)
        throw Finding{Verdict::Wrong, fmt::format("chose protocol {}, props offered [{}]",
                                                  reply.at("protocol").dump(), protocol::kVersion)};
      V_ = reply.at("vocab_size").get<int>();
      sequences_ = reply.at("sequences").get<int>();
      positions_ = reply.at("positions").get<int>();
      max_recompute_ = reply.at("max_recompute").get<int>();
      const json caps = reply.value("capabilities", json::object());
      if (!caps.is_object()) throw Finding{Verdict::Wrong, "capabilities is not an object"};
      kv_rows_ = caps.value("kv_rows", false);
      trace_ = caps.value("trace", false);
      prefix_cache_ = caps.value("prefix_cache", false);
      prefix_block_ = reply.value("prefix_block", json());
      tokenize_ = reply.at("vocab") == "tokenize";
      (void)reply.at("name").get<std::string>();
      (void)reply.at("version").get<std::string>();
    } catch (const json::exception& e) {
      throw Finding{Verdict::Wrong, fmt::format("a field of the wrong type: {}", e.what())};
    }
    if (V_ < 1 || sequences_ < 1 || positions_ < 1 || max_recompute_ < 1)
      throw Finding{Verdict::Wrong, "vocab_size, sequences, positions and max_recompute must be at least 1"};
    hello_ = reply;
    ok = true;
    std::string caps;
    const json claimed = hello_.contains("capabilities") ? hello_["capabilities"] : json::object();
    for (auto it = claimed.begin(); it != claimed.end(); ++it)
      if (it.value() == true) caps += (caps.empty() ? "" : " ") + it.key();
    return fmt::format(
        "{} {}, protocol {}, {} logits a row, {} sequences of {} positions, recompute up to {}; "
        "capabilities: {}",
        hello_["name"].get<std::string>(), hello_["version"].get<std::string>(), protocol::kVersion, V_,
        sequences_, positions_, max_recompute_, caps.empty() ? "none" : caps);
  });
  return ok;
}

// The engine's ids for every word of the model's vocabulary, and the sentence in them.
bool Conformance::vocabulary() {
  const std::vector<std::string>& words = model_.vocab;
  bool ok = false;
  check(tokenize_ ? "tokenize" : "vocab", [&]() -> std::string {
    const json vocab = hello_.at("vocab");
    word_ids_.assign(words.size(), {});
    std::string detail;
    if (vocab == "minigpt") {
      if (V_ != static_cast<int>(words.size()))
        throw Finding{
            Verdict::Wrong,
            fmt::format("vocab \"minigpt\" with vocab_size {}; the model has {} tokens", V_, words.size())};
      for (size_t i = 0; i < words.size(); ++i) word_ids_[i] = {static_cast<int>(i)};
      detail = fmt::format("MiniGPT's token ids ({} tokens)", V_);
    } else if (vocab.is_array()) {
      if (static_cast<int>(vocab.size()) != V_)
        throw Finding{Verdict::Wrong,
                      fmt::format("vocab lists {} strings, vocab_size is {}", vocab.size(), V_)};
      if (V_ != static_cast<int>(words.size()))
        throw Finding{Verdict::Wrong,
                      fmt::format("vocab lists {} strings; props maps the model's {} one to one (an "
                                  "engine with another vocabulary answers \"tokenize\")",
                                  V_, words.size())};
      std::map<std::string, int> id;
      for (int i = 0; i < V_; ++i) {
        if (!vocab[static_cast<size_t>(i)].is_string())
          throw Finding{Verdict::Wrong, fmt::format("vocab entry {} is not a string", i)};
        id[vocab[static_cast<size_t>(i)].get<std::string>()] = i;
      }
      std::string lacks;
      int n_lacks = 0;
      for (size_t i = 0; i < words.size(); ++i) {
        const auto it = id.find(words[i]);
        if (it != id.end()) {
          word_ids_[i] = {it->second};
        } else if (n_lacks++ < 8) {
          lacks += (lacks.empty() ? "'" : ", '") + words[i] + "'";
        }
      }
      if (n_lacks)
        throw Finding{Verdict::Wrong, fmt::format("vocab lacks {} of the grammar's words: {}{}", n_lacks,
                                                  lacks, n_lacks > 8 ? ", ..." : "")};
      detail = fmt::format("a list of {} strings holding the grammar's {} words", V_, words.size());
    } else if (tokenize_) {
      const json reply = op({{"op", "tokenize"}, {"texts", words}});
      const json ids = reply.value("ids", json());
      if (!ids.is_array() || ids.size() != words.size())
        throw Finding{
            Verdict::Wrong,
            fmt::format("'ids' must be a list of {} lists of token ids, one per text", words.size())};
      size_t longest = 0;
      for (size_t i = 0; i < words.size(); ++i) {
        const json& list = ids[i];
        if (!list.is_array() || list.empty())
          throw Finding{Verdict::Wrong,
                        fmt::format("the word '{}' tokenizes to {}: every word needs at least one "
                                    "token",
                                    words[i], list.dump())};
        for (const json& t : list) {
          if (!t.is_number_integer() || t.get<long>() < 0 || t.get<long>() >= V_)
            throw Finding{Verdict::Wrong,
                          fmt::format("the word '{}' tokenizes to {}: ids are integers in 0..{}", words[i],
                                      list.dump(), V_ - 1)};
          word_ids_[i].push_back(t.get<int>());
        }
        longest = std::max(longest, word_ids_[i].size());
      }
      // Two words with the same first token tie in props' word logits (docs/protocol.md).
      std::set<int> firsts;
      for (const Tokens& t : word_ids_) firsts.insert(t[0]);
      detail = fmt::format("the grammar's {} words into 1 to {} tokens each ({} distinct first tokens)",
                           words.size(), longest, firsts.size());
    } else {
      throw Finding{Verdict::Wrong,
                    fmt::format("vocab is {}: it must be \"minigpt\", a list of strings or \"tokenize\"",
                                vocab.dump().substr(0, 60))};
    }
    const Tokenizer tokenizer(words);
    for (int w : tokenizer.encode(kSentence)) P_ = concat(P_, word_ids_[static_cast<size_t>(w)]);
    ok = true;
    return detail;
  });
  return ok;
}

void Conformance::script() {
  const Tokens P = P_;
  const int n = static_cast<int>(P.size()), j = n / 2, k = n - 2;
  const int t = P[1], u = P[2];  // tokens to append: any of the engine's ids will do
  const json reset = {{"op", "reset"}};
  Row last, all;

  check("capacity", [&] {
    const size_t longest = std::max_element(word_ids_.begin(), word_ids_.end(), [](auto& a, auto& b) {
                             return a.size() < b.size();
                           })->size();
    const int need = model_.config.max_seq_len * static_cast<int>(longest);
    if (sequences_ < kBatch || positions_ < need)
      throw Finding{Verdict::Wrong,
                    fmt::format("{} sequences of {} positions; props needs {} of {} ({} words{})", sequences_,
                                positions_, kBatch, need, model_.config.max_seq_len,
                                longest > 1 ? fmt::format(" of up to {} tokens", longest) : "")};
    return fmt::format("{} sequences of {} positions: props needs {} of {}", sequences_, positions_, kBatch,
                       need);
  });
  check("forward_uncached", [&] {
    last = rows(op({{"op", "forward_uncached"}, {"tokens", P}, {"all_rows", false}}), {V_});
    all = rows(op({{"op", "forward_uncached"}, {"tokens", P}, {"all_rows", true}}), {n, V_});
    same(Row(all.end() - V_, all.end()), last, "all_rows' last row against the last row alone");
    return fmt::format("({}) for {} tokens, and ({}, {}) with all_rows; the last rows agree", V_, n, n, V_);
  });
  check("recompute twice", [&] {
    const Row again = rows(op({{"op", "forward_uncached"}, {"tokens", P}, {"all_rows", true}}), {n, V_});
    try {
      same(again, all, "the second recompute");
    } catch (const Finding& f) {
      nondeterministic_ = true;
      throw Finding{Verdict::Wrong, f.detail +
                                        ": full recompute is not deterministic, so bitwise checking of this "
                                        "engine is meaningless"};
    }
    return fmt::format("the same {} tokens twice give the same bytes", n);
  });
  check("reset", [&] {
    op(reset);
    return std::string("every sequence back to position 0");
  });
  check("forward_cached", [&] {
    op(reset);
    same(rows(op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", P}, {"all_rows", true}}), {n, V_}), all,
         "all_rows on an empty sequence");
    same(rows(op({{"op", "forward_cached"}, {"seq", 1}, {"tokens", P}, {"all_rows", false}}), {V_}), last,
         "the last row on an empty sequence");
    return fmt::format("a chunk of {} tokens on an empty sequence: every row equals full recompute's", n);
  });
  check("decode", [&] {
    op(reset);
    op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", P}});
    same(rows(op({{"op", "decode"}, {"seqs", {0}}, {"tokens", {t}}}), {1, V_}), recompute(concat(P, {t})),
         "one token after the chunk");
    op(reset);
    op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", P}});
    op({{"op", "forward_cached"}, {"seq", 2}, {"tokens", prefix(P, j)}});
    const Row two = rows(op({{"op", "decode"}, {"seqs", {2, 0}}, {"tokens", {t, u}}}), {2, V_});
    same(Row(two.begin(), two.begin() + V_), recompute(concat(prefix(P, j), {t})),
         "sequence 2 of two in one call");
    same(Row(two.begin() + V_, two.end()), recompute(concat(P, {u})), "sequence 0 of two in one call");
    return fmt::format("one token at the cursor; two sequences at cursors {} and {} in one call", j, n);
  });
  check("forward_batch", [&] {
    op(reset);
    const Row two =
        rows(op({{"op", "forward_batch"},
                 {"chunks", {{{"seq", 1}, {"tokens", prefix(P, k)}}, {{"seq", 3}, {"tokens", P}}}}}),
             {2, V_});
    same(Row(two.begin(), two.begin() + V_), recompute(prefix(P, k)), "the chunk on sequence 1");
    same(Row(two.begin() + V_, two.end()), last, "the chunk on sequence 3");
    same(rows(op({{"op", "forward_batch"},
                  {"chunks", {{{"seq", 1}, {"tokens", Tokens(P.begin() + k, P.end())}}}}}),
              {1, V_}),
         last, "a chunk resumed at sequence 1's cursor");
    const Row mixed =
        rows(op({{"op", "forward_batch"},
                 {"chunks", {{{"seq", 0}, {"tokens", prefix(P, j)}}, {{"seq", 3}, {"tokens", {t}}}}}}),
             {2, V_});
    same(Row(mixed.begin(), mixed.begin() + V_), recompute(prefix(P, j)),
         "a new chunk beside a one-token chunk");
    same(Row(mixed.begin() + V_, mixed.end()), recompute(concat(P, {t})),
         "a one-token chunk beside a new chunk");
    return fmt::format(
        "chunks of {} and {} tokens on two sequences in one call, one resumed at its cursor, a new "
        "chunk beside a one-token one",
        k, n);
  });
  check("truncate", [&] {
    op(reset);
    op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", P}});
    op({{"op", "truncate"}, {"seq", 0}, {"pos", j}});
    const Row got = rows(op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", {u, t}}}), {V_});
    try {
      same(got, recompute(concat(prefix(P, j), {u, t})), fmt::format("a chunk after truncating to {}", j));
    } catch (const Finding& f) {
      bool untruncated = false;
      try {
        same(got, recompute(concat(P, {u, t})), "");
        untruncated = true;
      } catch (const Finding&) {
      }
      if (untruncated)
        throw Finding{Verdict::Wrong,
                      fmt::format("truncate to {} did not truncate: the chunk went on at position {}", j, n),
                      true};
      throw;
    }
    return fmt::format("from {} positions back to {}, then a chunk from there", n, j);
  });
  check("fork", [&] {
    op(reset);
    op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", P}});
    op({{"op", "forward_cached"},
        {"seq", 2},
        {"tokens", Tokens(P.rbegin(), P.rend())}});  // old rows to replace
    op({{"op", "fork"}, {"src", 0}, {"dst", 2}, {"prefix_len", j}});
    const Row two = rows(op({{"op", "decode"}, {"seqs", {2, 0}}, {"tokens", {t, u}}}), {2, V_});
    same(Row(two.begin(), two.begin() + V_), recompute(concat(prefix(P, j), {t})),
         fmt::format("the copy (sequence 2, forked at {} over older rows)", j));
    same(Row(two.begin() + V_, two.end()), recompute(concat(P, {u})),
         "the source (sequence 0) after the fork");
    return fmt::format("sequence 2 becomes sequence 0's first {} positions; sequence 0 is unchanged", j);
  });
  check("reset one", [&] {
    op(reset);
    op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", P}});
    op({{"op", "forward_cached"}, {"seq", 3}, {"tokens", P}});
    op({{"op", "reset"}, {"seq", 3}});
    same(rows(op({{"op", "forward_cached"}, {"seq", 3}, {"tokens", prefix(P, j)}}), {V_}),
         recompute(prefix(P, j)), "sequence 3 after its reset");
    same(rows(op({{"op", "decode"}, {"seqs", {0}}, {"tokens", {t}}}), {1, V_}), recompute(concat(P, {t})),
         "sequence 0, which the reset of 3 must leave alone");
    return std::string("one sequence back to 0; the others keep theirs");
  });
  if (!kv_rows_) {
    const std::string who = needing(Capability::KvRows);
    line(Verdict::Missing, "kv_rows",
         "not claimed: props compares logits only" + (who.empty() ? std::string() : " and skips " + who));
  } else {
    check("kv_rows", [&] {
      op(reset);
      op({{"op", "forward_cached"}, {"seq", 0}, {"tokens", P}});
      const json cached = op({{"op", "cache_rows"}, {"seq", 0}});
      const json fresh = op({{"op", "recompute_rows"}, {"tokens", P}});
      const auto& c = model_.config;
      std::vector<int> shape = {c.n_layer, c.n_head, n, c.d_head()};
      if (tokenize_) {  // the engine's own model: any (L, H, T, d_head) with T = n
        shape = cached.contains("k") && cached["k"].is_object()
                    ? cached["k"].value("shape", std::vector<int>{})
                    : std::vector<int>{};
        if (shape.size() != 4 || shape[2] != n)
          throw Finding{Verdict::Wrong,
                        fmt::format("k of shape {}, expected (L, H, {}, d_head)", json(shape).dump(), n)};
      }
      for (const char* f : {"k", "v"}) {
        const Row a = rows(cached, shape, f), b = rows(fresh, shape, f);
        if (std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0)
          throw Finding{
              Verdict::Wrong,
              fmt::format("cache_rows' {} differs from recompute_rows' for the same {} tokens", f, n)};
      }
      return fmt::format(
          "cache_rows and recompute_rows of {} tokens: ({}) each, equal bit for bit{}", n,
          fmt::join(shape, ", "),
          tokenize_ ? "; props withholds them from a tokenize engine (its positions are not props')" : "");
    });
  }
  if (!trace_) {
    line(Verdict::Missing, "trace",
         "not claimed: reports cannot name the layer, head and slot where the paths part");
  } else {
    check("trace", [&] {
      const json reply = op({{"op", "forward_uncached"},
                             {"tokens", P},
                             {"all_rows", false},
                             {"trace", {{"positions", json::array()}, {"cache_reads", true}}}});
      same(rows(reply, {V_}), last, "the traced recompute's logits");
      if (!reply.contains("trace") || !reply["trace"].is_array() || reply["trace"].empty())
        throw Finding{Verdict::Wrong, "a traced call's reply has no 'trace' list of records"};
      std::set<std::string> sites;
      for (const json& r : reply["trace"]) {
        try {
          sites.insert(protocol::site_name(protocol::decode_record(r).kind));
        } catch (const Error& e) {
          throw Finding{Verdict::Wrong, e.what()};
        }
      }
      return fmt::format("{} records of a traced recompute, sites {}", reply["trace"].size(),
                         fmt::join(sites, " "));
    });
  }
  if (!prefix_cache_) {
    const std::string who = needing(Capability::PrefixCache);
    line(Verdict::Missing, "prefix_cache",
         "not claimed: props starts requests with one chunk" + (who.empty() ? std::string() : " and skips " + who));
  } else {
    check("prefix_cache", [&] { return prefix_cache(); });
  }
  // The errors docs/protocol.md lists, where an engine must give them.
  check("unknown op", [&] {
    expect_error({{"op", "conform_no_such_op"}}, "unknown_op");
    return std::string("an op it does not know is refused with unknown_op");
  });
  check("bad request", [&] {
    expect_error({{"op", "truncate"}, {"seq", sequences_}, {"pos", 0}}, "bad_request");
    return fmt::format("sequence {} (outside 0..{}) is refused with bad_request", sequences_, sequences_ - 1);
  });
  check("out of capacity", [&] {
    expect_error(
        {{"op", "forward_uncached"}, {"tokens", Tokens(static_cast<size_t>(max_recompute_) + 1, P[0])}},
        "out_of_capacity");
    return fmt::format("a recompute of {} tokens (max_recompute + 1) is refused with out_of_capacity",
                       max_recompute_ + 1);
  });
}

// One submit: its logits equal full recompute's, its reuse is a whole number of blocks short of
// the prompt's end; the tokens it reused.
int Conformance::submit(int seq, const Tokens& prompt, const std::string& what) {
  const json reply = op({{"op", "submit"}, {"seq", seq}, {"tokens", prompt}});
  const json reused = reply.value("reused", json());
  const int n = static_cast<int>(prompt.size()), block = prefix_block_.get<int>();
  if (!reused.is_number_integer() || reused.get<long>() < 0)
    throw Finding{Verdict::Wrong, fmt::format("{}: reused is {}, not a count of tokens", what,
                                              reused.is_null() ? "missing" : reused.dump())};
  const long r = reused.get<long>();
  if (r > n - 1)
    throw Finding{Verdict::Wrong,
                  fmt::format("{}: reused {} tokens of a prompt of {}: at most {} (the last position is always "
                              "computed)",
                              what, r, n, n - 1)};
  if (r % block != 0)
    throw Finding{Verdict::Wrong,
                  fmt::format("{}: reused {} tokens, not a multiple of prefix_block {}", what, r, block)};
  same(rows(reply, {V_}), recompute(prompt), fmt::format("{} (reused {} tokens)", what, r));
  return static_cast<int>(r);
}

// Capability prefix_cache: a cold submit reuses nothing; a prompt sharing the first one's first
// block reuses at least that block and still equals full recompute, as does a decode after it;
// free refuses the sequence until a submit.
std::string Conformance::prefix_cache() {
  if (!prefix_block_.is_number_integer() || prefix_block_.get<long>() < 1)
    throw Finding{Verdict::Wrong, fmt::format("prefix_block is {}: with prefix_cache, the granularity of reuse "
                                              "is an integer of at least 1",
                                              prefix_block_.is_null() ? "missing" : prefix_block_.dump())};
  const int block = prefix_block_.get<int>();
  // The first prompt: one full block and two tokens more (the sentence over and over); the
  // second: the same block and three other tokens.
  const int first = block + 2, second = block + 3;
  if (second > std::min(positions_, max_recompute_))
    throw Finding{Verdict::Wrong,
                  fmt::format("prefix_block {} leaves no room for a prompt of one block and more in {} "
                              "positions",
                              block, std::min(positions_, max_recompute_))};
  Tokens a, b;
  for (int i = 0; i < first; ++i) a.push_back(P_[static_cast<size_t>(i) % P_.size()]);
  b = prefix(a, block);
  for (int i = 0; i < 3; ++i) b.push_back(P_[P_.size() - 1 - static_cast<size_t>(i) % P_.size()]);
  op({{"op", "reset"}});
  const int cold = submit(0, a, fmt::format("a cold submit of {} tokens", first));
  if (cold != 0)
    throw Finding{Verdict::Wrong,
                  fmt::format("a submit after a reset reused {} tokens: a reset must empty the prefix cache",
                              cold)};
  const int hit = submit(1, b, fmt::format("a submit of {} tokens sharing the first {}", second, block));
  if (hit == 0)
    throw Finding{Verdict::Wrong,
                  fmt::format("a submit of {} tokens sharing a full block of {} with an earlier prompt reused "
                              "nothing: no prefix hit",
                              second, block)};
  const int t = P_[1];
  same(rows(op({{"op", "decode"}, {"seqs", {1}}, {"tokens", {t}}}), {1, V_}), recompute(concat(b, {t})),
       "a decode after the prefix hit");
  op({{"op", "free"}, {"seq", 1}});
  try {
    expect_error({{"op", "decode"}, {"seqs", {1}}, {"tokens", {t}}}, "bad_request");
  } catch (const Finding& f) {
    throw Finding{Verdict::Wrong, "a decode on a freed sequence: " + f.detail};
  }
  submit(1, b, "a submit on the freed sequence");
  return fmt::format(
      "blocks of {}: a cold submit of {} tokens reuses 0; one of {} sharing its first block reuses {}, "
      "equal to full recompute, and so is a decode after it; a freed sequence is refused, then "
      "submitted again",
      block, first, second, hit);
}

int Conformance::run() {
  if (hello() && vocabulary()) script();
  std::string verdict;
  int status = kExitOk;
  if (nondeterministic_) {
    verdict =
        "not conformant: full recompute is not deterministic, so bitwise checking of this engine is "
        "meaningless";
    status = kExitNotConformant;
  } else if (wrong_ || required_missing_) {
    std::vector<std::string> why;
    if (wrong_ > differs_ || required_missing_)
      why.push_back("props would end its run at the first op that breaks docs/protocol.md (exit status 4)");
    if (differs_)
      why.push_back(
          fmt::format("{} check{} found cached logits that differ from full recompute's: props' properties "
                      "will fail (exit status 1) and shrink the case",
                      differs_, differs_ == 1 ? "" : "s"));
    verdict = fmt::format("not conformant: {}", fmt::join(why, "; "));
    status = kExitNotConformant;
  } else {
    verdict = missing_ ? "conformant (props skips what is missing)" : "conformant";
  }
  std::printf("props --conform: %d ok, %d missing, %d wrong: %s\n", ok_, missing_, wrong_, verdict.c_str());
  return status;
}

Model conform_model(const RunConfig& config) {
  std::string path = config.model_path;
  const std::string shipped =
      std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors";
  if (path.empty() && std::filesystem::exists(shipped)) path = shipped;
  if (path.empty()) fail("props --conform: no model (give --model FILE)");
  return read_model(path);
}

}  // namespace

int check_conformance(const CommandLine& cl) {
  static const std::set<std::string> used = {"--conform", "--engine", "--engine-cmd", "--engine-timeout",
                                             "--model"};
  for (const std::string& flag : cl.config.given)
    if (!used.count(flag))
      fail("{}: props --conform checks one engine's protocol; it takes no {}", flag, flag);
  if (cl.catch_args.size() > 1)
    fail("{}: props --conform runs no properties; Catch2's filters and flags do not apply", cl.catch_args[1]);
  if (cl.config.given.count("--engine") && cl.config.engine != "process")
    fail("--engine {}: props --conform checks an engine over docs/protocol.md (--engine process)",
         cl.config.engine);
  const std::string cmd = flag_value(cl.config, "--engine-cmd");
  if (cmd.empty()) fail("props --conform needs --engine-cmd CMD (e.g. --engine-cmd 'build/minigpt serve')");
  RunConfig run = cl.config;
  run.engine = "process";
  const double timeout = settings_from_flags(*find_engine("process"), run).at("timeout").get<double>();
  const Model model = conform_model(cl.config);

  std::printf("props --conform: engine '%s' (--engine-timeout %g s)\n", cmd.c_str(), timeout);
  std::fflush(stdout);
  EngineLink link(cmd, timeout);
  Conformance c(link, cmd, model);
  try {
    if (const std::string why = link.start(); !why.empty()) throw Broken{"request 0 hello: " + why};
    const int status = c.run();
    link.stop();
    return status;
  } catch (const Broken& b) {
    const std::string tail = link.stderr_tail();
    link.stop();
    std::fflush(stdout);
    std::fprintf(stderr, "props: engine '%s': %s\n", cmd.c_str(), b.line.c_str());
    size_t at = 0;
    while (!tail.empty() && at <= tail.size()) {
      const size_t nl = tail.find('\n', at);
      std::fprintf(stderr, "  engine stderr: %s\n", tail.substr(at, nl - at).c_str());
      if (nl == std::string::npos) break;
      at = nl + 1;
    }
    return kExitEngineBroke;
  }
}

}  // namespace miniinfer::props
