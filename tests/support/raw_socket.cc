#include "support/raw_socket.h"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <random>

namespace mooncake::test {

int ListenOnLoopback(int* port) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listener, 4) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (listener >= 0) close(listener);
    return -1;
  }
  *port = ntohs(address.sin_port);
  return listener;
}

SocketPair::SocketPair() {
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds_) != 0) fds_[0] = fds_[1] = -1;
}

SocketPair::~SocketPair() {
  for (int fd : fds_) {
    if (fd >= 0) close(fd);
  }
}

void SocketPair::CloseSecond() {
  if (fds_[1] >= 0) close(fds_[1]);
  fds_[1] = -1;
}

int PortOutsideEngineRange() {
  std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 10000);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (free) return port;
  }
  return 0;
}
namespace {

// Waits for readability until `deadline`; returns bytes read (0 on close, -1 on timeout/error).
ssize_t ReadSome(int fd, std::string& out, absl::Time deadline) {
  const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  if (left_ms <= 0) return -1;
  pollfd pfd{fd, POLLIN, 0};
  if (poll(&pfd, 1, static_cast<int>(left_ms)) <= 0) return -1;
  char buf[65536];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n > 0) out.append(buf, static_cast<size_t>(n));
  if (n < 0) return 0;  // reset counts as closed
  return n;
}

}  // namespace

RawSocket::RawSocket(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return;
  }
  fd_ = fd;
}

RawSocket::~RawSocket() {
  if (fd_ >= 0) close(fd_);
}

bool RawSocket::Send(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string RawSocket::ReadUntilClose(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string out = std::move(pending_);
  pending_.clear();
  while (ReadSome(fd_, out, deadline) > 0) {
  }
  return out;
}

std::string RawSocket::ReadAtLeast(size_t bytes, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string out = std::move(pending_);
  pending_.clear();
  while (out.size() < bytes && ReadSome(fd_, out, deadline) > 0) {
  }
  return out;
}

std::string RawSocket::ReadResponse(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string& buf = pending_;
  for (;;) {
    size_t head_end = buf.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      size_t length = 0;
      std::string head = buf.substr(0, head_end);
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t pos = head.find("content-length:");
      if (pos != std::string::npos) length = std::strtoul(head.c_str() + pos + 15, nullptr, 10);
      size_t total = head_end + 4 + length;
      if (buf.size() >= total) {
        std::string response = buf.substr(0, total);
        buf.erase(0, total);
        return response;
      }
    }
    if (ReadSome(fd_, buf, deadline) <= 0) {
      std::string partial = std::move(buf);
      buf.clear();
      return partial;
    }
  }
}

bool RawSocket::WaitForClose(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    std::string ignored;
    ssize_t n = ReadSome(fd_, ignored, deadline);
    if (n == 0) return true;
    if (n < 0) return false;
  }
}

int StatusOf(std::string_view response) {
  if (response.size() < 12 || response.substr(0, 5) != "HTTP/") return -1;
  return std::atoi(std::string(response.substr(9, 3)).c_str());
}

int64_t DataSegmentsIn(int fd) {
  tcp_info info{};
  socklen_t length = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
      length < offsetof(tcp_info, tcpi_data_segs_in) + sizeof(info.tcpi_data_segs_in)) {
    return -1;
  }
  return info.tcpi_data_segs_in;
}

}  // namespace mooncake::test
