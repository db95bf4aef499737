#include "props/scenario.h"

#include "base/error.h"
#include "base/rng.h"
#include "props/engine_registry.h"

namespace miniinfer::props {

void clean_slate(Engine& engine) {
  engine.reset();
  engine.poison_unused(kPoison);
}

ScriptRun run_script(Engine& engine, const Script& script, bool cached, int seq, Trace* trace, int traced_draw) {
  const auto subject = wrap_engine(engine, engine.backend(), engine.fault());
  return run_script(*subject, script, cached, seq, trace, traced_draw);
}

ScriptRun run_script(EngineUnderTest& engine, const Script& script, bool cached, int seq, Trace* trace,
                     int traced_draw) {
  ScriptRun run;
  Rng coins = Rng::stream(script.seed, script.stream);
  size_t pending = 0;  // tokens[pending..] are not yet in the cache (cached path only)
  const bool stale = cached && variation(engine.fault()).stale_coin();
  float previous_coin = 0.0f;
  // A new request starts on an empty sequence, exactly where generate() starts one (a fault
  // such as stale-cache acts there, so the reporter sees what generate() would).
  if (cached) engine.start_request(seq);
  auto logits_now = [&]() -> std::vector<float> {
    if (!cached) return engine.forward_uncached(run.tokens);
    if (pending == run.tokens.size()) {
      // Rolled back to exactly the cursor: the last token's logits are gone, so it runs again.
      pending = run.tokens.size() - 1;
      engine.truncate(seq, static_cast<int>(pending));
    }
    std::vector<float> logits = engine.forward_cached(
        seq, std::span<const int>(run.tokens).subspan(pending));  // a prefill, decode or resume chunk
    pending = run.tokens.size();
    return logits;
  };
  for (const Op& op : script.ops) {
    switch (op.kind) {
      case Op::Append:
        run.tokens.insert(run.tokens.end(), op.tokens.begin(), op.tokens.end());
        break;
      case Op::Forward:
        if (cached && pending < run.tokens.size()) logits_now();
        break;
      case Op::Generate:
        for (int i = 0; i < op.n; ++i) {
          const bool traced = trace && static_cast<int>(run.generated.size()) == traced_draw;
          if (traced) {
            trace->seq = seq;
            if (!engine.trace_call(trace, 0)) fail("scenario: engine {} cannot trace a call", engine.name());
          }
          auto logits = logits_now();
          // The coin this draw uses: the stream's, or the script's own (p12's coins beside the
          // sampler's edges); the stale-coin fault (cached path) uses the previous draw's, as
          // generate()'s cached loop does.
          float coin = coins.uniform();
          if (script.coins) coin = script.coins(static_cast<int>(run.generated.size()), script.stream, logits, coin);
          if (stale) coin = stale_coin_draw(coin, previous_coin, run.generated.empty());
          const int token = sample(logits, script.sampler, coin);
          run.coins.push_back(coin);
          run.logit_positions.push_back(static_cast<int>(run.tokens.size()) - 1);
          run.contexts.push_back(run.tokens);
          run.logits.push_back(std::move(logits));
          run.tokens.push_back(token);
          run.generated.push_back(token);
          if (traced) return run;
        }
        break;
      case Op::Truncate:
        if (op.n < 1 || op.n > static_cast<int>(run.tokens.size()))
          fail("scenario: truncate to {} of a {}-token sequence", op.n, run.tokens.size());
        run.tokens.resize(static_cast<size_t>(op.n));
        if (cached && pending > run.tokens.size()) {
          engine.truncate(seq, op.n);
          pending = run.tokens.size();
        }
        break;
      case Op::Reseed:
        coins = Rng::stream(op.seed, script.stream);
        break;
    }
  }
  return run;
}

int draws_in(const Script& script) {
  int n = 0;
  for (const auto& op : script.ops) n += op.kind == Op::Generate ? op.n : 0;
  return n;
}

std::vector<float> flat_logits(const std::vector<std::vector<float>>& rows, size_t from) {
  std::vector<float> out;
  for (size_t i = from; i < rows.size(); ++i) out.insert(out.end(), rows[i].begin(), rows[i].end());
  return out;
}

nlohmann::json to_json(const Script& s) {
  nlohmann::json ops = nlohmann::json::array();
  for (const Op& op : s.ops) {
    switch (op.kind) {
      case Op::Append: ops.push_back({{"append", op.tokens}}); break;
      case Op::Forward: ops.push_back({{"forward", true}}); break;
      case Op::Generate: ops.push_back({{"generate", op.n}}); break;
      case Op::Truncate: ops.push_back({{"truncate", op.n}}); break;
      case Op::Reseed: ops.push_back({{"reseed", op.seed}}); break;
    }
  }
  return {{"ops", ops},
          {"seed", s.seed},
          {"stream", s.stream},
          {"temperature", s.sampler.temperature},
          {"top_k", s.sampler.top_k},
          {"top_p", s.sampler.top_p}};
}

Script script_from_json(const nlohmann::json& j) {
  try {
    Script s;
    s.seed = j.at("seed").get<uint64_t>();
    s.stream = j.at("stream").get<uint64_t>();
    s.sampler.temperature = j.at("temperature").get<float>();
    s.sampler.top_k = j.at("top_k").get<int>();
    s.sampler.top_p = j.at("top_p").get<float>();
    for (const auto& o : j.at("ops")) {
      Op op;
      if (o.contains("append")) {
        op.kind = Op::Append;
        op.tokens = o.at("append").get<std::vector<int>>();
      } else if (o.contains("forward")) {
        op.kind = Op::Forward;
      } else if (o.contains("generate")) {
        op.kind = Op::Generate;
        op.n = o.at("generate").get<int>();
      } else if (o.contains("truncate")) {
        op.kind = Op::Truncate;
        op.n = o.at("truncate").get<int>();
      } else if (o.contains("reseed")) {
        op.kind = Op::Reseed;
        op.seed = o.at("reseed").get<uint64_t>();
      } else {
        fail("scenario: unknown op {}", o.dump());
      }
      s.ops.push_back(std::move(op));
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("scenario: {}", e.what());
  }
}

}  // namespace miniinfer::props
