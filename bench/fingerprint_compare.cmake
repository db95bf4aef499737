# The same bytes from two compilers: runs this build's bytes_fingerprint and the reference one
# (built by the other compiler) and requires the same fingerprint line. Each program also
# checks cached == uncached within its own build (exit status 0).
# Run as: cmake -DTHIS=... -DREFERENCE=... -P fingerprint_compare.cmake
foreach(which THIS REFERENCE)
  if(NOT EXISTS "${${which}}")
    message(FATAL_ERROR "fingerprint: ${which} program ${${which}} does not exist (build it first)")
  endif()
  execute_process(COMMAND ${${which}} RESULT_VARIABLE rc OUTPUT_VARIABLE out_${which} ERROR_VARIABLE err)
  string(STRIP "${out_${which}}" out_${which})
  message(STATUS "${which}: ${${which}}\n   ${out_${which}}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fingerprint: ${${which}} says cached and uncached differ (exit ${rc}) ${err}")
  endif()
endforeach()
if(NOT out_THIS STREQUAL out_REFERENCE)
  message(FATAL_ERROR "fingerprint: the two compilers' builds compute different bytes")
endif()
message(STATUS "fingerprint: both compilers' builds compute the same bytes")
