// Blocking socket I/O with deadlines, for the data path.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mooncake::engine::tcp {

// A connected TCP socket to host:port with TCP_NODELAY, or TRANSFER_FAIL naming the address.
absl::StatusOr<int> ConnectTo(const std::string& host, int port, absl::Duration timeout);

// Sets how long one send or receive may block before it fails (SO_SNDTIMEO / SO_RCVTIMEO).
void SetIoTimeout(int fd, absl::Duration timeout);

// Writes every byte of `iov` (modified in place). TRANSFER_FAIL on error, timeout or closed peer.
absl::Status SendAll(int fd, struct iovec* iov, int iovcnt);
absl::Status SendAll(int fd, const void* data, size_t length);

// Reads exactly `length` bytes. TRANSFER_FAIL on error, timeout or closed peer; "closed" is in
// the message when the peer closed before the first byte.
absl::Status RecvAll(int fd, void* data, size_t length);

// Fills every byte of `iov` (modified in place), or stops early when the peer closes after at least
// `min_bytes`: returns how many bytes arrived. TRANSFER_FAIL on error, timeout, or a close before
// `min_bytes`. For the first `spin` it polls without sleeping (for answers expected within
// microseconds), then blocks.
absl::StatusOr<size_t> RecvVector(int fd, struct iovec* iov, int iovcnt, size_t min_bytes,
                                  absl::Duration spin = absl::ZeroDuration());

// Splits "host:port" (host may be [v6]). INVALID_PARAMS if malformed.
absl::Status SplitHostPort(const std::string& endpoint, std::string* host, int* port);

}  // namespace mooncake::engine::tcp
