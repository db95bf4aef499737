# p17 (speculation with random drafts) holds on our engine and has teeth: with rollback-cursor (a
# rollback that leaves the cursor where verify left it) it fails, shrinks to one round on a
# one-token prompt, and its report names the cursor (gross); the saved case replays to the same
# report and passes with --inject none. With verify-position-shift (the verify call's rows rotated one
# position on) the first accepted row parts and the traced verify names layer 0's q.
# With -DMINIGPT it holds on a process engine too (verify and rollback over the protocol).
# Its reports' lines agree with each other and their JSON (props_report_check, -DCHECK).
# Run as: cmake -DPROPS=... -DWORK=... [-DMINIGPT=...] [-DCHECK=...] -P speculation.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(failures "")

# Runs props with the given arguments; `rc_var` and `out_var` get its status and output.
function(run_props rc_var out_var)
  execute_process(COMMAND ${PROPS} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(${rc_var} ${rc} PARENT_SCOPE)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

run_props(rc out --rc-seed=1 "[p17]" --report-dir ${WORK}/clean)
if(NOT rc EQUAL 0 OR NOT out MATCHES "ok    p17 ")
  list(APPEND failures "p17 on the clean engine exited ${rc}:\n${out}")
endif()

run_props(rc out --rc-seed=1 --inject rollback-cursor "[p17]" --report-dir ${WORK}/stale)
file(WRITE ${WORK}/stale.log "${out}")
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "p17 --inject rollback-cursor exited ${rc}, expected 1; log ${WORK}/stale.log")
endif()
file(READ ${WORK}/stale/p17.report.json report)
file(READ ${WORK}/stale/p17.case.json case)
string(JSON component GET "${report}" first_parting component)
string(JSON verdict GET "${report}" verdict)
string(JSON rounds LENGTH "${case}" drafts)
string(JSON tokens LENGTH "${case}" prompts 0 ids)
if(NOT component STREQUAL "cursor" OR NOT verdict STREQUAL "gross")
  list(APPEND failures "rollback-cursor's p17 report names ${component} (${verdict}); expected the cursor, gross")
endif()
if(NOT rounds EQUAL 1 OR NOT tokens EQUAL 1)
  list(APPEND failures "rollback-cursor's p17 case shrank to ${rounds} rounds on ${tokens} tokens; expected 1 round on 1 token")
endif()
run_props(rc out --replay ${WORK}/stale/p17.case.json --report-dir ${WORK}/replay)
file(READ ${WORK}/replay/p17.report.json replayed)
if(NOT rc EQUAL 1 OR NOT replayed STREQUAL report)
  list(APPEND failures "the replay exited ${rc} and its report differs from the first (or it passed):\n${out}")
endif()
run_props(rc out --replay ${WORK}/stale/p17.case.json --inject none --report-dir ${WORK}/none)
if(NOT rc EQUAL 0)
  list(APPEND failures "the case fails without its fault:\n${out}")
endif()

run_props(rc out --rc-seed=1 --inject verify-position-shift "[p17]" --report-dir ${WORK}/offset)
if(NOT rc EQUAL 1)
  list(APPEND failures "p17 --inject verify-position-shift exited ${rc}, expected 1:\n${out}")
else()
  file(READ ${WORK}/offset/p17.report.json offset)
  string(JSON layer GET "${offset}" first_parting layer)
  string(JSON component GET "${offset}" first_parting component)
  if(NOT layer EQUAL 0 OR NOT component MATCHES "^(q|k|cache)$")
    list(APPEND failures "verify-position-shift's p17 report names layer ${layer} ${component}; expected layer 0 q, k or the cache row")
  endif()
endif()

if(CHECK)
  foreach(_dir stale offset)
    execute_process(COMMAND ${CHECK} ${WORK}/${_dir} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0)
      list(APPEND failures "props_report_check on the ${_dir} p17 report: exit ${rc}:\n${out}")
    endif()
  endforeach()
endif()

if(MINIGPT)
  run_props(rc out --rc-seed=1 --engine process --engine-cmd "${MINIGPT} serve" "[p17]")
  if(NOT rc EQUAL 0 OR NOT out MATCHES "ok    p17 ")
    list(APPEND failures "p17 on the process engine exited ${rc}:\n${out}")
  endif()
endif()

if(failures)
  string(REPLACE ";" "\n" failures "${failures}")
  message(FATAL_ERROR "${failures}")
endif()
message(STATUS "p17: holds on the clean engine; rollback-cursor caught at the cursor, shrunk to one round on one token, replayed; verify-position-shift located at layer 0")
