// Mounted segments and the space inside them.
//
// A segment is a range of memory a client contributes: a name ("host:port" of the client's data
// endpoint), the address of its first byte in that client's process, a size and the owning client.
// Each gets an OffsetAllocator. Placements for an object's replicas are chosen here: preferred
// segments first, then by strategy, each replica on a different segment.
//
// Owner indexes (loss-free recovery, docs/ha.md). A segment mounted with an index is one whose
// owner keeps the list of complete objects it holds, so that a master that lost its state (a
// restart, a new leader) can rebuild them from the owner's report at the next mount. The master
// keeps that list true through a journal of changes per segment, which the owner fetches
// (Sync) and acknowledges: an object is added when its put ends, and dropped when it is removed,
// evicted or replaced. A range whose drop the owner has not acknowledged yet is not handed out
// again: were the master to die before the owner learnt of the drop, the owner would report an
// object whose bytes a later put had overwritten.
//
// Thread safety: all methods are thread-safe (one mutex; allocation is O(1), so it is held
// briefly).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/offset_allocator.h"
#include "http/spin_wait.h"
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
// An object's replicas. Most objects have one, kept inline: placing a batch of 128 allocates no
// list per key.
using Replicas = absl::InlinedVector<Replica, 1>;

// A replica as clients see it.
struct ReplicaLocation {
  std::string segment;
  uint64_t address;          // base + offset, in the owning process's address space
  uint64_t incarnation = 0;  // of the process the address belongs to
};
// An object's replicas as clients see them. Most objects have one, which is then kept inline: a
// batch of 128 reads or puts allocates no list per key.
using ReplicaLocations = absl::InlinedVector<ReplicaLocation, 1>;

// One complete object in a segment, as its owner keeps it for its next mount.
struct IndexEntry {
  std::string key;
  uint64_t offset = 0;  // from the segment's base
  uint64_t size = 0;
  uint64_t put_id = 0;  // the put that wrote it: the replicas of one put share it
};

// A change to an owner's index: add an entry, or drop the one at entry.offset.
struct IndexChange {
  uint64_t seq = 0;
  bool add = false;
  IndexEntry entry;
};

// What an owner fetches: the changes after the ones it acknowledged, for the mount it names.
struct IndexSync {
  uint64_t mount_id = 0;  // the current mount (the owner's was older: changes start from its start)
  std::vector<IndexChange> changes;
};

// Changes a caller waits to see acknowledged: the last change of each segment at some point.
using IndexBarrier = std::vector<std::pair<SegmentId, uint64_t>>;

// What a mount did: the new segment, and the one of the same name it replaced, if any.
struct Mounted {
  SegmentId id = 0;
  uint64_t mount_id = 0;  // random, never 0: names this mount in Sync
  std::optional<SegmentInfo> replaced;
  // With an index: the replica of each entry, in the order given.
  std::vector<Replica> restored;
};

class SegmentManager {
 public:
  // `wait_spin`: how long AwaitAcknowledged and Sync poll for what they wait for before they
  // sleep (a sleeping thread takes ~20-60 us to wake on a virtual machine; http/spin_wait.h).
  SegmentManager(AllocationStrategy strategy, uint64_t alignment, uint64_t seed,
                 absl::Duration wait_spin = absl::ZeroDuration());

  // INVALID_PARAMS for an empty name, a size below one allocation unit, or base + size past 2^64;
  // SEGMENT_ALREADY_EXISTS for a name `client_id` has mounted already. A name mounted by another
  // client is taken over: a segment is named by its data endpoint, so a new client under that name
  // is a new process at that endpoint, and the old one's memory is gone (the caller drops the
  // replaced segment's replicas).
  //
  // `index` (may be null: the owner keeps none) is what the owner reports it holds: each entry's
  // range is reserved again, and changes are journaled from now on. INVALID_PARAMS for an entry
  // that is empty, unaligned, outside the segment, or overlaps another.
  absl::StatusOr<Mounted> Mount(std::string_view name, uint64_t base, uint64_t size,
                                std::string_view client_id, uint64_t incarnation = 0,
                                const std::vector<IndexEntry>* index = nullptr);
  // True if `client_id` has mounted `name`.
  bool IsMountedBy(std::string_view name, std::string_view client_id) const;

  // Removes the segment. SEGMENT_NOT_FOUND if not mounted; ILLEGAL_CLIENT if `client_id` is not
  // its owner (an empty client_id means the master itself). Replicas in it become dangling: the
  // caller drops them (their handles are never freed; the allocator is gone).
  absl::StatusOr<SegmentInfo> Unmount(std::string_view name, std::string_view client_id);

  // `count` replicas of `size` bytes on distinct segments: those named in `preferred` first (in
  // order; unknown names are skipped), then by strategy. Fewer than `count` when fewer segments
  // have room (best effort); NO_AVAILABLE_HANDLE when none has.
  absl::StatusOr<Replicas> Allocate(uint64_t size, uint32_t count,
                                    const std::vector<std::string>& preferred);
  // Allocate for each of `sizes` (a batch of puts), under one lock.
  std::vector<absl::StatusOr<Replicas>> AllocateEach(absl::Span<const uint64_t> sizes,
                                                     uint32_t count,
                                                     const std::vector<std::string>& preferred);

  // Frees replicas; those on segments no longer mounted are ignored. On a segment with an index,
  // the drop of a replica that was `indexed` (its put ended) is journaled, and its range freed
  // once the owner has acknowledged it; the owner never knew of the others.
  void Free(const Replica* replicas, size_t n, bool indexed = true);
  // Journals the drop of replicas that stay allocated (a replaced value still being read).
  void Unindex(const Replica* replicas, size_t n);
  // Journals that `key` (of `size` bytes, put `put_id`) is complete in these replicas.
  void Index(std::string_view key, uint64_t size, uint64_t put_id, const Replica* replicas,
             size_t n);

  // The last change journaled so far on each of `segments` (all indexed ones if empty).
  IndexBarrier Barrier(absl::Span<const SegmentId> segments = {}) const;
  // Waits until the owners have acknowledged every change up to `barrier`, at most `timeout`.
  // Segments unmounted meanwhile, and owners already behind by more than `timeout`, are not
  // waited for. False if an owner had not acknowledged (timed out, or not waited for).
  bool AwaitAcknowledged(const IndexBarrier& barrier, absl::Duration timeout);

  // The owner of segment `name` fetches changes: applies `acked` (the last change it applied of
  // mount `mount_id`), then returns the changes after it, waiting up to `wait` for one. A
  // `mount_id` that is not the current mount's gets the current one's changes from the first
  // unacknowledged. SEGMENT_NOT_FOUND if `client_id` has not mounted `name` with an index.
  absl::StatusOr<IndexSync> Sync(std::string_view name, std::string_view client_id,
                                 uint64_t mount_id, uint64_t acked, absl::Duration wait,
                                 size_t max_changes);

  // Locations of replicas, skipping those on unmounted segments.
  ReplicaLocations Locate(const Replica* replicas, size_t n) const;
  // Locate() of each list, under one lock (a batch of GetReplicaList locates 128 objects).
  std::vector<ReplicaLocations> LocateEach(absl::Span<const absl::Span<const Replica>> lists) const;

  bool IsMounted(SegmentId id) const;
  std::vector<SegmentInfo> List() const;
  std::vector<std::string> SegmentsOf(std::string_view client_id) const;
  uint64_t total_bytes() const;
  uint64_t used_bytes() const;

 private:
  struct Segment {
    SegmentInfo info;
    std::unique_ptr<OffsetAllocator> allocator;
    uint64_t mount_id = 0;
    bool indexed = false;
    // The journal: changes after `acked`, oldest first, and when each was made.
    uint64_t next_seq = 1;
    uint64_t acked = 0;
    std::deque<std::pair<int64_t, IndexChange>> journal;
    // Dropped ranges waiting for the owner's acknowledgement: (change seq, allocator handle).
    std::deque<std::pair<uint64_t, uint32_t>> quarantine;
  };
  // Appends a change to an indexed segment's journal; returns its seq.
  uint64_t JournalLocked(Segment& segment, bool add, IndexEntry entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Owners with this many changes unacknowledged get no new objects until they catch up.
  static constexpr size_t kMaxJournal = 1u << 16;

  void RemoveLocked(SegmentId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Polls `ready` (called under a reader lock of mu_) each time a journal, an acknowledgement or
  // the set of segments changed, for up to wait_spin_ (at most `limit`), in a spinning slot of
  // `role`. True once it held.
  bool SpinUntilReady(absl::FunctionRef<bool()> ready, absl::Duration limit,
                      http::SpinRole role) const ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Replicas> AllocateLocked(uint64_t size, uint32_t count,
                                          const std::vector<std::string>& preferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Visits the segments to try for one replica set, best first (the preferred ones, then a random
  // rotation of the mount order, free_ratio_first sorting its first few), while `visit` says
  // true.
  void ForEachCandidateLocked(const std::vector<std::string>& preferred,
                              absl::FunctionRef<bool(Segment&)> visit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AllocationStrategy strategy_;
  const uint64_t alignment_;
  const absl::Duration wait_spin_;
  mutable absl::Mutex mu_;
  // Bumped (under mu_) by every change a waiter of AwaitAcknowledged or Sync may wait for.
  std::atomic<uint64_t> changes_{0};
  SegmentId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<SegmentId, Segment> segments_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, SegmentId> by_name_ ABSL_GUARDED_BY(mu_);
  std::vector<SegmentId> order_ ABSL_GUARDED_BY(mu_);  // for random starting points
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mooncake::master
