#include "engine/shm/shm_transport.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"
#include "engine/shm/shm_channel.h"

namespace mooncake::engine::shm {

struct ShmTransport::Peer {
  struct File {
    void* base = nullptr;
    uint64_t size = 0;
  };
  struct Mapping {
    uint64_t remote = 0;  // the buffer's address in the peer
    uint64_t length = 0;
    uint8_t* view = nullptr;  // the same bytes in this process
  };
  ~Peer() {
    for (auto& [id, file] : files) munmap(file.base, file.size);
    if (session >= 0) close(session);
  }
  const Mapping* Find(uint64_t remote, uint64_t length) const {
    for (const Mapping& m : mappings) {
      if (RangeWithin(remote, length, m.remote, m.length)) return &m;
    }
    return nullptr;
  }
  uint64_t serial = 0;
  uint64_t incarnation = 0;
  int session = -1;  // hangs up when the peer's process ends
  absl::flat_hash_map<uint64_t, File> files;
  std::vector<Mapping> mappings;
};

ShmTransport::ShmTransport(AuthToken auth, std::function<void(const std::string&)> on_gone)
    : auth_(std::move(auth)), on_gone_(std::move(on_gone)) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event stop{};
  stop.events = EPOLLIN;
  stop.data.u64 = 0;
  if (epoll_fd_ >= 0 && stop_fd_ >= 0 &&
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &stop) == 0) {
    watcher_ = std::thread([this] { Watch(); });
  } else {
    spdlog::warn("shm: cannot watch peers ({}); their ends are noticed at the next transfer",
                 std::strerror(errno));
  }
}

ShmTransport::~ShmTransport() {
  if (watcher_.joinable()) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    watcher_.join();
  }
  {
    absl::MutexLock lock(&mu_);
    peers_.clear();
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void ShmTransport::Watch() {
  for (;;) {
    epoll_event events[16];
    const int n = epoll_wait(epoll_fd_, events, 16, -1);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; ++i) {
      const uint64_t serial = events[i].data.u64;
      if (serial == 0) return;
      std::string gone;
      std::shared_ptr<const Peer> released;  // unmapped outside the lock
      {
        absl::MutexLock lock(&mu_);
        for (auto it = peers_.begin(); it != peers_.end(); ++it) {
          if (it->second->serial != serial) continue;
          gone = it->first;
          released = std::move(it->second);
          peers_.erase(it);
          break;
        }
      }
      if (released) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, released->session, nullptr);
        spdlog::info("shm: {} ended; its memory is unmapped here", gone);
        released.reset();
        if (on_gone_) on_gone_(gone);
      }
    }
  }
}

size_t ShmTransport::Attach(const SegmentDescriptor& d) {
  auto peer = std::make_shared<Peer>();
  peer->incarnation = d.incarnation;
  if (!d.shm_server.empty()) {
    absl::StatusOr<ShmSession> session =
        ShmSession::Open(d.shm_server, d.incarnation, auth_, absl::Seconds(2));
    if (!session.ok()) {
      spdlog::debug("shm: {}: {}", d.name, session.status().message());
    } else {
      for (const BufferInfo& buffer : d.buffers) {
        if (buffer.shm_id == 0) continue;
        auto file = peer->files.find(buffer.shm_id);
        if (file == peer->files.end()) {
          absl::StatusOr<int> fd = session->FetchFd(buffer.shm_id);
          if (!fd.ok()) {
            spdlog::debug("shm: {}: {}", d.name, fd.status().message());
            continue;
          }
          struct stat st {};
          void* base = MAP_FAILED;
          if (fstat(*fd, &st) == 0 && st.st_size > 0) {
            base = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE,
                        MAP_SHARED, *fd, 0);
          }
          close(*fd);  // the mapping keeps the memory alive
          if (base == MAP_FAILED) continue;
          file = peer->files
                     .emplace(buffer.shm_id, Peer::File{base, static_cast<uint64_t>(st.st_size)})
                     .first;
        }
        // The descriptor's offset and length must fit the file we were handed.
        if (buffer.shm_offset > file->second.size ||
            buffer.length > file->second.size - buffer.shm_offset) {
          continue;
        }
        peer->mappings.push_back(
            Peer::Mapping{buffer.addr, buffer.length,
                          static_cast<uint8_t*>(file->second.base) + buffer.shm_offset});
      }
      if (!peer->mappings.empty()) peer->session = session->Release();
    }
  }
  const size_t reachable = peer->mappings.size();
  std::shared_ptr<const Peer> replaced;
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(d.name);
  if (it != peers_.end()) {
    replaced = std::move(it->second);
    peers_.erase(it);
  }
  if (reachable > 0) {
    peer->serial = next_serial_++;
    epoll_event event{};
    event.events = EPOLLRDHUP | EPOLLHUP;
    event.data.u64 = peer->serial;
    if (epoll_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, peer->session, &event);
    peers_[d.name] = std::move(peer);
  }
  return reachable;
}

void ShmTransport::Detach(const std::string& segment) {
  std::shared_ptr<const Peer> released;
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(segment);
  if (it == peers_.end()) return;
  released = std::move(it->second);
  peers_.erase(it);
  if (epoll_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, released->session, nullptr);
}

std::shared_ptr<const ShmTransport::Peer> ShmTransport::PeerFor(const std::string& segment) const {
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(segment);
  return it == peers_.end() ? nullptr : it->second;
}

bool ShmTransport::Covers(const std::string& segment, uint64_t incarnation, uint64_t remote,
                          uint64_t length) const {
  std::shared_ptr<const Peer> peer = PeerFor(segment);
  return peer && peer->incarnation == incarnation && peer->Find(remote, length) != nullptr;
}

bool ShmTransport::Alive(const std::string& segment, uint64_t incarnation) const {
  std::shared_ptr<const Peer> peer = PeerFor(segment);
  if (!peer || peer->incarnation != incarnation) return false;
  pollfd pfd{peer->session, POLLRDHUP, 0};
  return poll(&pfd, 1, 0) == 0;
}

absl::Status ShmTransport::Copy(const std::string& segment, uint64_t incarnation, TransferOp op,
                                void* local, uint64_t remote, uint64_t length) const {
  if (TryCopy(segment, incarnation, op, local, remote, length)) return absl::OkStatus();
  return MakeError(
      ErrorCode::TRANSFER_FAIL,
      fmt::format("{}: [{:#x}, +{}) is not inside a shared buffer", segment, remote, length));
}

bool ShmTransport::TryCopy(const std::string& segment, uint64_t incarnation, TransferOp op,
                           void* local, uint64_t remote, uint64_t length) const {
  std::shared_ptr<const Peer> peer = PeerFor(segment);
  const Peer::Mapping* mapping =
      peer && peer->incarnation == incarnation ? peer->Find(remote, length) : nullptr;
  if (mapping == nullptr) return false;
  uint8_t* there = mapping->view + (remote - mapping->remote);
  if (op == TransferOp::kRead) {
    std::memcpy(local, there, length);
  } else {
    std::memcpy(there, local, length);
  }
  return true;
}

}  // namespace mooncake::engine::shm
