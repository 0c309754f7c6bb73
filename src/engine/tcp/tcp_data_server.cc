#include "engine/tcp/tcp_data_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_protocol.h"

namespace mooncake::engine::tcp {
namespace {

// Sends an error response carrying `status`'s code and message.
void SendError(int fd, uint64_t request_id, const absl::Status& status) {
  const std::string message(status.message());
  const auto header = EncodeResponse(
      ResponseHeader{static_cast<int32_t>(ErrorCodeOf(status)), request_id, message.size()});
  iovec iov[2] = {{const_cast<uint8_t*>(header.data()), header.size()},
                  {const_cast<char*>(message.data()), message.size()}};
  SendAll(fd, iov, 2).IgnoreError();
}

absl::StatusOr<int> Listen(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty() || host == "0.0.0.0") {
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("data server address '{}' is not an IPv4 address", host));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 512) != 0) {
    const int err = errno;
    close(fd);
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("cannot listen on {}:{}: {}", host, port, std::strerror(err)));
  }
  return fd;
}

}  // namespace

TcpDataServer::TcpDataServer(const BufferRegistry* registry, std::function<std::string()> describe,
                             absl::Duration io_timeout, HandshakeHandler handshake)
    : registry_(registry),
      describe_(std::move(describe)),
      handshake_(std::move(handshake)),
      io_timeout_(io_timeout) {}

TcpDataServer::~TcpDataServer() { Stop(); }

absl::Status TcpDataServer::Start(const std::string& host, int port, int first_port,
                                  int last_port) {
  absl::StatusOr<int> fd = MakeError(ErrorCode::TRANSFER_FAIL, "no port tried");
  if (port != 0 || first_port == 0) {
    fd = Listen(host, port);
  } else {
    for (int p = first_port; p <= last_port; ++p) {
      fd = Listen(host, p);
      if (fd.ok()) break;
    }
    if (!fd.ok()) {
      return MakeError(ErrorCode::TRANSFER_FAIL,
                       fmt::format("no free port in {}-{} on {}", first_port, last_port, host));
    }
  }
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void TcpDataServer::Stop() {
  if (!acceptor_.joinable()) return;
  stopping_.store(true);
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  close(listen_fd_);
  absl::flat_hash_map<int, std::thread> connections;
  {
    absl::MutexLock lock(&mu_);
    // Finished connections have closed their descriptors, whose numbers may be in use again.
    absl::flat_hash_set<int> closed(finished_.begin(), finished_.end());
    for (auto& [fd, thread] : connections_) {
      if (!closed.contains(fd)) shutdown(fd, SHUT_RDWR);
    }
    connections.swap(connections_);
  }
  for (auto& [fd, thread] : connections) thread.join();
}

void TcpDataServer::AcceptLoop() {
  while (!stopping_.load()) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping_.load()) return;
      if (errno == EMFILE || errno == ENFILE) {
        poll(nullptr, 0, 10);  // out of descriptors: let some connections close first
        continue;
      }
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    absl::MutexLock lock(&mu_);
    for (int done : finished_) {
      auto it = connections_.find(done);
      if (it != connections_.end()) {
        it->second.join();
        connections_.erase(it);
      }
    }
    finished_.clear();
    if (stopping_.load()) {
      close(fd);
      return;
    }
    connections_.emplace(fd, std::thread([this, fd] { Serve(fd); }));
  }
}

void TcpDataServer::Serve(int fd) {
  SetIoTimeout(fd, io_timeout_);
  while (!stopping_.load()) {
    // Idle connections wait without a deadline; a request, once begun, must arrive in time.
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, -1) <= 0) break;
    if (!ServeOne(fd)) break;
  }
  absl::MutexLock lock(&mu_);
  // Closed only after unregistering, so the descriptor number cannot be reused under us.
  shutdown(fd, SHUT_RDWR);
  close(fd);
  finished_.push_back(fd);
}

bool TcpDataServer::ServeOne(int fd) {
  uint8_t raw[kRequestHeaderSize];
  if (!RecvAll(fd, raw, sizeof(raw)).ok()) return false;  // closed, truncated or too slow
  absl::StatusOr<RequestHeader> header = DecodeRequest(raw);
  if (!header.ok()) {
    SendError(fd, 0, header.status());
    return false;
  }
  const uint64_t id = header->request_id;
  if (header->opcode == Opcode::kHandshake) {
    std::string request(header->length, '\0');
    if (!RecvAll(fd, request.data(), request.size()).ok()) return false;
    absl::StatusOr<std::string> answer =
        handshake_ ? handshake_(request)
                   : MakeError(ErrorCode::NOT_SUPPORTED, "this endpoint offers no RDMA");
    if (!answer.ok()) {
      SendError(fd, id, answer.status());
      return false;
    }
    const auto response = EncodeResponse(ResponseHeader{0, id, answer->size()});
    iovec iov[2] = {{const_cast<uint8_t*>(response.data()), response.size()},
                    {answer->data(), answer->size()}};
    return SendAll(fd, iov, 2).ok();
  }
  if (header->opcode == Opcode::kDescribe) {
    const std::string descriptor = describe_();
    const auto response = EncodeResponse(ResponseHeader{0, id, descriptor.size()});
    iovec iov[2] = {{const_cast<uint8_t*>(response.data()), response.size()},
                    {const_cast<char*>(descriptor.data()), descriptor.size()}};
    return SendAll(fd, iov, 2).ok();
  }
  const bool is_read = header->opcode == Opcode::kRead;
  if (!registry_->Contains(header->remote_addr, header->length)) {
    SendError(fd, id,
              MakeError(is_read ? ErrorCode::INVALID_READ : ErrorCode::INVALID_WRITE,
                        fmt::format("[{:#x}, +{}) is not inside a registered buffer",
                                    header->remote_addr, header->length)));
    return false;  // after a refused WRITE its data would follow: the stream is unusable
  }
  void* memory = reinterpret_cast<void*>(header->remote_addr);
  if (is_read) {
    const auto response = EncodeResponse(ResponseHeader{0, id, header->length});
    iovec iov[2] = {{const_cast<uint8_t*>(response.data()), response.size()},
                    {memory, header->length}};
    return SendAll(fd, iov, 2).ok();
  }
  if (absl::Status received = RecvAll(fd, memory, header->length); !received.ok()) return false;
  const auto response = EncodeResponse(ResponseHeader{0, id, 0});
  return SendAll(fd, response.data(), response.size()).ok();
}

}  // namespace mooncake::engine::tcp
