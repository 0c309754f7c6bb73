#include "engine/shm/shm_channel.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error_code.h"
#include "common/logging.h"
#include "common/random.h"
#include "common/strings.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_protocol.h"

namespace mooncake::engine::shm {
namespace {

constexpr char kAuthPurpose[] = "shm";

// sockaddr_un for an abstract name given as "@rest".
socklen_t AbstractAddress(const std::string& name, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(addr->sun_path));
  std::memcpy(addr->sun_path, name.data(), n);
  addr->sun_path[0] = '\0';
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
}

// Sends one status byte, with `fd` attached when it is >= 0.
bool SendStatus(int socket, uint8_t status, int fd) {
  iovec iov{&status, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  return sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1;
}

// Receives one status byte and the descriptor attached to it, if any (-1).
absl::StatusOr<std::pair<uint8_t, int>> ReceiveStatus(int socket) {
  uint8_t status = 1;
  iovec iov{&status, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  if (recvmsg(socket, &msg, MSG_CMSG_CLOEXEC) != 1) {
    return MakeError(ErrorCode::TRANSFER_FAIL, "the shared-memory server did not answer");
  }
  int fd = -1;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg != nullptr && cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
    std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  }
  return std::make_pair(status, fd);
}

}  // namespace

struct ShmServer::Client {
  int fd = -1;
  bool authenticated = false;
  AuthNonce nonce{};
  uint8_t pending[kAuthProofSize] = {};  // a message not yet complete
  size_t have = 0;
};

ShmServer::~ShmServer() { Stop(); }

absl::Status ShmServer::Start() {
  name_ = fmt::format("@mooncake-shm-{}-{:016x}", getpid(), RandomU64());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(name_, &addr);
  if (stop_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(listen_fd_, 1024) != 0) {
    const int err = errno;
    close(listen_fd_);
    if (stop_fd_ >= 0) close(stop_fd_);
    listen_fd_ = stop_fd_ = -1;
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("cannot listen on {}: {}", name_, std::strerror(err)));
  }
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void ShmServer::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  thread_.join();
  close(listen_fd_);
  close(stop_fd_);
}

void ShmServer::Serve() {
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<pollfd> fds;
  while (!stopping_.load()) {
    fds.clear();
    fds.push_back(pollfd{stop_fd_, POLLIN, 0});
    fds.push_back(pollfd{listen_fd_, POLLIN, 0});
    for (const auto& client : clients) fds.push_back(pollfd{client->fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;
    // Clients first (their indexes match fds), then new connections.
    std::vector<std::unique_ptr<Client>> kept;
    kept.reserve(clients.size());
    for (size_t i = 0; i < clients.size(); ++i) {
      if (fds[i + 2].revents == 0 || Advance(*clients[i])) {
        kept.push_back(std::move(clients[i]));
      } else {
        close(clients[i]->fd);
      }
    }
    clients.swap(kept);
    if (fds[1].revents == 0) continue;
    for (;;) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) break;
      if (clients.size() >= max_connections_) {
        close(fd);
        continue;
      }
      if (auth_.enabled()) {
        // Only processes of our own user (or root) may map our memory.
        ucred peer{};
        socklen_t length = sizeof(peer);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
            (peer.uid != geteuid() && peer.uid != 0)) {
          close(fd);
          continue;
        }
      }
      auto client = std::make_unique<Client>();
      client->fd = fd;
      client->authenticated = !auth_.enabled();
      tcp::HelloReply greeting;
      greeting.incarnation = incarnation_;
      greeting.auth_required = auth_.enabled();
      if (greeting.auth_required) {
        client->nonce = RandomNonce();
        std::memcpy(greeting.nonce.data(), client->nonce.data(), kAuthNonceSize);
      }
      const auto bytes = tcp::EncodeHelloReply(greeting);
      if (send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
          static_cast<ssize_t>(bytes.size())) {
        close(fd);
        continue;
      }
      clients.push_back(std::move(client));
    }
  }
  for (const auto& client : clients) close(client->fd);
}

bool ShmServer::Advance(Client& client) {
  const size_t need = client.authenticated ? sizeof(uint64_t) : kAuthProofSize;
  for (;;) {
    const ssize_t n = recv(client.fd, client.pending + client.have, need - client.have, 0);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    client.have += static_cast<size_t>(n);
    if (client.have < need) continue;
    client.have = 0;
    if (!client.authenticated) {
      if (!auth_.Verify(kAuthPurpose, client.nonce, client.pending)) {
        SendStatus(client.fd, 1, -1);
        return false;
      }
      client.authenticated = true;
      if (!SendStatus(client.fd, 0, -1)) return false;
      return true;
    }
    uint64_t id = 0;
    for (int i = 7; i >= 0; --i) id = (id << 8) | client.pending[i];
    const int shared = memory_->DuplicateFd(id);
    const bool sent = SendStatus(client.fd, shared >= 0 ? 0 : 1, shared);
    if (shared >= 0) close(shared);
    if (!sent) return false;
    return true;
  }
}

absl::StatusOr<ShmSession> ShmSession::Open(const std::string& server_name, uint64_t incarnation,
                                            const AuthToken& auth, absl::Duration timeout) {
  if (server_name.size() < 2 || server_name[0] != '@') {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("bad shm server name '{}'", server_name));
  }
  ShmSession session(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(server_name, &addr);
  if (connect(session.fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("cannot reach {}: {}", server_name, std::strerror(errno)));
  }
  tcp::SetIoTimeout(session.fd_, timeout);
  uint8_t raw[tcp::kHelloReplySize];
  if (!tcp::RecvAll(session.fd_, raw, sizeof(raw)).ok()) {
    return MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("{} sent no greeting", server_name));
  }
  absl::StatusOr<tcp::HelloReply> greeting = tcp::DecodeHelloReply(raw);
  if (!greeting.ok()) {
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("{}: {}", server_name, greeting.status().message()));
  }
  if (incarnation != 0 && greeting->incarnation != incarnation) {
    return MakeError(ErrorCode::INVALID_VERSION,
                     fmt::format("{} is incarnation {:016x}, not {:016x}", server_name,
                                 greeting->incarnation, incarnation));
  }
  if (greeting->auth_required) {
    if (!auth.enabled()) {
      return MakeError(
          ErrorCode::ILLEGAL_CLIENT,
          fmt::format("{} requires an auth token and this process has none", server_name));
    }
    const AuthProof proof = auth.Prove(kAuthPurpose, greeting->nonce);
    absl::StatusOr<std::pair<uint8_t, int>> answer =
        tcp::SendAll(session.fd_, proof.data(), proof.size()).ok()
            ? ReceiveStatus(session.fd_)
            : MakeError(ErrorCode::TRANSFER_FAIL, "send failed");
    if (!answer.ok() || answer->first != 0) {
      return MakeError(ErrorCode::ILLEGAL_CLIENT,
                       fmt::format("{} refused our auth token", server_name));
    }
  }
  return session;
}

ShmSession& ShmSession::operator=(ShmSession&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

ShmSession::~ShmSession() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<int> ShmSession::FetchFd(uint64_t id) {
  uint8_t raw[8];
  for (int i = 0; i < 8; ++i) raw[i] = static_cast<uint8_t>(id >> (8 * i));
  if (!tcp::SendAll(fd_, raw, sizeof(raw)).ok()) {
    return MakeError(ErrorCode::TRANSFER_FAIL, "the shared-memory server went away");
  }
  absl::StatusOr<std::pair<uint8_t, int>> answer = ReceiveStatus(fd_);
  if (!answer.ok()) return answer.status();
  if (answer->first != 0 || answer->second < 0) {
    if (answer->second >= 0) close(answer->second);
    return MakeError(ErrorCode::OBJECT_NOT_FOUND, fmt::format("no shared allocation {}", id));
  }
  return answer->second;
}

}  // namespace mooncake::engine::shm
