// Clean shutdown on SIGTERM and SIGINT.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mooncake::cmd {

// Blocks SIGTERM and SIGINT in the calling thread and in every thread it starts afterwards. Call it
// first thing, before any thread exists, so that WaitForTerminationSignal() receives them.
void BlockTerminationSignals();

// Waits until SIGTERM or SIGINT arrives and returns its number.
int WaitForTerminationSignal();

// Waits at most `timeout` for SIGTERM or SIGINT: its number, or 0 if none came.
int WaitForTerminationSignalFor(absl::Duration timeout);

// The life of a service process: starts it (`start` returns the line to print on stdout once it
// serves, which scripts and tests wait for), waits for SIGTERM/SIGINT, stops it. Returns the exit
// code: 0 after a clean stop, 1 when it could not start (the error is printed as "mooncake NAME:
// message"). REQUIRES: BlockTerminationSignals() was called before any thread started.
int ServeUntilSignal(const char* name, const std::function<absl::StatusOr<std::string>()>& start,
                     const std::function<void()>& stop);

}  // namespace mooncake::cmd
