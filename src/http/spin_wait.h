// Waiting for a socket's next bytes by polling it without sleeping, for a bounded time.
//
// A control-plane round trip is short, and on a virtual machine waking a thread blocked in
// poll(2) or recv(2) costs about 20 us, as much as the master's work on a batch of keys. A thread
// that expects bytes soon (a client waiting for its answer, a server worker waiting for the next
// request of a busy connection) polls for them first, and only then sleeps.
//
// Spinning burns a CPU, so of each role (clients waiting for answers, servers waiting for requests)
// at most one thread fewer than the CPUs this process may run on spins at a time (none on a single
// CPU); the others sleep at once. The roles take turns on one connection, so a process that is
// both (an embedded cluster) keeps both sides spinning. For its first kSpinBeforeYield a spinning
// thread does not yield: the answers it waits for mostly come that soon, and on a busy machine a
// yield may hand the CPU away for a whole time slice. Past that it yields between polls, so that a
// longer spin (the master's workers wait up to --rpc_spin_us for a client's next call) takes no
// CPU from threads that have work, such as the very clients it waits for, and goes on where the
// CPU is idle.
//
// Thread safety: thread-safe.
#pragma once

#include "absl/time/time.h"

namespace mooncake::http {

enum class SpinRole { kClient, kServer };

// How long a spin polls without yielding the CPU.
inline constexpr absl::Duration kSpinBeforeYield = absl::Microseconds(50);

// Polls `fd` for input (or a hang-up) for up to `budget`. True once it is readable; false when
// the budget ran out, `budget` is not positive, or no spinning slot of `role` was free.
bool SpinUntilReadable(int fd, absl::Duration budget, SpinRole role);

// How many threads of one role may spin at once (CPUs available to this process, minus one).
int SpinSlots();

// How many threads of `role` spin now (for tests).
int SpinningNow(SpinRole role);

}  // namespace mooncake::http
