// props' run modes, one function each: list the faults, get a run ready (outputs, RapidCheck's
// parameters, the context), check the properties under Catch2, and the run's summary.
// Replaying a case is replay_case (props/context.h); a sliced run is start_sliced_run
// (props/shard.h) ahead of the check.
#pragma once
#include "base/exit_status.h"
#include "props/cli.h"

namespace miniinfer::props {

// --inject list: every fault, one line each. Exit status kExitOk.
int list_faults();
// Refuses flags a replay would ignore, bad RapidCheck parameters (RC_PARAMS and --rc-*) and
// unwritable outputs, sets RC_PARAMS and loads the context. Throws Error with one line naming
// what was refused.
void prepare_run(const CommandLine& cl);
// The properties under Catch2 (its filters and flags from the command line): the exit status.
int check_properties(const CommandLine& cl);

}  // namespace miniinfer::props
