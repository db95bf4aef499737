# The experiments_regenerate test: runs property_test and dump into a scratch folder and checks
# that the committed artifacts of experiments/22-* match them (compare_artifacts: JSON without
# dates and wall times, everything else byte for byte). A mismatch means the committed files are
# stale: scripts/regen-experiments rewrites them.
# cmake -DPROPERTY_TEST=... -DDUMP=... -DCOMPARE=... -DSOURCE_DIR=... -DWORK=... [-DMODEL=...] -P regen_check.cmake
foreach(_var PROPERTY_TEST DUMP COMPARE SOURCE_DIR WORK)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "regen_check.cmake: -D${_var}=... is required")
  endif()
endforeach()
set(_model_args)
if(DEFINED MODEL)
  set(_model_args --model ${MODEL})
endif()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/22-cache-correctness ${WORK}/22-yesterday-worked)

function(run_step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "regen_check: ${name} exited with ${_rc}\n${_out}\n${_err}")
  endif()
  message(STATUS "regen_check: ${name} ok")
endfunction()

run_step(property_test ${PROPERTY_TEST} ${_model_args} --out ${WORK}/22-cache-correctness)
run_step(dump ${DUMP} ${_model_args} --out ${WORK}/22-yesterday-worked)
execute_process(COMMAND ${COMPARE} ${SOURCE_DIR}/experiments/22-cache-correctness ${WORK}/22-cache-correctness
                        results.json manifest.json RESULT_VARIABLE _rc1)
execute_process(COMMAND ${COMPARE} ${SOURCE_DIR}/experiments/22-yesterday-worked ${WORK}/22-yesterday-worked
                        slots.npz report.md manifest.json RESULT_VARIABLE _rc2)
if(NOT _rc1 EQUAL 0 OR NOT _rc2 EQUAL 0)
  message(FATAL_ERROR "regen_check: the committed experiment files differ from a fresh run; "
                      "regenerate them with scripts/regen-experiments (and review the diff)")
endif()
message(STATUS "regen_check: the committed files of both experiments match a fresh run")
