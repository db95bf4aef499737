// What every property shares: the model under test, its tokenizer, one reusable engine
// (rebuilding an engine per case would dominate the run), and the run's backend and fault.
#pragma once
#include <memory>
#include <string>

#include "corpus/tokenizer.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "model/model.h"
#include "props/engine_registry.h"
#include "props/engines.h"
#include "props/runner.h"

namespace miniinfer::props {

constexpr int kBatch = 4;  // the engine holds up to 4 sequences (the batch properties' size)

struct Context {
  Model model;
  std::string model_label;  // the path, or how the stand-in model was made
  std::string model_sha256;
  std::unique_ptr<Tokenizer> tokenizer;
  // The engine under test (--engine, props/engine_registry.h), made from its settings.
  std::unique_ptr<EngineUnderTest> subject;
  Backend backend = Backend::Invariant;
  Fault fault = Fault::None;
};

Context& context();
// Loads the model (or, with no --model and no shipped model, a seeded random one), builds the
// engine, and prints what is under test. Throws Error on a bad model file or flag.
void load_context(const RunConfig& config);

// Options for generate() from the run: backend and fault, plus the case's parameters.
GenerateOptions base_options();

// (Re)builds context().subject: engine `name` with `settings` (replay switches engine and settings).
void make_subject(const std::string& name, const nlohmann::json& settings);

}  // namespace miniinfer::props
