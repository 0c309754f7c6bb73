// Mounted segments and the space inside them.
//
// A segment is a range of memory a client contributes: a name ("host:port" of the client's data
// endpoint), the address of its first byte in that client's process, a size and the owning client.
// Each gets an OffsetAllocator. Placements for an object's replicas are chosen here: preferred
// segments first, then by strategy, each replica on a different segment.
//
// Thread safety: all methods are thread-safe (one mutex; allocation is O(1), so it is held
// briefly).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/offset_allocator.h"
#include "master/master_config.h"

namespace mooncake::master {

using SegmentId = uint32_t;

struct SegmentInfo {
  SegmentId id = 0;
  std::string name;
  uint64_t base = 0;
  uint64_t size = 0;
  std::string client_id;
  uint64_t used = 0;
  uint64_t incarnation = 0;  // of the process serving it (0: not said)
};

// Where one replica lives: which segment, at which offset, and the allocator's handle for it.
struct Replica {
  SegmentId segment;
  uint32_t handle;
  uint64_t offset;
};

// A replica as clients see it.
struct ReplicaLocation {
  std::string segment;
  uint64_t address;          // base + offset, in the owning process's address space
  uint64_t incarnation = 0;  // of the process the address belongs to
};

// What a mount did: the new segment, and the one of the same name it replaced, if any.
struct Mounted {
  SegmentId id = 0;
  std::optional<SegmentInfo> replaced;
};

class SegmentManager {
 public:
  SegmentManager(AllocationStrategy strategy, uint64_t alignment, uint64_t seed);

  // INVALID_PARAMS for an empty name, a size below one allocation unit, or base + size past 2^64;
  // SEGMENT_ALREADY_EXISTS for a name `client_id` has mounted already. A name mounted by another
  // client is taken over: a segment is named by its data endpoint, so a new client under that name
  // is a new process at that endpoint, and the old one's memory is gone (the caller drops the
  // replaced segment's replicas).
  absl::StatusOr<Mounted> Mount(std::string_view name, uint64_t base, uint64_t size,
                                std::string_view client_id, uint64_t incarnation = 0);
  // True if `client_id` has mounted `name`.
  bool IsMountedBy(std::string_view name, std::string_view client_id) const;

  // Removes the segment. SEGMENT_NOT_FOUND if not mounted; ILLEGAL_CLIENT if `client_id` is not
  // its owner (an empty client_id means the master itself). Replicas in it become dangling: the
  // caller drops them (their handles are never freed; the allocator is gone).
  absl::StatusOr<SegmentInfo> Unmount(std::string_view name, std::string_view client_id);

  // `count` replicas of `size` bytes on distinct segments: those named in `preferred` first (in
  // order; unknown names are skipped), then by strategy. Fewer than `count` when fewer segments
  // have room (best effort); NO_AVAILABLE_HANDLE when none has.
  absl::StatusOr<std::vector<Replica>> Allocate(uint64_t size, uint32_t count,
                                                const std::vector<std::string>& preferred);

  // Frees replicas; those on segments no longer mounted are ignored.
  void Free(const Replica* replicas, size_t n);

  // Locations of replicas, skipping those on unmounted segments.
  std::vector<ReplicaLocation> Locate(const Replica* replicas, size_t n) const;

  bool IsMounted(SegmentId id) const;
  std::vector<SegmentInfo> List() const;
  std::vector<std::string> SegmentsOf(std::string_view client_id) const;
  uint64_t total_bytes() const;
  uint64_t used_bytes() const;

 private:
  struct Segment {
    SegmentInfo info;
    std::unique_ptr<OffsetAllocator> allocator;
  };

  // The order in which to try segments for one replica set.
  void RemoveLocked(SegmentId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Segment*> CandidatesLocked(const std::vector<std::string>& preferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AllocationStrategy strategy_;
  const uint64_t alignment_;
  mutable absl::Mutex mu_;
  SegmentId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<SegmentId, Segment> segments_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, SegmentId> by_name_ ABSL_GUARDED_BY(mu_);
  std::vector<SegmentId> order_ ABSL_GUARDED_BY(mu_);  // for random starting points
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mooncake::master
