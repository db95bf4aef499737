// The machine description: what it reads from /proc/cpuinfo and the loaded libraries, its JSON
// both ways, and the one phrase per field a replay prints when the machines differ.
#include "base/machine.h"

#include <catch2/catch.hpp>

#include "base/error.h"

namespace miniinfer {
namespace {

const char* const kCpuinfo =
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n"
    "flags\t\t: fpu sse sse2 sse4_2 avx f16c fma avx2 avx512f avx512bw bmi2\n\n"
    "processor\t: 1\nmodel name\t: Something Else\nflags\t\t: fpu\n";

TEST_CASE("the machine names the first CPU's model and the ISA flags that matter, in kIsaFlags' order",
          "[machine]") {
  const Machine m = machine_from(kCpuinfo, {}, 3);
  CHECK(m.cpu == "AMD EPYC 9R14");
  CHECK(m.isa == std::vector<std::string>{"sse4_2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512bw"});
  CHECK(m.threads == 3);
  // The compiler that built this test, by name and version (gcc's __VERSION__ is its version;
  // clang's is "Debian Clang 14.0.6", so its own macro is the version).
#if defined(__clang__)
  CHECK(m.compiler.rfind("clang ", 0) == 0);
  CHECK(m.compiler.find(__clang_version__) != std::string::npos);
#else
  CHECK(m.compiler.rfind("gcc ", 0) == 0);
  CHECK(m.compiler.find(__VERSION__) != std::string::npos);
#endif
  CHECK(m.build.find("-march=") != std::string::npos);  // CMakeLists.txt passes the build's flags
  CHECK(m.ggml_build.empty());
  CHECK(m.ggml_cpu_variant.empty());
  CHECK(machine_from("", {}, 1).cpu == "unknown");
}

TEST_CASE("with llama.cpp loaded the machine names the ggml CPU variant and llama.cpp's library", "[machine]") {
  const Machine m = machine_from(kCpuinfo, {"/lib/x86_64-linux-gnu/libc.so.6", "/nowhere/lib/libllama.v0.4.0.so",
                                             "/nowhere/lib/libggml-base.so", "/nowhere/lib/libggml-cpu-zen4.so"},
                                 1);
  CHECK(m.ggml_cpu_variant == "libggml-cpu-zen4.so");
  CHECK(m.ggml_build == "libllama.v0.4.0.so");  // no VERSION file beside /nowhere/lib
  CHECK(to_json(m).contains("ggml_cpu_variant"));
  CHECK_FALSE(to_json(machine_from(kCpuinfo, {}, 1)).contains("ggml_build"));
}

TEST_CASE("this process's machine reads /proc/cpuinfo", "[machine]") {
  const Machine m = this_machine(1);
  CHECK_FALSE(m.cpu.empty());
  CHECK(m.ggml_cpu_variant.empty());  // the unit tests load no llama.cpp
}

TEST_CASE("a machine survives its JSON, and a wrong field is one Error", "[machine]") {
  Machine m = machine_from(kCpuinfo, {"/x/lib/libllama.so.0", "/x/lib/libggml-cpu-haswell.so"}, 2);
  const Machine back = machine_from_json(to_json(m));
  CHECK(machine_differences(m, back).empty());
  CHECK(to_json(back) == to_json(m));
  CHECK(machine_from_json(nlohmann::json::object()).cpu.empty());
  CHECK_THROWS_AS(machine_from_json(nlohmann::json::parse(R"({"cpu": 3})")), Error);
  CHECK_THROWS_AS(machine_from_json(nlohmann::json::parse(R"({"isa": "avx2"})")), Error);
  CHECK_THROWS_AS(machine_from_json(nlohmann::json::parse(R"({"isa": [1]})")), Error);
  CHECK_THROWS_AS(machine_from_json(nlohmann::json::parse(R"({"threads": 0})")), Error);
  CHECK_THROWS_AS(machine_from_json(nlohmann::json::parse("[]")), Error);
}

TEST_CASE("two machines' differences are one phrase per field", "[machine]") {
  const Machine here = machine_from(kCpuinfo, {"/x/lib/libllama.so.0", "/x/lib/libggml-cpu-zen4.so"}, 1);
  Machine there = here;
  CHECK(machine_differences(there, here).empty());
  there.cpu = "Intel Xeon";
  there.isa = {"sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni"};
  there.ggml_cpu_variant = "libggml-cpu-haswell.so";
  const auto d = machine_differences(there, here);
  REQUIRE(d.size() == 3);
  CHECK(d[0] == "cpu: Intel Xeon when recorded, AMD EPYC 9R14 here");
  CHECK(d[1] == "isa: avx_vnni only when recorded; avx512bw avx512f only here");
  CHECK(d[2] == "ggml_cpu_variant: libggml-cpu-haswell.so when recorded, libggml-cpu-zen4.so here");
}

}  // namespace
}  // namespace miniinfer
