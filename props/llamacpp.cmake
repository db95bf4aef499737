# props on llama.cpp (CTest label llamacpp): a short run at the level experiments/23-llamacpp-cache
# found to hold there (tokens: the logits differ in the last bits, the tokens do not), which must
# pass and name the properties it skips; then a replay of the committed counterexample of that
# experiment, which must fail again with the same report.
# Run as: cmake -DPROPS=... -DMINIGPT=... -DSOURCE_DIR=... -DGGUF=... -DWORK=... -P llamacpp.cmake
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${MINIGPT} export-gguf --out ${GGUF} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "minigpt export-gguf failed:\n${out}")
endif()

execute_process(COMMAND ${PROPS} --rc-seed=1 --rc-max-success=10 --engine llamacpp --gguf ${GGUF} --level tokens
                        --report-dir ${WORK}/short
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message(STATUS "${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "props --engine llamacpp --level tokens failed (exit ${rc})")
endif()
foreach(skipped p7 p10 p11)
  if(NOT out MATCHES "SKIP  ${skipped} [^\n]*engine llamacpp has no")
    message(FATAL_ERROR "props on llamacpp did not skip ${skipped} by name")
  endif()
endforeach()
if(NOT out MATCHES "not checked: the cache bytes")
  message(FATAL_ERROR "props on llamacpp did not say what p5 leaves unchecked")
endif()

set(saved ${SOURCE_DIR}/experiments/23-llamacpp-cache/counterexamples/defaults)
execute_process(COMMAND ${PROPS} --engine llamacpp --gguf ${GGUF} --replay ${saved}/p6.case.json
                        --report-dir ${WORK}/replay
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message(STATUS "${out}")
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "the replay of ${saved}/p6.case.json exited ${rc}; it must fail again (1)")
endif()
# The same report, but for where this build keeps its GGUF.
foreach(which saved replayed)
  if(which STREQUAL "saved")
    file(READ ${saved}/p6.report.json json)
  else()
    file(READ ${WORK}/replay/p6.report.json json)
  endif()
  string(JSON json REMOVE "${json}" engine_settings gguf)
  string(JSON json REMOVE "${json}" case engine_settings gguf)
  set(${which} "${json}")
endforeach()
if(NOT saved STREQUAL replayed)
  message(FATAL_ERROR "the replay's report differs from the committed one: diff "
                      "${SOURCE_DIR}/experiments/23-llamacpp-cache/counterexamples/defaults/p6.report.json "
                      "${WORK}/replay/p6.report.json")
endif()
message(STATUS "llama.cpp: props passes at the tokens level; the committed counterexample fails again with the same report")
