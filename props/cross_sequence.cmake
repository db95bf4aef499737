# Causes in another sequence (issue 28), on llama.cpp (CTest label llamacpp): experiment 25's p5
# counterexample with n_ubatch = 1 (chunked prefill in sequence 0 parts from full recompute only
# while sequence 1's one-shot prefill sits in the same cache; alone, sequence 0 is bit-identical)
# replays, fails again, and its report names the cause: cross-sequence, sequence 0 needs
# sequence 1, resident in the shared cache.
# Run as: cmake -DPROPS=... -DMINIGPT=... -DCASE=... -DWORK=... -P cross_sequence.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${MINIGPT} export-gguf --out ${WORK}/minigpt.gguf RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "minigpt export-gguf failed:\n${out}")
endif()
execute_process(COMMAND ${PROPS} --engine llamacpp --gguf ${WORK}/minigpt.gguf --replay ${CASE} --report-dir ${WORK}/out
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
file(WRITE ${WORK}/replay.log "${out}")
if(NOT rc EQUAL 1 OR NOT EXISTS ${WORK}/out/p5.report.json)
  message(FATAL_ERROR "the replay of ${CASE} exited ${rc} with no p5 report; it must fail again (log ${WORK}/replay.log)")
endif()
file(READ ${WORK}/out/p5.report.json report)
string(JSON cause ERROR_VARIABLE no_cause GET "${report}" cause)
string(JSON seq ERROR_VARIABLE no_seq GET "${report}" cross_sequence seq)
string(JSON needs ERROR_VARIABLE no_needs GET "${report}" cross_sequence needs_seq)
string(JSON operation ERROR_VARIABLE no_op GET "${report}" cross_sequence operation)
if(NOT cause STREQUAL "cross-sequence" OR NOT seq EQUAL 0 OR NOT needs EQUAL 1 OR NOT operation STREQUAL "resident")
  message(FATAL_ERROR "p5 on llama.cpp (n_ubatch = 1): cause '${cause}', cross_sequence seq '${seq}' needs_seq "
                      "'${needs}' operation '${operation}'; expected cross-sequence, 0 needs 1, resident "
                      "(report ${WORK}/out/p5.report.json)")
endif()
string(REGEX MATCH "cause: cross-sequence: [^\n]*" line "${out}")
if(NOT line MATCHES "needs sequence 1's 8 tokens in the shared cache")
  message(FATAL_ERROR "the report's text does not name sequence 1 (log ${WORK}/replay.log)")
endif()
message(STATUS "p5 on llama.cpp: ${line}")
