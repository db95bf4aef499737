#include "props/verdict.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "base/error.h"
#include "props/report.h"

namespace miniinfer::props {

Measured measure(std::span<const float> a, std::span<const float> b) {
  Measured m;
  if (a.size() != b.size()) {
    m.max_ulp = UINT64_MAX;
    m.differing = static_cast<int>(std::max(a.size(), b.size()));
  }
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    m.scale = std::max(m.scale, std::fabs(static_cast<double>(b[i])));
    const uint64_t u = ulp_distance(a[i], b[i]);
    if (u == 0 && std::memcmp(&a[i], &b[i], sizeof(float)) == 0) continue;
    ++m.differing;  // a zero of the other sign differs in its bytes at 0 ULP
    if (m.max_ulp != UINT64_MAX) m.max_ulp = std::max(m.max_ulp, u);
    m.max_abs = std::max(m.max_abs, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return m;
}

double dtype_ulp(std::string_view dtype) {
  if (dtype == "f32") return 0x1p-23;
  if (dtype == "f16") return 0x1p-10;
  if (dtype == "bf16") return 0x1p-7;
  // llama.cpp's block formats: one quantization step of a 32-float block, relative to its
  // largest magnitude (Q8_0: amax / 127; Q4_0: amax / 8).
  if (dtype == "q8_0") return 1.0 / 127;
  if (dtype == "q4_0") return 1.0 / 8;
  return 0.0;
}

bool reads_kv_storage(std::string_view c) {
  return c == "k-read" || c == "v-read" || c == "cache" || c == "probs" || c == "attn";
}

std::string value_dtype(std::string_view component, std::string_view kv_dtype) {
  return reads_kv_storage(component) ? std::string(kv_dtype) : std::string("f32");
}

Verdict classify(const Measured& m, std::string_view dtype) {
  if (m.differing == 0 && m.max_ulp == 0 && m.max_abs == 0.0) return Verdict::BitIdentical;
  if (m.max_ulp == UINT64_MAX) return Verdict::Gross;  // a shape difference is never rounding
  if (m.max_abs <= kDriftRelative * m.scale) return Verdict::UlpDrift;
  const double ulp = dtype_ulp(dtype);
  if (ulp > dtype_ulp("f32") && m.max_abs <= ulp * m.scale) return Verdict::DtypeRounding;
  return Verdict::Gross;
}

const char* verdict_word(Verdict v) {
  switch (v) {
    case Verdict::BitIdentical: return "bit-identical";
    case Verdict::UlpDrift: return "ulp-drift";
    case Verdict::DtypeRounding: return "dtype-rounding";
    case Verdict::Gross: return "gross";
  }
  return "gross";
}

Verdict verdict_from_word(std::string_view word) {
  for (Verdict v : {Verdict::BitIdentical, Verdict::UlpDrift, Verdict::DtypeRounding, Verdict::Gross})
    if (word == verdict_word(v)) return v;
  fail("'{}' is not a verdict (bit-identical, ulp-drift, dtype-rounding, gross)", std::string(word));
}

std::string verdict_text(Verdict v, std::string_view dtype) {
  switch (v) {
    case Verdict::BitIdentical: return "bit-identical";
    case Verdict::UlpDrift: return "ULP-level drift (rounding, not a wrong value)";
    case Verdict::DtypeRounding: {
      std::string upper(dtype);
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return fmt::format("{} rounding (within one {} ULP of the engine's {} K/V cache, not a wrong value)", upper,
                         upper, upper);
    }
    case Verdict::Gross: return "gross error";
  }
  return "gross error";
}

std::string verdict_line(Verdict v, std::string_view dtype, int layer, std::string_view where) {
  if (layer < 0) return fmt::format("  verdict: {} in the {}\n", verdict_text(v, dtype), where);
  return fmt::format("  verdict: {} starting at layer {} {}\n", verdict_text(v, dtype), layer, where);
}

namespace {

enum class Tokens { Unknown, Equal, Differ };

// What a line (a headline, the levels line) says of the tokens.
Tokens tokens_claim(const std::string& s) {
  const bool differ = s.find("tokens differ") != std::string::npos;
  const bool equal = s.find("tokens equal") != std::string::npos || s.starts_with("bit-identical");
  if (differ == equal) return Tokens::Unknown;
  return differ ? Tokens::Differ : Tokens::Equal;
}

const char* name(Tokens t) { return t == Tokens::Differ ? "tokens differ" : "tokens equal"; }

// The verdict a "verdict: ..." line's text names, or nothing.
std::optional<Verdict> verdict_of_text(const std::string& s) {
  if (s.starts_with("gross error")) return Verdict::Gross;
  if (s.starts_with("ULP-level drift")) return Verdict::UlpDrift;
  if (s.starts_with("bit-identical")) return Verdict::BitIdentical;
  if (s.find(" rounding (within one ") != std::string::npos) return Verdict::DtypeRounding;
  return std::nullopt;
}

std::string after(const std::string& line, const std::string& prefix) { return line.substr(prefix.size()); }

}  // namespace

std::vector<std::string> report_contradictions(const std::string& text, const nlohmann::json& j) {
  std::vector<std::string> out;
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      const size_t start = line.find_first_not_of(' ');
      lines.push_back(start == std::string::npos ? "" : line.substr(start));
    }
  }
  const std::string headline =
      j.contains("headline") && j["headline"].is_string() ? j["headline"].get<std::string>() : lines.empty() ? "" : lines[0];
  const Tokens said = tokens_claim(headline);

  // The levels line: as the JSON says, and not against the headline.
  for (const std::string& line : lines) {
    if (!line.starts_with("levels: ")) continue;
    const std::string levels = after(line, "levels: ");
    if (j.contains("levels") && j["levels"] != levels)
      out.push_back(fmt::format("the levels line says '{}', the JSON '{}'", levels, j["levels"].dump()));
    const Tokens t = tokens_claim(levels);
    if (said != Tokens::Unknown && t != Tokens::Unknown && t != said)
      out.push_back(fmt::format("the headline says {}, the levels line '{}'", name(said), levels));
  }
  if (j.contains("levels") && j["levels"].is_string()) {
    const Tokens t = tokens_claim(j["levels"].get<std::string>());
    if (said != Tokens::Unknown && t != Tokens::Unknown && t != said)
      out.push_back(fmt::format("the headline says {}, the JSON levels '{}'", name(said), j["levels"].get<std::string>()));
  }
  // The token lines of our engine's report, and first_token_step.
  for (const std::string& line : lines) {
    if (line.starts_with("tokens: identical") && said == Tokens::Differ)
      out.push_back("the headline says tokens differ, a line 'tokens: identical'");
    if (line.starts_with("first token difference:") && said == Tokens::Equal)
      out.push_back("the headline says tokens equal, a line '" + line + "'");
  }
  if (j.contains("first_token_step") && j.contains("first_logit_step") && !j["first_logit_step"].is_null()) {
    const Tokens t = j["first_token_step"].is_null() ? Tokens::Equal : Tokens::Differ;
    if (said != Tokens::Unknown && t != said)
      out.push_back(fmt::format("the headline says {}, first_token_step is {}", name(said), j["first_token_step"].dump()));
  }

  // The verdict: one word of the vocabulary, the same on every verdict line, with a first parting.
  std::optional<Verdict> json_verdict;
  if (j.contains("verdict")) {
    try {
      json_verdict = verdict_from_word(j["verdict"].is_string() ? j["verdict"].get<std::string>() : "");
    } catch (const std::exception& e) {
      out.push_back(fmt::format("JSON verdict {}: {}", j["verdict"].dump(), e.what()));
    }
    if (!j.contains("first_parting")) out.push_back("a verdict without a first parting");
  }
  for (const std::string& line : lines) {
    if (!line.starts_with("verdict: ")) continue;
    const std::optional<Verdict> v = verdict_of_text(after(line, "verdict: "));
    if (!v) {
      out.push_back("a verdict line that names no verdict: '" + line + "'");
    } else if (!j.contains("verdict")) {
      out.push_back(fmt::format("the line '{}' but no JSON verdict", line));
    } else if (json_verdict && *v != *json_verdict) {
      out.push_back(fmt::format("the line '{}' against the JSON verdict {}", line, verdict_word(*json_verdict)));
    }
  }
  if (j.contains("verdict") && std::none_of(lines.begin(), lines.end(), [](const std::string& l) {
        return l.starts_with("verdict: ");
      }))
    out.push_back(fmt::format("the JSON verdict {} but no verdict line", j["verdict"].dump()));
  // The first parting line(s) that name a layer: the JSON's layer and component.
  if (j.contains("first_parting") && j["first_parting"].is_object()) {
    const auto& fp = j["first_parting"];
    const int layer = fp.value("layer", -2);
    const std::string component = fp.value("component", std::string());
    for (const std::string& line : lines) {
      if (!line.starts_with("first parting: layer ")) continue;
      const std::string rest = after(line, "first parting: layer ");
      const int l = std::atoi(rest.c_str());
      // "L, all heads, COMP ..." / "L, head H, COMP ..." / "L, head H, cache K row ..."
      size_t at = rest.find(", ");
      at = at == std::string::npos ? at : rest.find(", ", at + 2);
      std::string comp = at == std::string::npos ? "" : rest.substr(at + 2);
      comp = comp.substr(0, comp.find(' '));
      comp = comp.substr(0, comp.find(':'));
      if (l != layer || comp != component)
        out.push_back(fmt::format("the line '{}' against the JSON first parting layer {} {}", line, layer, component));
    }
    if (json_verdict && fp.contains("max_ulp") && fp["max_ulp"].is_number_unsigned() &&
        fp["max_ulp"].get<uint64_t>() == UINT64_MAX && *json_verdict != Verdict::Gross)
      out.push_back(fmt::format("a shape difference at the first parting judged {}", verdict_word(*json_verdict)));
    if (json_verdict && *json_verdict == Verdict::BitIdentical && fp.value("max_abs", 0.0) > 0.0)
      out.push_back("verdict bit-identical at a first parting that differs");
  }
  return out;
}

}  // namespace miniinfer::props
