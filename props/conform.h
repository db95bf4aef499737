// props --conform --engine-cmd CMD: a short scripted exchange with an engine over
// docs/protocol.md that says, op by op, what works, what is missing and what is wrong, before
// any property runs on it (docs/protocol.md, "Checking your engine's conformance").
#pragma once
#include "props/cli.h"

namespace miniinfer::props {

// Refuses flags the check does not use (Error), then runs it: the exit status (base/exit_status.h):
// kExitOk conformant, kExitNotConformant an engine that answered but is not conformant,
// kExitEngineBroke one that broke the transport: it exited, hung, or wrote a line that is not a
// JSON object or answers another request.
int check_conformance(const CommandLine& cl);

}  // namespace miniinfer::props
