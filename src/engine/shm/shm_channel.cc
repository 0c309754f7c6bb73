#include "engine/shm/shm_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "common/error_code.h"
#include "common/strings.h"
#include "engine/tcp/socket_io.h"

namespace mooncake::engine::shm {
namespace {

// sockaddr_un for an abstract name given as "@rest".
socklen_t AbstractAddress(const std::string& name, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(addr->sun_path));
  std::memcpy(addr->sun_path, name.data(), n);
  addr->sun_path[0] = '\0';
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
}

}  // namespace

ShmServer::~ShmServer() { Stop(); }

absl::Status ShmServer::Start() {
  std::random_device random;
  name_ = fmt::format("@mooncake-shm-{}-{:016x}", getpid(),
                      (static_cast<uint64_t>(random()) << 32) | random());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(name_, &addr);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(listen_fd_, 64) != 0) {
    const int err = errno;
    close(listen_fd_);
    listen_fd_ = -1;
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("cannot listen on {}: {}", name_, std::strerror(err)));
  }
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void ShmServer::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  shutdown(listen_fd_, SHUT_RDWR);
  thread_.join();
  close(listen_fd_);
}

void ShmServer::Serve() {
  while (!stopping_.load()) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    // Requests are a handful per peer for the life of the process: serve each connection here,
    // with a deadline so a stuck peer cannot hold the server.
    tcp::SetIoTimeout(fd, absl::Seconds(2));
    uint8_t raw[8];
    while (tcp::RecvAll(fd, raw, sizeof(raw)).ok()) {
      uint64_t id = 0;
      for (int i = 7; i >= 0; --i) id = (id << 8) | raw[i];
      const int shared = memory_->DuplicateFd(id);
      uint8_t status = shared >= 0 ? 0 : 1;
      iovec iov{&status, 1};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      if (shared >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cmsg), &shared, sizeof(int));
      }
      const bool sent = sendmsg(fd, &msg, MSG_NOSIGNAL) == 1;
      if (shared >= 0) close(shared);
      if (!sent) break;
    }
    close(fd);
  }
}

absl::StatusOr<int> FetchSharedFd(const std::string& server_name, uint64_t id,
                                  absl::Duration timeout) {
  if (server_name.size() < 2 || server_name[0] != '@') {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("bad shm server name '{}'", server_name));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(server_name, &addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    close(fd);
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("cannot reach {}: {}", server_name, std::strerror(err)));
  }
  tcp::SetIoTimeout(fd, timeout);
  uint8_t raw[8];
  for (int i = 0; i < 8; ++i) raw[i] = static_cast<uint8_t>(id >> (8 * i));
  absl::Status sent = tcp::SendAll(fd, raw, sizeof(raw));
  uint8_t status = 1;
  iovec iov{&status, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t got = sent.ok() ? recvmsg(fd, &msg, MSG_CMSG_CLOEXEC) : -1;
  close(fd);
  if (got != 1) {
    return MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("{} did not answer", server_name));
  }
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (status != 0 || cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS) {
    return MakeError(ErrorCode::OBJECT_NOT_FOUND,
                     fmt::format("{} has no shared allocation {}", server_name, id));
  }
  int shared = -1;
  std::memcpy(&shared, CMSG_DATA(cmsg), sizeof(int));
  return shared;
}

}  // namespace mooncake::engine::shm
