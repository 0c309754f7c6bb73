// A plain TCP client socket for sending malformed, partial or hand-made HTTP to a server under
// test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mooncake::test {

// A free port of 127.0.0.1 for a service a test starts later, or starts again at the same
// address: outside the range engines take free ports from (12300-14300, where tests running at
// the same time take theirs) and below the kernel's ephemeral ports. 0 if none was free.
int PortOutsideEngineRange();

// A socket listening on an ephemeral port of 127.0.0.1 (its port in `*port`), or -1.
int ListenOnLoopback(int* port);

// Two connected Unix stream sockets (socketpair(2)), closed when it goes.
class SocketPair {
 public:
  SocketPair();
  ~SocketPair();
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;

  int first() const { return fds_[0]; }
  int second() const { return fds_[1]; }
  void CloseSecond();

 private:
  int fds_[2] = {-1, -1};
};

class RawSocket {
 public:
  // Connects to 127.0.0.1:port; connected() tells whether it worked.
  explicit RawSocket(int port);
  ~RawSocket();

  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool Send(std::string_view data);

  // Reads until the peer closes or `timeout` passes; returns what arrived.
  std::string ReadUntilClose(absl::Duration timeout);

  // Reads until at least `bytes` arrived, the peer closes or `timeout` passes; returns what
  // arrived.
  std::string ReadAtLeast(size_t bytes, absl::Duration timeout);

  // Reads one HTTP response whose head ends with a blank line and whose body has Content-Length.
  std::string ReadResponse(absl::Duration timeout);

  // True if the peer closed the connection (or reset it) within `timeout`.
  bool WaitForClose(absl::Duration timeout);

 private:
  int fd_ = -1;
  std::string pending_;
};

// How many segments carrying data socket `fd` has received (TCP_INFO), or -1: a message the peer
// sent in one piece arrived as one segment (on loopback, up to 64 KiB).
int64_t DataSegmentsIn(int fd);

// The status code of an HTTP response ("HTTP/1.1 404 ..." -> 404), or -1.
int StatusOf(std::string_view response);

}  // namespace mooncake::test
