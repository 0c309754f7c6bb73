// SendWhole and WaitFor on a connected pair of sockets: a message far larger than the sockets'
// buffers goes whole to a reader that takes it in pieces; a peer that never reads, or has gone,
// makes the send fail within its limits instead of hanging.
#include "http/socket_io.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "support/raw_socket.h"

namespace mooncake::http {
namespace {

// A connected pair whose first socket sends into the second's small receive buffer.
class SocketPair : public test::SocketPair {
 public:
  SocketPair() {
    EXPECT_GE(first(), 0);
    const int small = 4096;  // the kernel's minimum: a few pages fill it
    ::setsockopt(first(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    ::setsockopt(second(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  }
  int sender() const { return first(); }
  int receiver() const { return second(); }
};

std::string Message(size_t n) {
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>('a' + i % 26);
  return bytes;
}

TEST(SocketIoTest, SendsAMessageLargerThanTheBuffersWhole) {
  SocketPair pair;
  const std::string message = Message(8 << 20);
  std::string received;
  std::thread reader([&] {
    char buffer[1000];  // small reads: the sender waits for room many times
    while (received.size() < message.size()) {
      const ssize_t n = ::recv(pair.receiver(), buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<size_t>(n));
    }
  });
  EXPECT_TRUE(SendWhole(pair.sender(), message, absl::Now() + absl::Seconds(60),
                        /*stall=*/absl::Seconds(30)));
  reader.join();
  EXPECT_EQ(received.size(), message.size());
  EXPECT_TRUE(received == message);
}

TEST(SocketIoTest, APeerThatNeverReadsFailsTheSendAtTheStallLimitOrTheDeadline) {
  SocketPair pair;
  const std::string message = Message(8 << 20);
  EXPECT_FALSE(SendWhole(pair.sender(), message, absl::InfiniteFuture(),
                         /*stall=*/absl::Milliseconds(100)));
  EXPECT_FALSE(SendWhole(pair.sender(), message, absl::Now() + absl::Milliseconds(100)));
}

TEST(SocketIoTest, APeerThatHasGoneFailsTheSendWithoutASignal) {
  SocketPair pair;
  pair.CloseSecond();
  // A SIGPIPE would end the test binary.
  EXPECT_FALSE(SendWhole(pair.sender(), "hello", absl::Now() + absl::Seconds(5)));
}

TEST(SocketIoTest, WaitForSeesReadinessAndEndsAtItsDeadline) {
  SocketPair pair;
  EXPECT_TRUE(WaitFor(pair.sender(), POLLOUT, absl::Now() + absl::Seconds(5)));
  EXPECT_FALSE(WaitFor(pair.receiver(), POLLIN, absl::Now() + absl::Milliseconds(20)));
  EXPECT_FALSE(WaitFor(pair.receiver(), POLLIN, absl::InfinitePast()));
  ASSERT_EQ(::send(pair.sender(), "x", 1, MSG_NOSIGNAL), 1);
  EXPECT_TRUE(WaitFor(pair.receiver(), POLLIN, absl::InfiniteFuture()));
}

}  // namespace
}  // namespace mooncake::http
