# Runs one libFuzzer target for RUNS executions: first every input of its committed seed corpus
# (regression inputs included), then mutations of them. New interesting inputs go to WORK, a
# fresh folder in the build tree; the committed corpus is only read. The seed is fixed (1), so
# a run is repeatable; a crash leaves crash-* in WORK and fails the test.
# Run as: cmake -DFUZZER=... -DCORPUS=... -DWORK=... -DRUNS=N -DMAX_LEN=BYTES -P fuzz_run.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/new)
execute_process(COMMAND ${FUZZER} -seed=1 -runs=${RUNS} -max_len=${MAX_LEN} -timeout=10 -rss_limit_mb=4096
                        -artifact_prefix=${WORK}/ -print_final_stats=1 ${WORK}/new ${CORPUS}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
# libFuzzer reports on stderr; keep the lines a person reads: the seed corpus loaded, the end
# (executions, coverage as edges "cov:" and features "ft:"), and any error.
string(REGEX MATCHALL "[^\n]*(INITED|DONE|Done [0-9]+ runs|stat::number_of_executed_units|ERROR|SUMMARY|deadly)[^\n]*" lines "${err}")
string(REPLACE ";" "\n" lines "${lines}")
message(STATUS "${FUZZER}\n${lines}")
# A run that ended early (a time limit, a signal libFuzzer caught) must not pass for RUNS
# executions: the count libFuzzer reports is checked against RUNS.
string(REGEX MATCH "stat::number_of_executed_units: ([0-9]+)" _units "${err}")
if(rc EQUAL 0 AND NOT _units)
  message(FATAL_ERROR "${FUZZER}: libFuzzer reported no execution count (-print_final_stats)")
elseif(rc EQUAL 0 AND CMAKE_MATCH_1 LESS RUNS)
  message(FATAL_ERROR "${FUZZER}: libFuzzer reports ${CMAKE_MATCH_1} executions, fewer than the ${RUNS} asked for")
endif()
if(NOT rc EQUAL 0)
  string(LENGTH "${err}" n)
  if(n GREATER 4000)
    math(EXPR from "${n} - 4000")
    string(SUBSTRING "${err}" ${from} 4000 err)
  endif()
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); the input is in ${WORK}/. The end of its report:\n${err}")
endif()
