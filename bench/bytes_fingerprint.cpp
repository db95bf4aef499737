// Not a timing: prints a hash of every byte a forward computes (all logits and K/V rows of a
// 300-token full recompute, plus 40 cached-generation steps' logits and tokens) and whether
// cached equals uncached, so builds for different -march or flags, and the matmul's 8- and
// 16-lane tiles, can be compared. docs/invariance.md has the commands and the results.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "base/error.h"
#include "base/exit_status.h"
#include "base/rng.h"
#include "base/thread_pool.h"
#include "engine/generate.h"
#include "engine/kernels.h"
#include "flag_values.h"

using namespace miniinfer;

namespace {

constexpr const char* kUsage =
    "usage: bytes_fingerprint [--matmul-width 8|16] [--threads N] [--min-parallel-work N]\n"
    "Prints a hash of every byte a forward computes on a fixed random model (300-token full\n"
    "recompute: logits, K and V; 40 cached generation steps: logits and tokens) and whether\n"
    "cached equals uncached; exit status 1 if they differ.\n"
    "  --matmul-width N  run the matmul's N-lane tiles (default: the widest this build and CPU\n"
    "                    run; 16 needs AVX-512F). The line printed names the width used.\n"
    "  --threads N       the engines' worker threads (default: MINIINFER_THREADS, else the\n"
    "                    machine's cores); any count prints the same line\n"
    "  --min-parallel-work N  share out every product, row set and head set of at least N\n"
    "                    multiply-adds (default 65536; 0 shares out all, as the CTest does)\n";

int fingerprint(int threads) {
  Config c;
  c.vocab_size = 900;
  std::vector<std::string> vocab;
  for (int i = 0; i < c.vocab_size; ++i) vocab.push_back("w" + std::to_string(i));
  Model model = init_model(c, vocab, 5);
  Rng rng(1);
  for (float& x : model.weights.layers[0].bq) x = rng.normal();  // some non-zero biases
  std::vector<int> tokens(300);
  for (int& t : tokens) t = static_cast<int>(rng.below(900));

  EngineOptions eo;
  eo.threads = threads;
  Engine engine(model, eo);
  KvRows kv;
  const std::vector<float> logits = engine.forward_uncached(tokens, true, &kv);
  GenerateOptions o;
  o.max_new_tokens = 40;
  o.temperature = 0.9f;
  o.seed = 3;
  o.return_logits = true;
  o.threads = threads;
  const std::vector<std::vector<int>> prompt = {{tokens.begin(), tokens.begin() + 20}};
  const GenerateResult cached = generate(model, prompt, o);
  o.cache = false;
  const GenerateResult uncached = generate(model, prompt, o);

  uint64_t h = 1469598103934665603ULL;  // FNV-1a over the bytes
  auto mix = [&](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ULL;
  };
  mix(logits.data(), logits.size() * 4);
  mix(kv.k.data(), kv.k.size() * 4);
  mix(kv.v.data(), kv.v.size() * 4);
  mix(cached.logits[0].data(), cached.logits[0].size() * 4);
  mix(cached.tokens[0].data(), cached.tokens[0].size() * 4);
  size_t differ = 0;
  for (size_t i = 0; i < cached.logits[0].size(); ++i)
    differ += std::memcmp(&cached.logits[0][i], &uncached.logits[0][i], 4) != 0;
  std::printf("fingerprint %016llx; cached vs uncached: %zu of %zu logits differ, tokens %s\n",
              static_cast<unsigned long long>(h), differ, cached.logits[0].size(),
              cached.tokens == uncached.tokens ? "equal" : "DIFFER");
  std::fprintf(stderr, "matmul width %d (widest here %d), %d threads\n", kernels::matmul_width(),
               kernels::matmul_widest(), engine.threads());
  return differ == 0 && cached.tokens == uncached.tokens ? kExitOk : kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int threads = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::fputs(kUsage, stdout);
        return kExitOk;
      }
      if (a == "--matmul-width" && i + 1 < argc) {
        const std::string v = argv[++i];
        if (v != "8" && v != "16") fail("--matmul-width: '{}' is not 8 or 16", v);
        kernels::set_matmul_width(std::stoi(v));
      } else if (a == "--threads" && i + 1 < argc) {
        threads = bench::whole_above_zero("--threads", argv[++i]);
      } else if (a == "--min-parallel-work" && i + 1 < argc) {
        const std::string v = argv[++i];
        set_min_parallel_work(v == "0" ? 0 : bench::whole_above_zero("--min-parallel-work", v));
      } else {
        fail("{}: unknown argument (see --help)", a);
      }
    }
    return fingerprint(threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bytes_fingerprint: %s\n", e.what());
    return kExitRefused;
  }
}
