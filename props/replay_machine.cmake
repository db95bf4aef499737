# A replay says, in one line before it compares, when the case was recorded on another machine or
# build (issue 28), and still compares: a saved case edited to another CPU model and another ggml
# variant names both fields and fails again as saved; the same case with no "machine" key says
# "recorded on an unknown machine"; the case the replay wrote back (this machine) says nothing.
# Run as: cmake -DPROPS=... -DCASE=... -DWORK=... -P replay_machine.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(READ ${CASE} saved)
string(JSON property GET "${saved}" property)
set(failures "")

# Replays FILE into WORK/OUT; sets `log` and `rc` in the caller.
function(replay file out)
  execute_process(COMMAND ${PROPS} --replay ${file} --report-dir ${WORK}/${out} RESULT_VARIABLE status
                  OUTPUT_VARIABLE text ERROR_VARIABLE text)
  file(WRITE ${WORK}/${out}.log "${text}")
  set(log "${text}" PARENT_SCOPE)
  set(rc ${status} PARENT_SCOPE)
endfunction()

string(JSON unknown REMOVE "${saved}" machine)
file(WRITE ${WORK}/unknown.case.json "${unknown}")
replay(${WORK}/unknown.case.json unknown)
if(NOT rc EQUAL 1 OR NOT log MATCHES "recorded on an unknown machine")
  list(APPEND failures "a case without \"machine\": exit ${rc}, not 1 with \"recorded on an unknown machine\" (log ${WORK}/unknown.log)")
endif()

# What this machine wrote back: replaying it here prints no machine line.
replay(${WORK}/unknown/${property}.case.json here)
if(NOT rc EQUAL 1 OR log MATCHES "recorded on")
  list(APPEND failures "a case recorded on this machine: exit ${rc}, or a machine line (log ${WORK}/here.log)")
endif()

file(READ ${WORK}/unknown/${property}.case.json here)
string(JSON other SET "${here}" machine cpu "\"Some Other CPU 9000\"")
string(JSON other SET "${other}" machine ggml_cpu_variant "\"libggml-cpu-haswell.so\"")
file(WRITE ${WORK}/other.case.json "${other}")
replay(${WORK}/other.case.json other)
string(REGEX MATCH "[^\n]*recorded on another machine[^\n]*" line "${log}")
if(NOT rc EQUAL 1)
  list(APPEND failures "a case edited to another CPU: exit ${rc}, not 1 (the comparison must still run; log ${WORK}/other.log)")
endif()
if(NOT line MATCHES "cpu: Some Other CPU 9000 when recorded, .* here"
   OR NOT line MATCHES "ggml_cpu_variant: libggml-cpu-haswell.so when recorded, \\(none\\) here")
  list(APPEND failures "a case edited to another CPU: no line naming cpu and ggml_cpu_variant (log ${WORK}/other.log)")
endif()
# Before it compares: the line comes before the case's own summary line and its verdict.
string(FIND "${log}" "recorded on another machine" at_line)
string(FIND "${log}" "FAIL " at_fail)
if(at_line LESS 0 OR at_fail LESS 0 OR at_line GREATER at_fail)
  list(APPEND failures "the machine line does not come before the comparison (log ${WORK}/other.log)")
endif()
if(failures)
  string(REPLACE ";" "\n  " failures "${failures}")
  message(FATAL_ERROR "replay and the machine:\n  ${failures}")
endif()
message(STATUS "replay names another machine's fields before it compares: ${line}")
