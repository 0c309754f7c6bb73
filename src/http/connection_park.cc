#include "http/connection_park.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/strings.h"

namespace mooncake::http {
namespace {

// The value of header `name` in `head` (the request line and header lines), or "".
std::string_view HeaderValue(std::string_view head, std::string_view name) {
  size_t line = head.find("\r\n");
  while (line != std::string_view::npos && line + 2 < head.size()) {
    const size_t start = line + 2;
    const size_t end = head.find("\r\n", start);
    const std::string_view header =
        head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    const size_t colon = header.find(':');
    if (colon == name.size() &&
        absl::EqualsIgnoreCase(AsAbsl(header.substr(0, colon)), AsAbsl(name))) {
      return AsStd(absl::StripAsciiWhitespace(AsAbsl(header.substr(colon + 1))));
    }
    line = end;
  }
  return {};
}

// Where this thread's PeekRequest copies what it sees.
thread_local std::vector<char> peek_buffer;

}  // namespace

Pending PeekRequest(int fd, size_t max_head_bytes, size_t max_buffered_body,
                    std::string_view* peeked) {
  std::vector<char>& buffer = peek_buffer;
  const size_t want = max_head_bytes + max_buffered_body + 4;
  if (buffer.size() < want) buffer.resize(want);
  const ssize_t n = recv(fd, buffer.data(), want, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return Pending::kClosed;
  if (n < 0) {
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? Pending::kNothing
                                                                     : Pending::kClosed;
  }
  const std::string_view got(buffer.data(), static_cast<size_t>(n));
  if (peeked != nullptr) *peeked = got;
  const size_t head_end = got.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    // Too long a head is the worker's to refuse; anything shorter is still on its way.
    return got.size() > max_head_bytes ? Pending::kComplete : Pending::kPartial;
  }
  const std::string_view head = got.substr(0, head_end);
  // Only these methods have bodies the server reads (for others it answers the head and closes).
  const std::string_view method = head.substr(0, head.find(' '));
  if (method != "POST" && method != "PUT" && method != "PATCH" && method != "DELETE") {
    return Pending::kComplete;
  }
  const std::string_view length = HeaderValue(head, "Content-Length");
  uint64_t body = 0;
  if (length.empty() || !absl::SimpleAtoi(AsAbsl(length), &body) || body > max_buffered_body ||
      !HeaderValue(head, "Transfer-Encoding").empty()) {
    return Pending::kComplete;  // no body, or one the worker reads (and checks) itself
  }
  return got.size() - (head_end + 4) >= body ? Pending::kComplete : Pending::kPartial;
}

bool ConsumePeeked(int fd, size_t n) {
  while (n > 0) {
    // MSG_TRUNC: TCP drops the bytes without copying them. The buffer is named all the same (as
    // large as any peek, so at least n), for the sanitizers, which take the call to write there.
    const size_t chunk = std::min(n, peek_buffer.size());
    if (chunk == 0) return false;
    const ssize_t got = recv(fd, peek_buffer.data(), chunk, MSG_TRUNC | MSG_DONTWAIT);
    if (got <= 0) return false;
    n -= static_cast<size_t>(got);
  }
  return true;
}

ConnectionPark::ConnectionPark(size_t max_head_bytes, size_t max_buffered_body,
                               absl::Duration read_timeout, absl::Duration keep_alive_timeout,
                               Ready ready, Expired expired)
    : max_head_bytes_(max_head_bytes),
      max_buffered_body_(max_buffered_body),
      read_timeout_(read_timeout),
      keep_alive_timeout_(keep_alive_timeout),
      ready_(std::move(ready)),
      expired_(std::move(expired)) {}

ConnectionPark::~ConnectionPark() { Stop(); }

bool ConnectionPark::Start() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event stop{};
  stop.events = EPOLLIN;
  stop.data.fd = -1;
  if (epoll_fd_ < 0 || stop_fd_ < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &stop) != 0) {
    return false;
  }
  {
    absl::MutexLock lock(&mu_);
    stopped_ = false;
  }
  thread_ = std::thread([this] { Watch(); });
  return true;
}

void ConnectionPark::Stop() {
  absl::flat_hash_map<int, Parked> left;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    left.swap(parked_);
  }
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  thread_.join();
  for (const auto& [fd, parked] : left) expired_(fd, parked.cookie, false);
  close(epoll_fd_);
  close(stop_fd_);
}

bool ConnectionPark::Park(int fd, uint64_t cookie, absl::Time partial_since) {
  absl::MutexLock lock(&mu_);
  if (stopped_) return false;
  const bool partial = partial_since != absl::InfinitePast();
  parked_[fd] = Parked{
      cookie, partial ? partial_since + read_timeout_ : absl::Now() + keep_alive_timeout_, partial};
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  event.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0 &&
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0) {
    parked_.erase(fd);
    return false;
  }
  return true;
}

size_t ConnectionPark::parked() const {
  absl::MutexLock lock(&mu_);
  return parked_.size();
}

void ConnectionPark::Watch() {
  std::vector<epoll_event> events(256);
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno != EINTR) return;
    struct Handoff {
      int fd;
      uint64_t cookie;
      bool ready;
      bool partial;
    };
    std::vector<Handoff> handoffs;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      const absl::Time now = absl::Now();
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd < 0) return;  // the stop event
        auto it = parked_.find(fd);
        if (it == parked_.end()) continue;
        const Pending pending = PeekRequest(fd, max_head_bytes_, max_buffered_body_);
        if (pending == Pending::kComplete || pending == Pending::kClosed) {
          handoffs.push_back({fd, it->second.cookie, true, false});
        } else {
          // More bytes, not yet a whole request: the clock of a request starts at its first byte.
          if (pending == Pending::kPartial && !it->second.partial) {
            it->second.partial = true;
            it->second.deadline = now + read_timeout_;
          }
          epoll_event again{};
          again.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
          again.data.fd = fd;
          if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &again) == 0) continue;
          handoffs.push_back({fd, it->second.cookie, false, it->second.partial});
        }
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        parked_.erase(it);
      }
      for (auto it = parked_.begin(); it != parked_.end();) {
        auto next = std::next(it);
        if (it->second.deadline <= now) {
          handoffs.push_back({it->first, it->second.cookie, false, it->second.partial});
          epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->first, nullptr);
          parked_.erase(it);
        }
        it = next;
      }
    }
    for (const Handoff& h : handoffs) {
      if (h.ready) {
        ready_(h.fd, h.cookie);
      } else {
        expired_(h.fd, h.cookie, h.partial);
      }
    }
  }
}

}  // namespace mooncake::http
