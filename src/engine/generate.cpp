// generate(): the two paths as two separate loops. They share the sampler and the per-sequence
// coin streams, never a forward: the cached loop calls prefill/decode, the uncached loop calls a
// full recompute of each sequence at every step.
#include "engine/generate.h"

#include <cmath>

#include "base/error.h"
#include "base/rng.h"
#include "engine/generate_loops.h"

namespace miniinfer {

GenerateResult generate(Engine& engine, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) {
  detail::check_request(prompts, o, engine.batch(), o.cache ? engine.capacity() : engine.config().max_seq_len);

  // The backend, fault and trace belong to this call only: however it ends, the engine gets
  // back the ones it had.
  struct Restore {
    Engine& e;
    Backend backend;
    Fault fault;
    Trace* trace;
    ~Restore() {
      e.set_backend(backend);
      e.set_fault(fault);
      e.set_trace(trace);
    }
  } restore{engine, engine.backend(), engine.fault(), engine.trace()};
  engine.set_backend(o.backend);
  engine.set_fault(o.fault);
  engine.set_trace(o.trace);
  engine.start_request();

  return detail::run_loops(engine, prompts, o);
}

GenerateResult generate(const Model& model, const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) {
  EngineOptions eo;
  eo.backend = o.backend;
  eo.batch = std::max<int>(1, static_cast<int>(prompts.size()));
  eo.fault = o.fault;
  eo.layout = o.layout;
  eo.paged = o.paged;
  eo.threads = o.threads;
  eo.window = o.window;
  eo.sinks = o.sinks;
  eo.kv_quant = o.kv_quant;
  eo.kv_residual = o.kv_residual;
  Engine engine(model, eo);
  return generate(engine, prompts, o);
}

}  // namespace miniinfer
