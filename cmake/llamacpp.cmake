# llama.cpp, the second engine (src/llamacpp/, `minigpt export-gguf`, bench/llamacpp/). Optional:
# without it everything else builds, and this file says so in one line at configure time and
# in one skipped CTest test. Where it comes from, in order:
#  1. an installed llama.cpp of the pinned release line (find_package(llama), 0.4.x);
#  2. third_party/llama.cpp, fetched from the npm registry by scripts/fetch-llamacpp (headers
#     from node-llama-cpp's source bundle, prebuilt CPU libraries from @node-llama-cpp/linux-x64).
option(MINIINFER_LLAMACPP "Build the llama.cpp engine, export-gguf and their tests if llama.cpp is found" ON)
set(MINIINFER_LLAMACPP_FOUND OFF)
set(_lc_bundled OFF)  # the libraries are third_party's, which the module finds relative to itself
set(_lc_dir ${PROJECT_SOURCE_DIR}/third_party/llama.cpp)
# A fetch that lands (or a re-fetch with other pins) re-runs the configure step by itself.
file(GLOB _lc_stamp CONFIGURE_DEPENDS ${_lc_dir}/.fetched)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/third_party.sha256)

add_library(miniinfer_llama INTERFACE)
if(NOT MINIINFER_LLAMACPP)
  set(_lc_why "MINIINFER_LLAMACPP is OFF")
else()
  find_package(llama 0.4.0 CONFIG QUIET)
  if(llama_FOUND AND llama_VERSION VERSION_LESS 0.5)
    set(MINIINFER_LLAMACPP_FOUND ON)
    target_link_libraries(miniinfer_llama INTERFACE llama ggml::ggml ggml::ggml-base)
    message(STATUS "miniinfer: llama.cpp: using the installed llama ${llama_VERSION} (${llama_DIR})")
  elseif(_lc_stamp)
    file(READ ${_lc_stamp} _lc_pinned)
    file(READ ${PROJECT_SOURCE_DIR}/third_party.sha256 _lc_wanted)
    if(NOT _lc_pinned STREQUAL _lc_wanted)
      set(_lc_why "third_party/llama.cpp was fetched for other pins (run scripts/fetch-llamacpp)")
    else()
      set(MINIINFER_LLAMACPP_FOUND ON)
      set(_lc_bundled ON)
      foreach(_lib llama:libllama.v0.4.0.so ggml:libggml.v0.4.0.so ggml-base:libggml-base.so)
        string(REPLACE ":" ";" _pair ${_lib})
        list(GET _pair 0 _name)
        list(GET _pair 1 _file)
        add_library(llamacpp::${_name} SHARED IMPORTED)
        set_target_properties(llamacpp::${_name} PROPERTIES IMPORTED_LOCATION ${_lc_dir}/lib/${_file}
                                                           IMPORTED_SONAME ${_file})
      endforeach()
      # SYSTEM: their headers are not held to our -Wpedantic -Werror.
      target_include_directories(miniinfer_llama SYSTEM INTERFACE ${_lc_dir}/include ${_lc_dir}/ggml/include)
      target_link_libraries(miniinfer_llama INTERFACE llamacpp::llama llamacpp::ggml llamacpp::ggml-base)
      # The CPU backends are plugins (libggml-cpu-<isa>.so); ggml picks the best one at run time.
      target_compile_definitions(miniinfer_llama INTERFACE MINIINFER_LLAMACPP_BACKEND_DIR="${_lc_dir}/lib")
      file(READ ${_lc_dir}/VERSION _lc_version)
      string(STRIP "${_lc_version}" _lc_version)
      message(STATUS "miniinfer: llama.cpp: third_party/llama.cpp, ${_lc_version}")
    endif()
  else()
    set(_lc_why "not found (scripts/fetch-llamacpp fetches it)")
  endif()
endif()

if(NOT MINIINFER_LLAMACPP_FOUND)
  set(_lc_line "llama.cpp ${_lc_why}: export-gguf, the LlamaCpp engine, its tests and bench_vs_llamacpp are skipped")
  message(NOTICE "miniinfer: ${_lc_line}")
  add_test(NAME llamacpp_skipped COMMAND ${CMAKE_COMMAND} -E echo "SKIPPED: ${_lc_line}")
  set_tests_properties(llamacpp_skipped PROPERTIES LABELS llamacpp SKIP_REGULAR_EXPRESSION "SKIPPED: ")
  return()
endif()

# src/llamacpp/ three ways:
#  * libminiinfer_llamacpp.so, the module (llamacpp/module.h): LlamaCpp and the GGUF export, with
#    the few files of ours they call compiled in again (position-independent, hidden), linked
#    against llama.cpp. minigpt and props link none of llama.cpp: they dlopen the module the first
#    time a command asks for it, so without llama.cpp's libraries everything else still runs.
#  * miniinfer_llamacpp_load: the loader, and the tolerance (no llama.cpp call), for minigpt and props;
#  * miniinfer_llamacpp: LlamaCpp and the export linked directly, for the tests and the benches.
set(_lc_src ${PROJECT_SOURCE_DIR}/src/llamacpp)
add_library(miniinfer_llamacpp_module SHARED
            ${_lc_src}/module.cpp ${_lc_src}/llamacpp_engine.cpp ${_lc_src}/gguf_export.cpp
            ${PROJECT_SOURCE_DIR}/src/base/atomic_file.cpp ${PROJECT_SOURCE_DIR}/src/model/model.cpp
            ${PROJECT_SOURCE_DIR}/src/model/model_file.cpp ${PROJECT_SOURCE_DIR}/src/model/safetensors.cpp)
target_include_directories(miniinfer_llamacpp_module PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(miniinfer_llamacpp_module PRIVATE miniinfer_flags miniinfer_llama Eigen3::Eigen fmt::fmt
                                                        nlohmann_json::nlohmann_json)
# Next to minigpt and props; only miniinfer_llamacpp_module() is exported.
set_target_properties(miniinfer_llamacpp_module PROPERTIES
  OUTPUT_NAME miniinfer_llamacpp LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}
  CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
# Every file it needs is in it (the link says which one is missing); not so under sanitizers or
# libFuzzer's coverage, whose runtime clang leaves to the program that loads the module.
if(NOT MINIINFER_SANITIZE AND NOT MINIINFER_FUZZ)
  target_link_options(miniinfer_llamacpp_module PRIVATE -Wl,--no-undefined)
endif()
if(_lc_bundled)
  # Found relative to the module ($ORIGIN), not by an absolute path: a module copied elsewhere
  # (cli_without_llamacpp does so) finds no llama.cpp, as on a machine without it.
  file(RELATIVE_PATH _lc_rel ${PROJECT_BINARY_DIR} ${_lc_dir}/lib)
  set_target_properties(miniinfer_llamacpp_module PROPERTIES BUILD_WITH_INSTALL_RPATH ON
                                                             INSTALL_RPATH "$ORIGIN/${_lc_rel}")
endif()

add_library(miniinfer_llamacpp_load STATIC ${_lc_src}/module_load.cpp ${_lc_src}/tolerance.cpp)
target_link_libraries(miniinfer_llamacpp_load PUBLIC miniinfer_model miniinfer_base miniinfer_flags ${CMAKE_DL_LIBS})
target_compile_definitions(miniinfer_llamacpp_load PRIVATE
                           MINIINFER_LLAMACPP_MODULE="$<TARGET_FILE:miniinfer_llamacpp_module>")
# Whatever links the loader finds the module built.
add_dependencies(miniinfer_llamacpp_load miniinfer_llamacpp_module)

add_library(miniinfer_llamacpp STATIC ${_lc_src}/llamacpp_engine.cpp ${_lc_src}/gguf_export.cpp)
target_include_directories(miniinfer_llamacpp PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(miniinfer_llamacpp PUBLIC miniinfer_llamacpp_load miniinfer_model miniinfer_base miniinfer_flags
                                                miniinfer_llama fmt::fmt nlohmann_json::nlohmann_json)

# One test binary of the *_test.cpp files, labelled llamacpp (they need the libraries above;
# conformance_test compares with our engine).
file(GLOB _lc_tests CONFIGURE_DEPENDS ${_lc_src}/*_test.cpp)
add_executable(miniinfer_llamacpp_tests ${_lc_tests})
target_link_libraries(miniinfer_llamacpp_tests PRIVATE miniinfer_llamacpp miniinfer_engine miniinfer_test_main
                                                       Catch2::Catch2)
catch_discover_tests(miniinfer_llamacpp_tests PROPERTIES LABELS llamacpp)

target_link_libraries(minigpt PRIVATE miniinfer_llamacpp_load)
target_compile_definitions(minigpt PRIVATE MINIINFER_HAVE_LLAMACPP=1)
# `minigpt export-gguf` on bad input: one line, status 2 (refused), no file left.
add_test(NAME export_gguf_bad_input
         COMMAND ${PROJECT_SOURCE_DIR}/src/llamacpp/export_gguf_bad_input.sh $<TARGET_FILE:minigpt>
                 ${PROJECT_BINARY_DIR}/export-gguf-bad-input)
set_tests_properties(export_gguf_bad_input PROPERTIES LABELS llamacpp TIMEOUT 300)
if(_lc_bundled)
  # minigpt and props without llama.cpp's libraries: all runs but --engine llamacpp and
  # export-gguf, which refuse in one line naming the missing library (src/cli/without_llamacpp_test.sh).
  add_test(NAME cli_without_llamacpp
           COMMAND ${PROJECT_SOURCE_DIR}/src/cli/without_llamacpp_test.sh $<TARGET_FILE:minigpt> $<TARGET_FILE:props>
                   $<TARGET_FILE:miniinfer_llamacpp_module> ${_lc_dir}/lib ${PROJECT_BINARY_DIR}/without-llamacpp)
  set_tests_properties(cli_without_llamacpp PROPERTIES LABELS cli TIMEOUT 600)
endif()

# Ours against llama.cpp, side by side in one run (docs/benchmarks.md); built, never run by the tests.
add_executable(bench_vs_llamacpp ${PROJECT_SOURCE_DIR}/bench/llamacpp/bench_vs_llamacpp.cpp)
target_link_libraries(bench_vs_llamacpp PRIVATE miniinfer_llamacpp miniinfer_engine)
set_target_properties(bench_vs_llamacpp PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
# The cost curves with llama.cpp's lines added (cost_curve --llamacpp).
add_executable(cost_curve_llamacpp ${PROJECT_SOURCE_DIR}/bench/cost_curve.cpp)
target_link_libraries(cost_curve_llamacpp PRIVATE miniinfer_llamacpp miniinfer_engine)
target_compile_definitions(cost_curve_llamacpp PRIVATE MINIINFER_HAVE_LLAMACPP=1)
set_target_properties(cost_curve_llamacpp PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
# Issue 30 at GPT-2 scale (scripts/bench-scale): ours against llama.cpp and a library GEMM, the
# machine's peak and memory. OpenBLAS (Debian's libopenblas64-pthread-dev, scripts/setup: the
# 64-bit-index build, which is not the system's libblas.so.3) where found.
add_executable(bench_scale ${PROJECT_SOURCE_DIR}/bench/llamacpp/bench_scale.cpp)
target_link_libraries(bench_scale PRIVATE miniinfer_llamacpp miniinfer_engine Eigen3::Eigen fmt::fmt)
set_target_properties(bench_scale PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
find_library(MINIINFER_OPENBLAS_LIB openblas64 PATH_SUFFIXES openblas64-pthread)
find_path(MINIINFER_OPENBLAS_INCLUDE openblas_config.h PATH_SUFFIXES x86_64-linux-gnu/openblas64-pthread)
if(MINIINFER_OPENBLAS_LIB AND MINIINFER_OPENBLAS_INCLUDE)
  target_include_directories(bench_scale SYSTEM PRIVATE ${MINIINFER_OPENBLAS_INCLUDE})
  target_link_libraries(bench_scale PRIVATE ${MINIINFER_OPENBLAS_LIB})
  target_compile_definitions(bench_scale PRIVATE MINIINFER_HAVE_OPENBLAS=1)
else()
  message(NOTICE "miniinfer: OpenBLAS not found: bench_scale compares the GEMM with Eigen only")
endif()
