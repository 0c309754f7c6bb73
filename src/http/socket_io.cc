#include "http/socket_io.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>

#include "absl/time/clock.h"

namespace mooncake::http {

bool WaitFor(int fd, short events, absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    // Rounded up, so that a wait never ends just before its deadline; an infinite one in slices.
    const int64_t ms = std::min<int64_t>(absl::ToInt64Milliseconds(left), INT_MAX - 1) + 1;
    pollfd pfd{fd, events, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(ms));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

bool SendWhole(int fd, std::string_view bytes, absl::Time deadline, absl::Duration stall) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, std::min(deadline, absl::Now() + stall))) return false;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace mooncake::http
