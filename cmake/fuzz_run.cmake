# Runs one libFuzzer target for RUNS executions: first every input of its committed seed corpus
# (regression inputs included), then mutations of them. New interesting inputs go to WORK, a
# fresh folder in the build tree; the committed corpus is only read. The seed is fixed (1), so
# a run is repeatable; a crash leaves crash-* in WORK and fails the test.
# Run as: cmake -DFUZZER=... -DCORPUS=... -DWORK=... -DRUNS=N -P fuzz_run.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/new)
execute_process(COMMAND ${FUZZER} -seed=1 -runs=${RUNS} -max_len=32768 -timeout=10 -rss_limit_mb=4096
                        -artifact_prefix=${WORK}/ -print_final_stats=1 ${WORK}/new ${CORPUS}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
# libFuzzer reports on stderr; keep the lines a person reads: the corpus, coverage, the end.
string(REGEX MATCHALL "[^\n]*(INITED|DONE|Done|stat::number_of_executed_units|cov:|ERROR|SUMMARY|crash|deadly)[^\n]*" lines "${err}")
list(LENGTH lines n)
if(n GREATER 6)
  list(SUBLIST lines 0 2 head)
  math(EXPR from "${n} - 4")
  list(SUBLIST lines ${from} 4 tail)
  set(lines ${head} ${tail})
endif()
string(REPLACE ";" "\n" lines "${lines}")
message(STATUS "${lines}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); the input is in ${WORK}/:\n${err}")
endif()
