#include "engine/shm/shm_transport.h"

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
  }
  const Mapping* Find(uint64_t remote, uint64_t length) const {
    for (const Mapping& m : mappings) {
      if (RangeWithin(remote, length, m.remote, m.length)) return &m;
    }
    return nullptr;
  }
  absl::flat_hash_map<uint64_t, File> files;
  std::vector<Mapping> mappings;
};

size_t ShmTransport::Attach(const SegmentDescriptor& d) {
  auto peer = std::make_shared<Peer>();
  if (!d.shm_server.empty()) {
    for (const BufferInfo& buffer : d.buffers) {
      if (buffer.shm_id == 0) continue;
      auto file = peer->files.find(buffer.shm_id);
      if (file == peer->files.end()) {
        absl::StatusOr<int> fd = FetchSharedFd(d.shm_server, buffer.shm_id, absl::Seconds(2));
        if (!fd.ok()) {
          spdlog::debug("shm: {}: {}", d.name, fd.status().message());
          continue;
        }
        struct stat st {};
        void* base = MAP_FAILED;
        if (fstat(*fd, &st) == 0 && st.st_size > 0) {
          base = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED,
                      *fd, 0);
        }
        close(*fd);  // the mapping keeps the memory alive
        if (base == MAP_FAILED) continue;
        file =
            peer->files.emplace(buffer.shm_id, Peer::File{base, static_cast<uint64_t>(st.st_size)})
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
  }
  const size_t reachable = peer->mappings.size();
  absl::MutexLock lock(&mu_);
  if (reachable == 0) {
    peers_.erase(d.name);
  } else {
    peers_[d.name] = std::move(peer);
  }
  return reachable;
}

void ShmTransport::Detach(const std::string& segment) {
  absl::MutexLock lock(&mu_);
  peers_.erase(segment);
}

std::shared_ptr<const ShmTransport::Peer> ShmTransport::PeerFor(const std::string& segment) const {
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(segment);
  return it == peers_.end() ? nullptr : it->second;
}

bool ShmTransport::Covers(const std::string& segment, uint64_t remote, uint64_t length) const {
  std::shared_ptr<const Peer> peer = PeerFor(segment);
  return peer && peer->Find(remote, length) != nullptr;
}

absl::Status ShmTransport::Copy(const std::string& segment, TransferOp op, void* local,
                                uint64_t remote, uint64_t length) const {
  std::shared_ptr<const Peer> peer = PeerFor(segment);
  const Peer::Mapping* mapping = peer ? peer->Find(remote, length) : nullptr;
  if (mapping == nullptr) {
    return MakeError(
        ErrorCode::TRANSFER_FAIL,
        fmt::format("{}: [{:#x}, +{}) is not inside a shared buffer", segment, remote, length));
  }
  uint8_t* there = mapping->view + (remote - mapping->remote);
  if (op == TransferOp::kRead) {
    std::memcpy(local, there, length);
  } else {
    std::memcpy(there, local, length);
  }
  return absl::OkStatus();
}

}  // namespace mooncake::engine::shm
