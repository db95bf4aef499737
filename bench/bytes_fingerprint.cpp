// Not a timing: prints a hash of every byte a forward computes (all logits and K/V rows of a
// 300-token full recompute, plus 40 cached-generation steps' logits and tokens) and whether
// cached equals uncached, so builds for different -march or flags can be compared.
// docs/invariance.md has the commands and the results.
#include <cstdio>
#include <cstring>

#include "base/rng.h"
#include "engine/generate.h"

using namespace miniinfer;

int main() {
  Config c;
  c.vocab_size = 900;
  std::vector<std::string> vocab;
  for (int i = 0; i < c.vocab_size; ++i) vocab.push_back("w" + std::to_string(i));
  Model model = init_model(c, vocab, 5);
  Rng rng(1);
  for (float& x : model.weights.layers[0].bq) x = rng.normal();  // some non-zero biases
  std::vector<int> tokens(300);
  for (int& t : tokens) t = static_cast<int>(rng.below(900));

  Engine engine(model);
  KvRows kv;
  const std::vector<float> logits = engine.forward_uncached(tokens, true, &kv);
  GenerateOptions o;
  o.max_new_tokens = 40;
  o.temperature = 0.9f;
  o.seed = 3;
  o.return_logits = true;
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
  return differ == 0 && cached.tokens == uncached.tokens ? 0 : 1;
}
