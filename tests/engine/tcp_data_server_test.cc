// The data server's bounds, against a server in this process: idle connections are closed after
// the idle timeout, connections past the cap are refused with an answer, the worker pool stays
// within its limit however many connections are busy, and a peer's HELLO for another incarnation
// is refused.
#include "engine/tcp/tcp_data_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "common/error_code.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_protocol.h"
#include "engine/tcp/tcp_transport.h"
#include "support/raw_socket.h"

namespace mooncake::engine::tcp {
namespace {

class TcpDataServerTest : public ::testing::Test {
 protected:
  void Start(TcpDataServerOptions options) {
    options.incarnation = 42;
    memory_.assign(1 << 20, 'm');
    ASSERT_TRUE(
        registry_.Register(reinterpret_cast<uint64_t>(memory_.data()), memory_.size(), "").ok());
    server_ = std::make_unique<TcpDataServer>(
        &registry_, [] { return std::string("{}"); }, options);
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
  }
  std::string Endpoint() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  BufferRegistry registry_;
  std::vector<char> memory_;
  std::unique_ptr<TcpDataServer> server_;
};

TEST_F(TcpDataServerTest, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  Start(TcpDataServerOptions{.idle_timeout = absl::Milliseconds(300)});
  absl::StatusOr<DataConnection> session = OpenDataConnection(Endpoint(), 42, {});
  ASSERT_TRUE(session.ok()) << session.status();
  test::RawSocket silent(server_->port());
  ASSERT_TRUE(silent.connected());
  EXPECT_TRUE(silent.WaitForClose(absl::Seconds(10)));
  // The session's end is seen as end-of-stream.
  char byte;
  SetIoTimeout(session->fd, absl::Seconds(10));
  EXPECT_EQ(recv(session->fd, &byte, 1, 0), 0);
  close(session->fd);
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(TcpDataServerTest, ConnectionsPastTheCapAreRefusedWithAnAnswer) {
  Start(TcpDataServerOptions{.max_connections = 4});
  std::vector<DataConnection> open;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<DataConnection> session = OpenDataConnection(Endpoint(), 0, {});
    ASSERT_TRUE(session.ok()) << session.status();
    open.push_back(*session);
  }
  absl::StatusOr<DataConnection> fifth = OpenDataConnection(Endpoint(), 0, {});
  ASSERT_FALSE(fifth.ok());
  EXPECT_EQ(ErrorCodeOf(fifth.status()), ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS)
      << fifth.status();
  EXPECT_NE(fifth.status().message().find("maximum"), std::string_view::npos);
  close(open.back().fd);
  open.pop_back();
  // Once one closes, there is room again.
  absl::StatusOr<DataConnection> again = MakeError(ErrorCode::TRANSFER_FAIL, "not tried");
  for (int attempt = 0; attempt < 100 && !again.ok(); ++attempt) {
    again = OpenDataConnection(Endpoint(), 0, {});
    if (!again.ok()) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(again.ok()) << again.status();
  open.push_back(*again);
  for (const DataConnection& c : open) close(c.fd);
}

TEST_F(TcpDataServerTest, BusyConnectionsShareABoundedPool) {
  Start(TcpDataServerOptions{.max_workers = 4});
  // 64 connections, each reading 1 MiB at once: all are served, by at most 4 workers.
  std::vector<DataConnection> sessions;
  for (int i = 0; i < 64; ++i) {
    absl::StatusOr<DataConnection> session = OpenDataConnection(Endpoint(), 42, {});
    ASSERT_TRUE(session.ok()) << session.status();
    sessions.push_back(*session);
  }
  const uint64_t address = reinterpret_cast<uint64_t>(memory_.data());
  for (const DataConnection& s : sessions) {
    const auto read = EncodeRequest({Opcode::kRead, 7, address, memory_.size()});
    ASSERT_TRUE(SendAll(s.fd, read.data(), read.size()).ok());
  }
  std::vector<char> into(memory_.size());
  for (const DataConnection& s : sessions) {
    uint8_t header[kResponseHeaderSize];
    ASSERT_TRUE(RecvAll(s.fd, header, sizeof(header)).ok());
    auto response = DecodeResponse(header);
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->status, 0);
    ASSERT_TRUE(RecvAll(s.fd, into.data(), into.size()).ok());
    EXPECT_EQ(into, memory_);
    close(s.fd);
  }
  EXPECT_LE(server_->workers(), 4u);
}

TEST_F(TcpDataServerTest, AHelloForAnotherIncarnationIsRefused) {
  Start({});
  absl::StatusOr<DataConnection> wrong = OpenDataConnection(Endpoint(), 41, {});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(ErrorCodeOf(wrong.status()), ErrorCode::INVALID_VERSION) << wrong.status();
  absl::StatusOr<DataConnection> right = OpenDataConnection(Endpoint(), 42, {});
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_EQ(right->incarnation, 42u);
  close(right->fd);
}

}  // namespace
}  // namespace mooncake::engine::tcp
