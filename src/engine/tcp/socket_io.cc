#include "engine/tcp/socket_io.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake::engine::tcp {
namespace {

absl::Status IoError(const char* what, int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) {
    return MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("{} timed out", what));
  }
  return MakeError(ErrorCode::TRANSFER_FAIL,
                   fmt::format("{} failed: {}", what, std::strerror(err)));
}

// Drops the first `done` bytes from an iovec array, in place.
void Advance(struct iovec** iov, int* iovcnt, size_t done) {
  while (*iovcnt > 0 && done >= (*iov)->iov_len) {
    done -= (*iov)->iov_len;
    ++*iov;
    --*iovcnt;
  }
  if (*iovcnt > 0) {
    (*iov)->iov_base = static_cast<char*>((*iov)->iov_base) + done;
    (*iov)->iov_len -= done;
  }
}

}  // namespace

absl::Status SplitHostPort(const std::string& endpoint, std::string* host, int* port) {
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("expected host:port, got '{}'", endpoint));
  }
  std::string h = endpoint.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  char* end = nullptr;
  const long p = std::strtol(endpoint.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p <= 0 || p > 65535) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("bad port in '{}'", endpoint));
  }
  *host = h;
  *port = static_cast<int>(p);
  return absl::OkStatus();
}

absl::StatusOr<int> ConnectTo(const std::string& host, int port, absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("cannot resolve {}: {}", host, gai_strerror(rc)));
  }
  absl::Status last = MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("no address for {}", host));
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      rc = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
      int err = rc > 0 ? 0 : ETIMEDOUT;
      socklen_t len = sizeof(err);
      if (rc > 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last = MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("cannot connect to {}:{}: {}", host,
                                                             port, std::strerror(errno)));
      close(fd);
      continue;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    freeaddrinfo(found);
    return fd;
  }
  freeaddrinfo(found);
  return last;
}

void SetIoTimeout(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

absl::Status SendAll(int fd, struct iovec* iov, int iovcnt) {
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("send", errno);
    }
    Advance(&iov, &iovcnt, static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SendAll(int fd, const void* data, size_t length) {
  iovec iov{const_cast<void*>(data), length};
  return SendAll(fd, &iov, 1);
}

absl::Status RecvAll(int fd, void* data, size_t length) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < length) {
    ssize_t n = recv(fd, p + done, length - done, 0);
    if (n == 0) {
      return MakeError(
          ErrorCode::TRANSFER_FAIL,
          done == 0 ? "peer closed the connection"
                    : fmt::format("peer closed the connection after {} of {} bytes", done, length));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("receive", errno);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> RecvVector(int fd, struct iovec* iov, int iovcnt, size_t min_bytes,
                                  absl::Duration spin) {
  size_t total = 0;
  const absl::Time spin_until =
      spin > absl::ZeroDuration() ? absl::Now() + spin : absl::InfinitePast();
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    // While spinning, poll without sleeping: the answer to a small request usually comes sooner
    // than a sleeping thread could be woken.
    const bool spinning = spin_until > absl::InfinitePast() && absl::Now() < spin_until;
    ssize_t n = recvmsg(fd, &msg, spinning ? MSG_DONTWAIT : 0);
    if (n < 0 && spinning && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n == 0) {
      if (total >= min_bytes) return total;
      return MakeError(ErrorCode::TRANSFER_FAIL,
                       total == 0
                           ? std::string("peer closed the connection")
                           : fmt::format("peer closed the connection after {} bytes", total));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("receive", errno);
    }
    total += static_cast<size_t>(n);
    Advance(&iov, &iovcnt, static_cast<size_t>(n));
  }
  return total;
}

}  // namespace mooncake::engine::tcp
