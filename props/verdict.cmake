# props_verdict: every report path writes reports whose lines agree with each other and with
# their JSON (props_report_check, verdict.h report_contradictions), and a run with several
# failures ends with its groups (groups.h), in its output and in its --summary JSON.
# Our engine (props_verdict): cursor-off-by-one (the forward reporter and p11's, one gross group), library-gemv
# (ulp-drift, two groups), cow-missing (the paged cache: p11's pool and cache rows). With
# -DGGUF (props_verdict_llamacpp, when the build has llama.cpp): instead, the outside reporter on p12 at the tokens level (whose
# levels line once said "tokens equal" under a headline whose tokens differ) and experiment
# 25's flash-attention case, whose first parting is within one F16 ULP: dtype-rounding.
# Run as: cmake -DPROPS=... -DCHECK=... -DWORK=... [-DGGUF=... -DMINIGPT=... -DSOURCE_DIR=...] -P verdict.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

# run(NAME EXPECTED_GROUPS ARGS...): props ARGS into WORK/NAME, which must fail (exit 1), with
# EXPECTED_GROUPS groups in its summary and, with two failures or more, its closing block.
function(run name groups)
  execute_process(COMMAND ${PROPS} --rc-seed=1 ${ARGN} --report-dir ${WORK}/${name} --summary ${WORK}/${name}.json
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  file(WRITE ${WORK}/${name}.log "${out}")
  if(NOT rc EQUAL 1)
    message(FATAL_ERROR "props ${ARGN}: exit ${rc}, expected 1 (a failure):\n${out}")
  endif()
  file(READ ${WORK}/${name}.json summary)
  string(JSON n LENGTH "${summary}" groups)
  if(NOT n EQUAL groups)
    message(FATAL_ERROR "props ${ARGN}: ${n} groups in the summary, expected ${groups}: ${WORK}/${name}.json")
  endif()
  string(REGEX MATCH "props: [0-9]+ passed, ([0-9]+) failed" _ "${out}")
  set(failed ${CMAKE_MATCH_1})
  if(failed GREATER 1)  # one failure is one group: the summary has it, no closing block
    if(NOT out MATCHES "props: [0-9]+ failures in ${groups} groups? \\(by first parting site, verdict and cause\\):\n  group 1: ")
      message(FATAL_ERROR "props ${ARGN}: no closing block of ${groups} group(s):\n${out}")
    endif()
    string(JSON count GET "${summary}" groups 0 count)
    string(JSON replay GET "${summary}" groups 0 smallest replay)
    if(count LESS 2 AND groups EQUAL 1)
      message(FATAL_ERROR "props ${ARGN}: one group of ${count}: ${WORK}/${name}.json")
    endif()
    if(NOT out MATCHES "smallest: p[0-9]+, [0-9]+ tokens: [^\n]* --replay ")
      message(FATAL_ERROR "props ${ARGN}: the group names no smallest case with its replay:\n${out}")
    endif()
  endif()
  message(STATUS "props ${ARGN}: ${n} group(s)")
endfunction()

set(dirs "")
if(NOT GGUF)
  run(cursor 1 --inject cursor-off-by-one)
  run(gemv 2 --inject library-gemv)
  run(cow 1 --inject cow-missing)
  set(dirs ${WORK}/cursor ${WORK}/gemv ${WORK}/cow)
else()
  execute_process(COMMAND ${MINIGPT} export-gguf --out ${GGUF} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "minigpt export-gguf failed:\n${out}")
  endif()
  run(llama-p12 1 --engine llamacpp --gguf ${GGUF} --level tokens --no-expected [p12])
  set(case ${SOURCE_DIR}/experiments/25-llamacpp-serving/counterexamples/flash-reorder/tokens/p6.case.json)
  execute_process(COMMAND ${PROPS} --replay ${case} --engine llamacpp --gguf ${GGUF} --report-dir ${WORK}/llama-flash
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 1)
    message(FATAL_ERROR "the replay of ${case} exited ${rc}, not 1:\n${out}")
  endif()
  file(READ ${WORK}/llama-flash/p6.report.json report)
  string(JSON verdict GET "${report}" verdict)
  if(NOT verdict STREQUAL "dtype-rounding")
    message(FATAL_ERROR "llama.cpp's F16 cache with flash attention: verdict ${verdict}, expected dtype-rounding "
                        "(its first parting is within one F16 ULP): ${WORK}/llama-flash/p6.report.txt")
  endif()
  list(APPEND dirs ${WORK}/llama-p12 ${WORK}/llama-flash)
endif()
execute_process(COMMAND ${CHECK} ${dirs} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "props_report_check: exit ${rc}:\n${out}")
endif()
string(REGEX MATCH "[0-9]+ reports, 0 with contradictions" line "${out}")
message(STATUS "${line}")
