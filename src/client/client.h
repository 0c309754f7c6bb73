// The mooncake client library: put and get objects in the distributed pool.
//
//   auto client = Client::Create(config);            // connects to the master, starts the engine
//   client->RegisterBuffer(pool, pool_bytes);        // once, for the zero-copy calls
//   client->BatchPutFrom(keys, buffers, {});         // one master call + one transfer batch
//   client->BatchGetInto(keys, buffers);             // bytes read per key, or an error
//
// Objects are immutable once stored: a put of a key that exists succeeds and leaves the stored
// value as it was. A put is PutStart at the master (space on `replica_num` distinct segments), the
// writes to every replica, then PutEnd; if a write fails the put is revoked and its space freed. A
// get asks the master for the replicas (which leases the object), reads the closest one (this
// process, then this host, then another), tries the next replica if a read fails, and discards
// data that arrived after the lease ended (LEASE_EXPIRED). Batch calls are the fast path: one
// master call for all keys and one transfer batch for all bytes; the single-key calls are batches
// of one. A batch answers per key, in order.
//
// Zero-copy calls read from / write into memory registered with RegisterBuffer (or this client's
// own segment); a range that is not registered is INVALID_PARAMS and nothing is touched. The
// copying calls (Put/Get of values in ordinary memory) stage bytes through `local_buffer_size`
// bytes of registered memory; with 0 they fail with INVALID_PARAMS.
//
// A client with `global_segment_size` > 0 contributes that much memory to the pool: it mounts it
// at the master, serves peers' transfers into it, heartbeats, and mounts it again when the master
// restarts. It keeps an index of the complete objects its segment holds, which the master keeps
// up to date (a thread fetches the changes); a new master (restarted, or a new leader) rebuilds
// those objects from the index this client reports when it mounts again, so they stay readable.
// Close() unmounts it.
//
// Errors are absl::Status values carrying the codes of SPEC.md §6 (ErrorCodeOf()).
// Thread safety: every method is thread-safe; Close() waits for calls in flight.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/types/span.h"
#include "client/client_config.h"
#include "client/master_client.h"
#include "common/mapped_memory.h"

namespace mooncake::engine {
class TransferEngine;
}

namespace mooncake::client {

class StagingBuffer;

// A range of memory: the source or destination of a zero-copy call.
struct Slice {
  void* data = nullptr;
  uint64_t size = 0;
};

class Client {
 public:
  // Starts the transfer engine, checks that the master answers, and mounts the segment if
  // `global_segment_size` > 0. INVALID_PARAMS for a bad config; RPC_FAIL / RPC_TIMEOUT when the
  // master cannot be reached (after the HTTP client's retries); the engine's errors otherwise.
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientConfig config);
  ~Client();  // Close()

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Unmounts the segment, stops the heartbeat and the engine. Idempotent; later calls fail with
  // UNAVAILABLE_IN_CURRENT_STATUS.
  absl::Status Close();

  // "host:port" of this client's data endpoint: the name of its segment.
  const std::string& segment_name() const { return segment_name_; }
  const std::string& client_id() const { return master_->client_id(); }
  const ClientConfig& config() const { return config_; }
  // OK while the master answers heartbeats.
  absl::Status HealthCheck();

  // Memory for the zero-copy calls. INVALID_PARAMS for an empty range or one that overlaps a
  // registered one. Registration does not touch the pages.
  absl::Status RegisterBuffer(void* addr, size_t size);
  absl::Status UnregisterBuffer(void* addr);

  // Zero-copy puts: the object is the bytes of the slice (or the concatenation of the slices).
  std::vector<absl::Status> BatchPutFrom(absl::Span<const std::string> keys,
                                         absl::Span<const Slice> values,
                                         const ReplicateConfig& config = {});
  std::vector<absl::Status> BatchPutParts(absl::Span<const std::string> keys,
                                          absl::Span<const std::vector<Slice>> parts,
                                          const ReplicateConfig& config = {});
  absl::Status PutFrom(const std::string& key, Slice value, const ReplicateConfig& config = {});

  // Zero-copy gets: the object's size on success (the bytes are in the slice, or scattered over
  // the slices in order). BUFFER_OVERFLOW if the slices are smaller than the object.
  std::vector<absl::StatusOr<uint64_t>> BatchGetInto(absl::Span<const std::string> keys,
                                                     absl::Span<const Slice> buffers);
  std::vector<absl::StatusOr<uint64_t>> BatchGetIntoParts(
      absl::Span<const std::string> keys, absl::Span<const std::vector<Slice>> parts);
  absl::StatusOr<uint64_t> GetInto(const std::string& key, Slice buffer);

  // Copying puts and gets: values written from and read into their own memory where no NIC needs
  // registered memory (LocalNeedsRegistration); where RDMA is in use, staged through the local
  // buffer (a value larger than it is BUFFER_OVERFLOW). With local_buffer_size 0 copying puts
  // fail (SPEC.md §5), and so do copying gets over RDMA.
  std::vector<absl::Status> BatchPut(absl::Span<const std::string> keys,
                                     absl::Span<const std::string_view> values,
                                     const ReplicateConfig& config = {});
  absl::Status Put(const std::string& key, std::string_view value,
                   const ReplicateConfig& config = {});
  // The concatenation of `parts`.
  absl::Status PutParts(const std::string& key, absl::Span<const std::string_view> parts,
                        const ReplicateConfig& config = {});
  // Insert or replace (copying and zero-copy): the new value is readable after the call; readers
  // that were handed the old value finish reading the old bytes. `config.soft_pin_action` says
  // what happens to an existing soft pin.
  std::vector<absl::Status> BatchUpsert(absl::Span<const std::string> keys,
                                        absl::Span<const std::string_view> values,
                                        const ReplicateConfig& config = {});
  absl::Status Upsert(const std::string& key, std::string_view value,
                      const ReplicateConfig& config = {});
  std::vector<absl::Status> BatchUpsertFrom(absl::Span<const std::string> keys,
                                            absl::Span<const Slice> values,
                                            const ReplicateConfig& config = {});

  std::vector<absl::StatusOr<std::string>> BatchGet(absl::Span<const std::string> keys);
  absl::StatusOr<std::string> Get(const std::string& key);
  // The copying gets' core, for callers that own the values' memory (the Python wheel's bytes).
  // Once key i's size is known, `allocate(i, size)` returns `size` writable bytes of the caller's
  // (not registered; never called for a key that failed before). The value is read there directly
  // where no NIC needs registered memory (LocalNeedsRegistration), through the local buffer
  // otherwise. Per key: OK once its bytes are all there, or why not (the memory then holds no
  // value). `allocate` runs on the calling thread, during the call: it must not call the client.
  using Allocator = absl::FunctionRef<char*(size_t index, uint64_t size)>;
  std::vector<absl::Status> BatchGetWith(absl::Span<const std::string> keys, Allocator allocate);

  // Whether a complete object exists: a probe, which leases nothing (MasterService::ExistKey).
  std::vector<absl::StatusOr<bool>> BatchExists(Keys keys);
  absl::StatusOr<bool> Exists(const std::string& key);
  std::vector<absl::StatusOr<uint64_t>> BatchGetSize(absl::Span<const std::string> keys);
  absl::StatusOr<uint64_t> GetSize(const std::string& key);

  // OBJECT_HAS_LEASE while a reader holds a lease, unless `force`.
  std::vector<absl::Status> BatchRemove(absl::Span<const std::string> keys, bool force = false);
  absl::Status Remove(const std::string& key, bool force = false);
  // Removes complete, unleased objects whose key matches the RE2 pattern; returns how many.
  absl::StatusOr<uint64_t> RemoveByRegex(const std::string& pattern);
  absl::StatusOr<uint64_t> RemoveAll();

  // Ranged reads: for key i, each range copies object bytes [offset, offset + dst.size) to dst.
  // Per key and range: the bytes copied, or an error (OBJECT_NOT_FOUND for a missing key;
  // INVALID_PARAMS for a range past the object's end or a destination outside registered
  // memory). A failed range does not stop the others.
  struct Range {
    uint64_t offset = 0;  // in the object
    Slice dst;
    // If set, dst must lie inside the registered buffer that holds this address (not merely
    // inside some registered memory).
    const void* buffer = nullptr;
  };
  std::vector<std::vector<absl::StatusOr<uint64_t>>> BatchGetRanges(
      absl::Span<const std::string> keys, absl::Span<const std::vector<Range>> ranges);

  // The segments mounted at the master (for cluster checks).
  absl::StatusOr<std::vector<SegmentInfo>> ListSegments();
  // Where each object's replicas are (this leases the objects, like a read).
  std::vector<absl::StatusOr<ReplicaList>> BatchGetReplicas(absl::Span<const std::string> keys);
  // How this client reaches `segment`: "memcpy", "shm", "tcp" or "rdma"; "" if it cannot.
  std::string TransportTo(const std::string& segment);

 private:
  struct Located;

  explicit Client(ClientConfig config);
  static absl::Status Closed();  // what a call of a closed client gets
  absl::Status Start();
  // The segment's lifecycle (client_segment.cc); the gets are in client_reads.cc.
  void HeartbeatLoop();
  absl::Duration HeartbeatIntervalFor(const HeartbeatReply& reply) const;
  // Mounts the segment with its index, and starts the index afresh if the master refuses it.
  absl::Status Mount();
  // Fetches the changes to the index from the master, and mounts again when the master has lost
  // the segment, until Close().
  void IndexSyncLoop();
  void Prefault();  // config_.prefault_segment
  // The segment's gauges on the process's /metrics, from Start() to Close().
  void RegisterSegmentMetrics();
  void UnregisterSegmentMetrics();

  // `unregistered`: the parts are the caller's own memory (TransferRequest::local_unregistered).
  std::vector<absl::Status> PutLocked(absl::Span<const std::string> keys,
                                      absl::Span<const std::vector<Slice>> parts,
                                      const ReplicateConfig& config, bool upsert,
                                      bool unregistered = false)
      ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // The copying puts: each value written from where it is (one copy) where no NIC needs
  // registered memory; otherwise staged through the local buffer, group by group.
  std::vector<absl::Status> PutCopies(absl::Span<const std::string> keys,
                                      absl::Span<const std::string_view> values,
                                      const ReplicateConfig& config, bool upsert);
  // The replicas of each key, best first, and when its lease ends.
  std::vector<absl::StatusOr<Located>> Locate(absl::Span<const std::string> keys)
      ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // Object bytes [offset, offset + dst.size) go to dst.
  struct Piece {
    uint64_t offset = 0;
    Slice dst;
  };
  // Checks that `parts` hold an object of `size` bytes in registered memory; maps the object's
  // bytes onto them in order.
  absl::StatusOr<std::vector<Piece>> Scatter(const std::vector<Slice>& parts, uint64_t size) const;
  // Reads each located object's pieces (one transfer batch per round), moving on to the next
  // replica for objects whose read failed. Per key: OK, or why not (errors of `located` pass
  // through).
  // `unregistered`: the pieces' memory is the caller's own (TransferRequest::local_unregistered).
  std::vector<absl::Status> ReadPieces(absl::Span<const absl::StatusOr<Located>> located,
                                       absl::Span<const std::vector<Piece>> pieces,
                                       bool unregistered = false)
      ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // BatchGetWith through the local buffer (where the NIC needs registered memory).
  std::vector<absl::Status> GetStaged(absl::Span<const std::string> keys,
                                      std::vector<absl::StatusOr<Located>> located,
                                      Allocator allocate) ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // Tells the master (with its next call) that the reads of `located` are done, so their leases no
  // longer keep the objects from eviction.
  void ReleaseLeases(absl::Span<const absl::StatusOr<Located>> located)
      ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // Whether a ranged read may write to range.dst.
  bool DestinationOk(const Range& range) const;
  // Reads each located object into its slices: its size, or an error.
  std::vector<absl::StatusOr<uint64_t>> Read(absl::Span<const absl::StatusOr<Located>> located,
                                             absl::Span<const std::vector<Slice>> parts)
      ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // The bodies of BatchGetRanges and BatchGetWith, which record the calls.
  std::vector<std::vector<absl::StatusOr<uint64_t>>> BatchGetRangesImpl(
      absl::Span<const std::string> keys, absl::Span<const std::vector<Range>> ranges);
  std::vector<absl::Status> BatchGetWithImpl(absl::Span<const std::string> keys,
                                             Allocator allocate);
  std::vector<absl::StatusOr<uint64_t>> GetLocked(absl::Span<const std::string> keys,
                                                  absl::Span<const std::vector<Slice>> parts)
      ABSL_SHARED_LOCKS_REQUIRED(state_mu_);
  // 0 = this process, 1 = this host, 2 = elsewhere, 3 = cannot be reached.
  int Distance(const std::string& segment);

  const ClientConfig config_;
  std::unique_ptr<MasterClient> master_;
  std::unique_ptr<engine::TransferEngine> engine_;
  std::string segment_name_;
  void* segment_ = nullptr;    // global_segment_size bytes of shared memory, or null
  MappedMemory local_buffer_;  // local_buffer_size bytes of staging memory, or none
  std::unique_ptr<StagingBuffer> staging_;

  mutable absl::Mutex state_mu_;  // shared by calls, exclusive for Close()
  bool closed_ ABSL_GUARDED_BY(state_mu_) = false;

  absl::Notification stop_heartbeat_;
  std::thread heartbeat_;
  std::thread index_sync_;
  std::thread prefault_;  // config_.prefault_segment
  // The index of the objects in the segment, by offset, and where the master's changes to it are.
  struct Indexed {
    std::string key;
    uint64_t size = 0;
    uint64_t put_id = 0;
  };
  absl::Mutex index_mu_;  // held across a mount, so no change is applied during one
  absl::flat_hash_map<uint64_t, Indexed> index_ ABSL_GUARDED_BY(index_mu_);
  uint64_t mount_id_ ABSL_GUARDED_BY(index_mu_) = 0;  // 0: not known
  // index_'s object count and their bytes, for the gauges (read without index_mu_).
  std::atomic<uint64_t> indexed_objects_{0};
  std::atomic<uint64_t> indexed_bytes_{0};
  void IndexAdd(uint64_t offset, Indexed object) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_);
  void IndexErase(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_);
  uint64_t acked_ ABSL_GUARDED_BY(index_mu_) = 0;  // last change applied
  // Set before the heartbeat thread starts, then used by it alone.
  absl::Duration heartbeat_interval_;
  uint64_t epoch_ = 0;  // of the master that answered the last heartbeat
};

}  // namespace mooncake::client
