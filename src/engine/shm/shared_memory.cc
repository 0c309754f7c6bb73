#include "engine/shm/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error_code.h"
#include "common/strings.h"
#include "engine/buffer_registry.h"

namespace mooncake::engine::shm {

SharedMemory::~SharedMemory() {
  absl::MutexLock lock(&mu_);
  for (auto& [addr, a] : by_addr_) {
    munmap(reinterpret_cast<void*>(a.region.addr), a.region.size);
    close(a.fd);
  }
}

absl::StatusOr<void*> SharedMemory::Allocate(uint64_t size) {
  if (size == 0) return MakeError(ErrorCode::INVALID_PARAMS, "shared memory size must be > 0");
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (size > UINT64_MAX - page) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("shared memory size {} too large", size));
  }
  size = (size + page - 1) / page * page;
  int fd = memfd_create("mooncake-segment", MFD_CLOEXEC);
  if (fd < 0 || fchmod(fd, 0600) != 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    return MakeError(
        ErrorCode::NO_AVAILABLE_HANDLE,
        fmt::format("cannot create {} bytes of shared memory: {}", size, std::strerror(err)));
  }
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (addr == MAP_FAILED) {
    const int err = errno;
    close(fd);
    return MakeError(
        ErrorCode::NO_AVAILABLE_HANDLE,
        fmt::format("cannot map {} bytes of shared memory: {}", size, std::strerror(err)));
  }
  absl::MutexLock lock(&mu_);
  const uint64_t start = reinterpret_cast<uint64_t>(addr);
  by_addr_.emplace(start, Allocation{SharedRegion{next_id_++, start, size}, fd});
  return addr;
}

absl::Status SharedMemory::Free(void* addr) {
  absl::MutexLock lock(&mu_);
  auto it = by_addr_.find(reinterpret_cast<uint64_t>(addr));
  if (it == by_addr_.end()) {
    return MakeError(ErrorCode::OBJECT_NOT_FOUND,
                     fmt::format("{} is not shared memory of this engine", addr));
  }
  munmap(addr, it->second.region.size);
  close(it->second.fd);
  by_addr_.erase(it);
  return absl::OkStatus();
}

std::optional<SharedRegion> SharedMemory::Find(uint64_t addr, uint64_t length) const {
  absl::MutexLock lock(&mu_);
  auto next = by_addr_.upper_bound(addr);
  if (next == by_addr_.begin()) return std::nullopt;
  const SharedRegion& r = std::prev(next)->second.region;
  if (!RangeWithin(addr, length, r.addr, r.size)) return std::nullopt;
  return r;
}

int SharedMemory::DuplicateFd(uint64_t id) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [addr, a] : by_addr_) {
    if (a.region.id == id) return fcntl(a.fd, F_DUPFD_CLOEXEC, 0);
  }
  return -1;
}

}  // namespace mooncake::engine::shm
