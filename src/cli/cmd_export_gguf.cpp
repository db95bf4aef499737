// `minigpt export-gguf`: the model as a llama.cpp starcoder2 GGUF (llamacpp/gguf_export.h),
// written through ggml's GGUF API by the llama.cpp module, loaded only now (llamacpp/module.h):
// minigpt links none of llama.cpp. Built only where llama.cpp was found (cmake/llamacpp.cmake);
// elsewhere the command exists and says why it cannot run.
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/exit_status.h"
#include "cli/command.h"
#include "model/model_file.h"
#ifdef MINIINFER_HAVE_LLAMACPP
#include "llamacpp/module.h"
#endif

namespace miniinfer::cli {
namespace {

constexpr const char* kUsage =
    "usage: minigpt export-gguf --out FILE [--model FILE]\n\n"
    "Writes the model as a GGUF for llama.cpp (architecture starcoder2, F32 tensors, no\n"
    "vocabulary: token ids go in directly). The file is written atomically.\n\n"
    "  --out FILE     the GGUF to write\n"
    "  --model FILE   default: the shipped experiments/17-minigpt/minigpt.safetensors";

int run_export_gguf(const std::vector<std::string>& argv) {
  const Args args(argv, {"model", "out"}, {});
  const std::string out = args.require("out");
  if (out.empty()) fail("flag --out: empty file name");
  const std::string path = args.get("model", default_model_path());
#ifdef MINIINFER_HAVE_LLAMACPP
  const LlamaCppModule& llamacpp = llamacpp_module();
  const Model model = read_model(path);
  llamacpp.write_gguf(out, model);
  std::printf("%s -> %s (starcoder2, %d layers, d_model %d, vocab %d)\n", path.c_str(), out.c_str(),
              model.config.n_layer, model.config.d_model, model.config.vocab_size);
  return kExitOk;
#else
  fail("this build has no llama.cpp/ggml (run scripts/fetch-llamacpp, then re-run cmake); {} not written",
       out);
#endif
}

}  // namespace

MINIGPT_COMMAND("export-gguf", "the model as a llama.cpp GGUF (--out FILE)", kUsage, run_export_gguf);

}  // namespace miniinfer::cli
