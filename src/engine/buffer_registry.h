// The memory a process has registered with its transfer engine.
//
// Every transfer is checked against it on both ends: the initiator's local range and the target's
// remote range must each lie inside one registered buffer. Nothing outside is ever read or written.
//
// Thread safety: all methods are thread-safe; lookups take a shared lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace mooncake::engine {

struct BufferInfo {
  uint64_t addr = 0;
  uint64_t length = 0;
  std::string location;  // e.g. "cpu:0"; opaque to the engine
  uint64_t shm_id = 0;   // the shared allocation holding it (0: not shared memory)
  uint64_t shm_offset = 0;
  std::vector<uint32_t> rkeys;  // RDMA remote keys, one per NIC of the segment (empty: no RDMA)
};

// True if [addr, addr + length) lies inside [start, start + size), with no overflow however large
// the values. An empty range lies inside nothing.
inline bool RangeWithin(uint64_t addr, uint64_t length, uint64_t start, uint64_t size) {
  return length != 0 && addr >= start && length <= size && addr - start <= size - length;
}

class BufferRegistry {
 public:
  // INVALID_PARAMS for a null or empty range, one that wraps past 2^64, or one overlapping a
  // registered buffer.
  absl::Status Register(uint64_t addr, uint64_t length, std::string location);

  // OBJECT_NOT_FOUND unless a buffer starts exactly at `addr`.
  absl::Status Unregister(uint64_t addr);

  // True if [addr, addr + length) lies inside one registered buffer. length 0 is never contained.
  bool Contains(uint64_t addr, uint64_t length) const;

  // The registered buffer that holds `addr`, if any.
  std::optional<BufferInfo> Find(uint64_t addr) const;

  std::vector<BufferInfo> List() const;

 private:
  mutable absl::Mutex mu_;
  std::map<uint64_t, BufferInfo> buffers_ ABSL_GUARDED_BY(mu_);  // by start address
};

}  // namespace mooncake::engine
