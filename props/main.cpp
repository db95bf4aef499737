// props: the property checker. A Catch2 custom main: our flags (props/cli.h) are taken out,
// RC_PARAMS is set from them before RapidCheck reads it, and everything else goes to Catch2
// (test filters, reporters). The run modes are in props/modes.h.
#include <cstdio>
#include <string>

#include "base/error.h"
#include "base/exit_status.h"
#include "props/cases.h"
#include "props/conform.h"
#include "props/context.h"
#include "props/modes.h"
#include "props/results.h"
#include "props/shard.h"

int main(int argc, char** argv) {
  using namespace miniinfer;
  using namespace miniinfer::props;
  CommandLine cl;
  try {
    cl = parse_command_line(argc, argv);
    if (cl.help) {
      std::printf("%s", help_text().c_str());
      return kExitOk;
    }
    if (cl.rc_params.find("reproduce=") != std::string::npos && !cl.reproducing)
      std::fprintf(stderr, "props: warning: RC_PARAMS holds reproduce=: only the property it names runs; the others "
                           "are skipped, not passed\n");
    if (cl.config.inject == "list") return list_faults();
    if (cl.conform) return check_conformance(cl);
    prepare_run(cl);
    if (!cl.replay.empty()) return replay_case(cl.replay);
    if (!cl.shard.empty() || !cl.results.empty())
      start_sliced_run(cl.shard.empty() ? ShardSpec{} : parse_shard(cl.shard), cl.results);
  } catch (const OutputError& e) {  // the results file's header could not be written
    std::fprintf(stderr, "props: %s\n", e.what());
    return kExitOutputLost;
  } catch (const miniinfer::Error& e) {
    std::fprintf(stderr, "props: %s\n", e.what());
    return kExitRefused;
  }
  return check_properties(cl);
}
