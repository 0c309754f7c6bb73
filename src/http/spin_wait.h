// Waiting for a socket's next bytes, or for another thread's progress, by polling without sleeping,
// for a bounded time.
//
// A control-plane round trip is short, and on a virtual machine waking a thread blocked in
// poll(2) or recv(2) costs about 20 us, as much as the master's work on a batch of keys. A thread
// that expects bytes soon (a client waiting for its answer, a server worker waiting for the next
// request of a busy connection) polls for them first, and only then sleeps.
//
// Spinning burns a CPU, so of each role (clients waiting for answers, servers waiting for requests,
// threads waiting for another thread of their process, long-polls waiting for work) at most one
// thread fewer than the CPUs this process may run on spins at a time (none on a single CPU); the
// others sleep at once. The roles take turns on one connection, so a process that is both (an
// embedded cluster) keeps both sides spinning. A spinning thread yields the CPU between polls: a
// socket's wakeup mostly puts the woken thread on the waker's CPU, so the peer a spinner waits for
// often runs on the spinner's own CPU (a put's whole chain, client, master and store, was seen on
// one CPU of two), and a spin that kept the CPU held back the very answer it waited for. Where
// nothing else is runnable the yield returns at once.
//
// Thread safety: thread-safe.
#pragma once

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace mooncake::http {

// kWaiter: a thread waiting for another thread of its own process that is about to answer (the
// master's put waiting for an owner's acknowledgement). kLongPoll: one waiting for work that may
// come soon or not at all (the master answering an owner's fetch of changes). They are two roles
// so that an idle long-poll never takes the slot of a put's wait: a put that found it taken
// would sleep, and its wakeup costs more than the master's whole part of the put.
enum class SpinRole { kClient, kServer, kWaiter, kLongPoll };

// Polls `fd` for input (or a hang-up) for up to `budget`. True once it is readable; false when
// the budget ran out, `budget` is not positive, or no spinning slot of `role` was free.
bool SpinUntilReadable(int fd, absl::Duration budget, SpinRole role);

// Calls `done` until it returns true, for up to `budget`, as SpinUntilReadable polls. False when
// the budget ran out, `budget` is not positive, or no spinning slot of `role` was free.
bool SpinUntil(absl::FunctionRef<bool()> done, absl::Duration budget, SpinRole role);

// How many threads of one role may spin at once (CPUs available to this process, minus one).
int SpinSlots();

// How many threads of `role` spin now (for tests).
int SpinningNow(SpinRole role);

}  // namespace mooncake::http
