// Waiting on a socket and sending a whole message on it, against a deadline: what the HTTP
// client's connections and the server's own answers (simple_request.h) both do.
//
// Thread safety: thread-safe (each call uses only its socket).
#pragma once

#include <string_view>

#include "absl/time/time.h"

namespace mooncake::http {

// Waits until `fd` is ready for `events` (poll(2)'s) or `deadline` passes. False at the deadline
// or on an error.
bool WaitFor(int fd, short events, absl::Time deadline);

// Sends all of `bytes` on `fd`, waiting for room whenever the socket's buffer is full, until
// `deadline`, and at most `stall` without progress. False if the socket failed or a limit passed
// (some of the bytes may have gone). Never raises SIGPIPE.
bool SendWhole(int fd, std::string_view bytes, absl::Time deadline,
               absl::Duration stall = absl::InfiniteDuration());

}  // namespace mooncake::http
