// What the llama.cpp tests share: the shipped model, and its GGUF exported once per process
// into a temp folder (removed at exit).
#pragma once
#include <string>

#include "base/temp_dir.h"
#include "llamacpp/gguf_export.h"
#include "model/model_file.h"

namespace miniinfer::testing {

inline const std::string& shipped_model_path() {
  static const std::string path =
      std::string(MINIINFER_SOURCE_DIR) + "/experiments/17-minigpt/minigpt.safetensors";
  return path;
}

inline const Model& shipped_model() {
  static const Model model = read_model(shipped_model_path());
  return model;
}

inline const std::string& shipped_gguf() {
  static TempDir dir("llamacpp_gguf");
  static const std::string path = [] {
    const std::string p = dir.file("minigpt.gguf");
    write_gguf(p, shipped_model());
    return p;
  }();
  return path;
}

// Largest |a_i - b_i| over two equally long rows.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    m = d > m ? d : (-d > m ? -d : m);
  }
  return a.size() == b.size() ? m : 1e300;
}

}  // namespace miniinfer::testing
