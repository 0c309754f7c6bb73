// Memory that processes on the same host can map: every allocation is a memfd of its own
// (anonymous, mode 0600, gone when the last mapping and descriptor close; no file is left behind).
//
// Allocating reserves address space and file size only; pages are touched when used, so a segment
// of hundreds of GB costs nothing up front.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace mooncake::engine::shm {

struct SharedRegion {
  uint64_t id = 0;    // stable name of the allocation for peers
  uint64_t addr = 0;  // where it is mapped in this process
  uint64_t size = 0;
};

class SharedMemory {
 public:
  SharedMemory() = default;
  ~SharedMemory();  // unmaps and closes every allocation still held
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  // `size` bytes (rounded up to the page size) of shared, zero-filled memory.
  // INVALID_PARAMS for size 0; NO_AVAILABLE_HANDLE when the kernel refuses.
  absl::StatusOr<void*> Allocate(uint64_t size);
  // OBJECT_NOT_FOUND unless `addr` is the start of an allocation.
  absl::Status Free(void* addr);

  // The allocation holding [addr, addr + length), if any.
  std::optional<SharedRegion> Find(uint64_t addr, uint64_t length) const;
  // A new descriptor of allocation `id` (for handing to a peer), or -1.
  int DuplicateFd(uint64_t id) const;

 private:
  struct Allocation {
    SharedRegion region;
    int fd = -1;
  };
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Allocation> by_addr_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::engine::shm
