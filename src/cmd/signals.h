// Clean shutdown on SIGTERM and SIGINT.
#pragma once

namespace mooncake::cmd {

// Blocks SIGTERM and SIGINT in the calling thread and in every thread it starts afterwards. Call it
// first thing, before any thread exists, so that WaitForTerminationSignal() receives them.
void BlockTerminationSignals();

// Waits until SIGTERM or SIGINT arrives and returns its number.
int WaitForTerminationSignal();

}  // namespace mooncake::cmd
