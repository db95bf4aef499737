# The checker has teeth: with the eigen backend (library GEMMs) props must fail, its report must
# point at layer 0, and replaying the saved counterexample must fail again with the same report.
# Run as: cmake -DPROPS=... -DWORK=... -P teeth.cmake
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${PROPS} --rc-seed=1 --backend eigen -a "[p6]" --report-dir ${WORK}/first
                RESULT_VARIABLE first OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(first EQUAL 0)
  message(FATAL_ERROR "props --backend eigen passed; it must fail the bitwise properties:\n${out}")
endif()
file(READ ${WORK}/first/p6.report.json report)
string(JSON layer GET "${report}" first_parting layer)
string(JSON verdict GET "${report}" verdict)
if(NOT layer EQUAL 0 OR NOT verdict STREQUAL "ulp-drift")
  message(FATAL_ERROR "eigen report names layer ${layer} (${verdict}); expected layer 0 ulp-drift")
endif()
execute_process(COMMAND ${PROPS} --replay ${WORK}/first/p6.case.json --report-dir ${WORK}/replay
                RESULT_VARIABLE again OUTPUT_VARIABLE out2 ERROR_VARIABLE out2)
if(again EQUAL 0)
  message(FATAL_ERROR "the replayed counterexample passed:\n${out2}")
endif()
file(READ ${WORK}/replay/p6.report.json replayed)
string(JSON a GET "${report}" table)
string(JSON b GET "${replayed}" table)
string(JSON pa GET "${report}" first_parting)
string(JSON pb GET "${replayed}" first_parting)
if(NOT a STREQUAL b OR NOT pa STREQUAL pb)
  message(FATAL_ERROR "the replay's report differs from the first one")
endif()
message(STATUS "eigen backend: fails at layer 0 (ulp-drift); replay fails again with the same report")
