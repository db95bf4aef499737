# The same bytes from two runs: this build's bytes_fingerprint and a reference one (built by
# the other compiler, or this one with other arguments) must print the same fingerprint line.
# Each run also checks cached == uncached within itself (exit status 0).
# Run as: cmake -DTHIS=... -DREFERENCE=... [-DTHIS_ARGS=...] [-DREFERENCE_ARGS=...]
#               [-DWHAT="the two compilers' builds"] -P fingerprint_compare.cmake
# (*_ARGS are ;-separated argument lists.)
if(NOT DEFINED WHAT)
  set(WHAT "the two compilers' builds")
endif()
foreach(which THIS REFERENCE)
  if(NOT EXISTS "${${which}}")
    message(FATAL_ERROR "fingerprint: ${which} program ${${which}} does not exist (build it first)")
  endif()
  execute_process(COMMAND ${${which}} ${${which}_ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out_${which}
                  ERROR_VARIABLE err_${which})
  string(STRIP "${out_${which}}" out_${which})
  string(STRIP "${err_${which}}" err_${which})
  string(REPLACE ";" " " args "${${which}_ARGS}")
  message(STATUS "${which}: ${${which}} ${args}\n   ${out_${which}}\n   ${err_${which}}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fingerprint: ${${which}} ${args} failed or says cached and uncached differ (exit ${rc})")
  endif()
endforeach()
if(NOT out_THIS STREQUAL out_REFERENCE)
  message(FATAL_ERROR "fingerprint: ${WHAT} compute different bytes")
endif()
message(STATUS "fingerprint: ${WHAT} compute the same bytes")
