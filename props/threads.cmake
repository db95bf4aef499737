# p14 (the same bytes on any thread count) holds on our engine and has teeth: with the split-k
# fault it fails, shrinks to one prompt on 1 and 2 threads, and its report names layer 0's mlp as
# a ULP drift; the saved case replays to the same report and passes with --inject none; p6 stays
# green under the fault on one thread and fails on two (--threads 2). With -DMINIGPT, a process
# engine (which has no thread count) skips p14 with the reason.
# Run as: cmake -DPROPS=... -DWORK=... [-DMINIGPT=...] -P threads.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(failures "")

# Runs props with the given arguments; `rc_var` and `out_var` get its status and output.
function(run_props rc_var out_var)
  execute_process(COMMAND ${PROPS} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(${rc_var} ${rc} PARENT_SCOPE)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

run_props(rc out --rc-seed=1 "[p14]" --report-dir ${WORK}/clean)
if(NOT rc EQUAL 0 OR NOT out MATCHES "ok    p14 ")
  list(APPEND failures "p14 on the clean engine exited ${rc}:\n${out}")
endif()

run_props(rc out --rc-seed=1 --inject split-k "[p14]" --report-dir ${WORK}/first)
file(WRITE ${WORK}/first.log "${out}")
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "p14 --inject split-k exited ${rc}, expected 1; log ${WORK}/first.log")
endif()
file(READ ${WORK}/first/p14.report.json report)
file(READ ${WORK}/first/p14.case.json case)
string(JSON layer GET "${report}" first_parting layer)
string(JSON component GET "${report}" first_parting component)
string(JSON verdict GET "${report}" verdict)
string(JSON t1 GET "${case}" threads 0)
string(JSON t2 GET "${case}" threads 1)
string(JSON prompts LENGTH "${case}" prompts)
string(JSON tokens LENGTH "${case}" prompts 0 ids)
if(NOT layer EQUAL 0 OR NOT component STREQUAL "mlp" OR NOT verdict STREQUAL "ulp-drift")
  list(APPEND failures "split-k's report names layer ${layer} ${component} (${verdict}); expected layer 0 mlp ulp-drift")
endif()
if(NOT t1 EQUAL 1 OR NOT t2 EQUAL 2 OR NOT prompts EQUAL 1 OR NOT tokens EQUAL 1)
  list(APPEND failures "split-k's case shrank to threads ${t1} and ${t2}, ${prompts} prompts of ${tokens}+ tokens; expected 1 and 2, one prompt of one token")
endif()

run_props(rc out --replay ${WORK}/first/p14.case.json --report-dir ${WORK}/replay)
file(READ ${WORK}/replay/p14.report.json replayed)
if(NOT rc EQUAL 1 OR NOT replayed STREQUAL report)
  list(APPEND failures "the replay exited ${rc} and its report differs from the first (or it passed):\n${out}")
endif()
run_props(rc out --replay ${WORK}/first/p14.case.json --inject none --report-dir ${WORK}/none)
if(NOT rc EQUAL 0)
  list(APPEND failures "the case fails without its fault:\n${out}")
endif()

run_props(rc out --rc-seed=1 --inject split-k "[p6]" --report-dir ${WORK}/p6-one)
if(NOT rc EQUAL 0)
  list(APPEND failures "p6 under split-k on one thread failed (the fault must act above one thread only):\n${out}")
endif()
run_props(rc out --rc-seed=1 --threads 2 --inject split-k "[p6]" --report-dir ${WORK}/p6-two)
if(NOT rc EQUAL 1 OR NOT out MATCHES "2 threads")
  list(APPEND failures "p6 under split-k on 2 threads exited ${rc}, expected 1, with the banner naming 2 threads:\n${out}")
endif()

if(MINIGPT)
  run_props(rc out --engine process --engine-cmd "${MINIGPT} serve" "[p14]")
  if(NOT out MATCHES "SKIP  p14 [^\n]*no settable thread count: the protocol has no command that sets a thread count")
    list(APPEND failures "the process engine's p14 skip line does not say why:\n${out}")
  endif()
endif()

if(failures)
  string(REPLACE ";" "\n" failures "${failures}")
  message(FATAL_ERROR "${failures}")
endif()
message(STATUS "p14: holds on the clean engine; split-k caught, shrunk to \"I\" on 1 and 2 threads, layer 0 mlp (ulp-drift), replayed")
