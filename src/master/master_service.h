// The master's object index: what is stored where, who may read it, and when space is reclaimed.
//
// Objects are immutable once complete. A put is PutStart (space is allocated on distinct segments;
// the object is `processing`), the client's writes, then PutEnd (`complete`, readable) or
// PutRevoke (space freed). Readers get replica locations with a lease; a leased object is neither
// removed nor evicted until the lease ends. Every per-key call takes a batch: one request, many
// keys, one result per key, in order; single-key calls are batches of one.
//
// Thread safety: all public methods are thread-safe. The object table is split into shards, each
// with its own mutex, so calls from many clients proceed in parallel. Lock order: a shard's mutex,
// then SegmentManager's; never the other way.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/keys.h"
#include "common/metrics.h"
#include "common/strings.h"
#include "common/tenant.h"
#include "master/client_registry.h"
#include "master/index_staging.h"
#include "master/master_config.h"
#include "master/object_key.h"
#include "master/segment_manager.h"
#include "master/tenants.h"
#include "nlohmann/json.hpp"

namespace mooncake::master {

// What an upsert does to the soft pin of the object it replaces.
enum class SoftPinAction : uint8_t {
  kPreserve,  // keep the current deadline (none if the object was not pinned)
  kEnable,    // a new pin from when the new value becomes readable
  kDisable,   // no pin
};

struct ReplicateConfig {
  uint32_t replica_num = 1;
  bool with_soft_pin = false;
  bool with_hard_pin = false;
  std::vector<std::string> preferred_segments;  // "host:port" names, tried first in order
  // How long the soft pin lasts from PutEnd; unset: default_kv_soft_pin_ttl.
  std::optional<absl::Duration> soft_pin_ttl;
  // Insert or replace: an existing complete object gets new replicas, which replace the old ones
  // at PutEnd; readers holding a lease keep reading the old bytes, which are freed when their
  // lease ends.
  bool upsert = false;
  SoftPinAction soft_pin_action = SoftPinAction::kPreserve;  // upserts of existing objects
};

// A batch call's keys (common/keys.h) are views of the caller's strings, or of the request's text:
// the RPC layer copies no key out of a request body.
using mooncake::Keys;

struct PutItem {
  std::string key;
  uint64_t size = 0;
};

struct ReplicaList {
  uint64_t size = 0;
  ReplicaLocations replicas;
  absl::Duration lease;   // how long from the request the lease lasts, at most
  uint32_t lease_id = 0;  // names the lease in ReleaseLeases
};

// A reader's lease, to end: the key and the lease_id its GetReplicaList answer carried.
struct LeaseRelease {
  std::string_view key;  // the caller's, for the call
  uint32_t lease_id = 0;
};

struct HeartbeatResult {
  bool remount = false;  // the master does not know this client (restarted, or declared it dead)
  uint64_t epoch = 0;    // this master instance
};

struct MasterStats {
  uint64_t objects = 0;
  uint64_t processing = 0;
  uint64_t leased = 0;
  uint64_t soft_pinned = 0;
  uint64_t hard_pinned = 0;
  uint64_t key_bytes = 0;
  uint64_t total_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t evicted_objects = 0;
  uint64_t evicted_bytes = 0;
  size_t segments = 0;
  size_t clients = 0;
};

class MasterService {
 public:
  MasterService(MasterConfig config, Clock* clock = Clock::Real(),
                MetricsRegistry* metrics = &MetricsRegistry::Default());
  ~MasterService();  // StopMaintenance()

  MasterService(const MasterService&) = delete;
  MasterService& operator=(const MasterService&) = delete;

  // Segments.
  // A name another client had mounted is taken over (see SegmentManager::Mount): the replicas on
  // the old one are dropped.
  absl::Status MountSegment(std::string_view client_id, std::string_view name, uint64_t base,
                            uint64_t size, uint64_t incarnation = 0);
  // A mount whose owner keeps an index of the complete objects in its segment (see
  // segment_manager.h): the objects of `index` become readable again (those this master already
  // holds with a newer put are dropped from the owner's index), and the owner is kept up to date
  // through SyncIndex. Restored objects are held as leased for default_kv_lease_ttl: readers of
  // the master that lost its state may still be reading them. Returns the mount's id.
  // INVALID_PARAMS for an entry with an invalid key or a range that does not fit.
  // `staged`: how many entries StageSegmentIndex took for this mount before (0: none); they are
  // restored together with `index`. OBJECT_NOT_FOUND if the master holds another number of staged
  // entries for it (they went with a restart, or were dropped): the owner stages them again.
  absl::StatusOr<uint64_t> MountIndexedSegment(std::string_view client_id, std::string_view name,
                                               uint64_t base, uint64_t size, uint64_t incarnation,
                                               std::vector<IndexEntry> index, uint64_t staged = 0);
  // An index too large for one request comes in parts: all but the last are staged here, the last
  // comes with the mount, which restores them all at once (until then the segment is not
  // mounted). `first` starts anew, dropping what this client staged for the segment before.
  // Returns how many entries are staged. INVALID_PARAMS for an invalid key; BUFFER_OVERFLOW when
  // the master holds IndexStaging::kMaxBytes of staged index already. A staging no part was
  // added to for IndexStaging::kIdle is dropped.
  absl::StatusOr<uint64_t> StageSegmentIndex(std::string_view client_id, std::string_view name,
                                             bool first, std::vector<IndexEntry> entries);
  // The owner fetches the changes to its index (SegmentManager::Sync).
  absl::StatusOr<IndexSync> SyncIndex(std::string_view client_id, std::string_view name,
                                      uint64_t mount_id, uint64_t acked, absl::Duration wait);
  // Unmounts and drops every replica in the segment; objects left without a replica are removed.
  absl::Status UnmountSegment(std::string_view client_id, std::string_view name);
  std::vector<SegmentInfo> ListSegments() const { return segments_.List(); }

  // `segments`: the segments the client serves; remount is also asked when one of them is not
  // mounted under this client (someone unmounted it, or took its name over).
  HeartbeatResult Heartbeat(std::string_view client_id,
                            absl::Span<const std::string> segments = {});

  // Puts. Per key: the replicas to write (fewer than asked when fewer segments have room), or
  // OBJECT_ALREADY_EXISTS (complete, or processing and younger than put_start_discard_timeout),
  // NO_AVAILABLE_HANDLE, INVALID_KEY, INVALID_PARAMS.
  std::vector<absl::StatusOr<ReplicaLocations>> PutStart(std::string_view client_id,
                                                         absl::Span<const PutItem> items,
                                                         const ReplicateConfig& config);
  // OBJECT_NOT_FOUND if no put of the key is in progress (never started, revoked, reclaimed);
  // ILLEGAL_CLIENT if another client started it.
  std::vector<absl::Status> PutEnd(std::string_view client_id, Keys keys);
  std::vector<absl::Status> PutRevoke(std::string_view client_id, Keys keys);

  // Reads: complete replicas with a lease; OBJECT_NOT_FOUND, or REPLICA_IS_NOT_READY while the
  // object is processing. A lease protects a read in flight: it lasts until every reader holding
  // it has released it (ReleaseLeases), or default_kv_lease_ttl after the last grant at most (a
  // reader that died releases nothing).
  std::vector<absl::StatusOr<ReplicaList>> GetReplicaList(Keys keys);
  // Ends one reader's lease on each key. Releases of a lease that has ended already (its id is
  // not the object's current one) and of unknown keys are ignored.
  void ReleaseLeases(absl::Span<const LeaseRelease> releases);
  // Whether a complete object exists. A probe, not a use: it grants no lease and does not count
  // as an access for eviction (SGLang probes every page before each put and prefetch).
  std::vector<absl::StatusOr<bool>> ExistKey(Keys keys);
  std::vector<absl::StatusOr<uint64_t>> GetSize(Keys keys);

  // OBJECT_HAS_LEASE while leased (unless `force`), REPLICA_IS_NOT_READY while processing.
  std::vector<absl::Status> Remove(Keys keys, bool force = false);
  // Removes the complete, unleased objects of `tenant` whose key (the client's, without the
  // tenant) matches `pattern` (RE2 syntax, full match of any part: RE2::PartialMatch).
  // INVALID_PARAMS for a pattern that does not compile.
  absl::StatusOr<uint64_t> RemoveByRegex(std::string_view pattern,
                                         std::string_view tenant = kDefaultTenant);
  // Removes every complete, unleased object of `tenant`; returns how many.
  uint64_t RemoveAll(std::string_view tenant = kDefaultTenant);

  // The keys of `tenant` (the client's, without the tenant).
  std::vector<std::string> AllKeys(std::string_view tenant = kDefaultTenant) const;

  // Tenants (common/tenant.h): what each holds and, with quotas on, what each may hold.
  // Quotas are set up before the master serves: INVALID_PARAMS for a policy file that cannot be
  // read or is malformed (tenants.h).
  absl::Status EnableTenantQuotas(TenantOptions options);
  Tenants& tenants() { return *tenants_; }
  const Tenants& tenants() const { return *tenants_; }

  // Counts kept as objects change, read without touching the object table (for /metrics).
  struct Counts {
    uint64_t objects = 0;
    uint64_t processing = 0;
    uint64_t hard_pinned = 0;
    uint64_t key_bytes = 0;
    uint64_t evicted_objects = 0;  // since the start
    uint64_t evicted_bytes = 0;
  };
  Counts counts() const;
  // The whole record of one key, for the admin port.
  absl::StatusOr<nlohmann::json> Describe(std::string_view key) const;
  // Everything, walking the whole object table (for /metrics/summary and tests).
  MasterStats Stats() const;
  // Clients heard from within the liveness TTL.
  size_t client_count() const { return clients_.size(); }

  // One pass of the periodic work: dead clients, puts never ended, the eviction watermark.
  void RunMaintenance();
  // Evicts about `target_bytes` (approximate LRU) of the pool; returns bytes freed. With
  // `tenant`, only that tenant's objects, and bytes are counted as quotas count them (each
  // object's size once).
  uint64_t Evict(uint64_t target_bytes, std::optional<std::string_view> tenant = std::nullopt);

  // Runs RunMaintenance() every config.maintenance_interval on a thread of its own.
  void StartMaintenance();
  void StopMaintenance();

  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Starts serving as the leader of a new term (high availability): with an epoch other than the
  // current one, forgets every segment and object (another leader may have served in between;
  // the segments' owners mount them again when they see the new epoch), then answers with
  // `epoch`. The same epoch again (a leader whose lease was renewed after a gap) changes nothing.
  void BeginTerm(uint64_t epoch);
  // How many client ids the object records hold (for tests and /metrics).
  size_t interned_clients() const;
  // Keys noted as being written, over all shards: bounded however many puts end, with or without
  // maintenance passes (for tests).
  size_t noted_puts() const;
  const MasterConfig& config() const { return config_; }

 private:
  enum class State : uint8_t { kProcessing, kComplete };

  struct Object {
    uint64_t size = 0;
    int64_t put_start_us = 0;
    int64_t last_access_us = 0;
    int64_t lease_deadline_us = 0;
    // Complete: when the soft pin ends (0: not pinned). Processing: the pin's length, started by
    // PutEnd when soft_pin_requested.
    int64_t soft_pin_deadline_us = 0;
    uint32_t lease_id = 0;  // the current lease (a new one starts when none is live)
    uint16_t readers = 0;   // holders of the current lease that have not released it
    State state = State::kProcessing;
    bool hard_pin = false;
    bool soft_pin_requested = false;
    uint32_t owner = 0;   // ClientIndex() of the client that started the put
    uint64_t put_id = 0;  // complete: names the put that wrote the value (owners' indexes)
    absl::InlinedVector<Replica, 1> replicas;
  };
  using ObjectTable = absl::flat_hash_map<ObjectKey, Object, ObjectKeyHash, ObjectKeyEq>;

  static constexpr size_t kShards = 64;
  // A replacement being written for a complete object (an upsert between PutStart and PutEnd).
  struct Upsert {
    uint64_t size = 0;
    int64_t put_start_us = 0;
    uint32_t owner = 0;
    bool hard_pin = false;
    SoftPinAction soft_pin_action = SoftPinAction::kPreserve;
    int64_t soft_pin_ttl_us = 0;
    absl::InlinedVector<Replica, 1> replicas;
  };
  // Replicas an upsert replaced while readers held a lease: freed once the lease has ended.
  struct Retired {
    int64_t free_at_us = 0;
    absl::InlinedVector<Replica, 1> replicas;
  };
  struct Shard {
    mutable absl::Mutex mu;
    ObjectTable objects ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, Upsert> upserts ABSL_GUARDED_BY(mu);
    std::vector<Retired> retired ABSL_GUARDED_BY(mu);
    // Keys whose put started since the last sweep or that were still being written at it: where
    // maintenance looks for puts never ended, instead of walking every object. A key may be here
    // twice, or after its put ended; a sweep checks each (SweepProcessingLocked).
    std::vector<std::string> processing ABSL_GUARDED_BY(mu);
    size_t processing_after_sweep ABSL_GUARDED_BY(mu) = 0;
  };

  // Mounts (with `index`, if not null), dropping the replicas of a segment of the same name that
  // another client had mounted.
  absl::StatusOr<Mounted> Mount(std::string_view client_id, std::string_view name, uint64_t base,
                                uint64_t size, uint64_t incarnation,
                                const std::vector<IndexEntry>* index);
  Shard& ShardOf(std::string_view key) const;
  size_t ShardIndexOf(std::string_view key) const;
  // Calls `visit(shard, i)` under `shard`'s lock for every i in `indexes` (into `keys`), shard by
  // shard: each lock is taken once per call, and the table positions of a shard's keys are
  // prefetched before the first lookup, so that their cache misses overlap instead of following
  // one another (for a large table they are most of a lookup's cost).
  void ForEachKeyByShard(Keys keys, absl::Span<const uint32_t> indexes,
                         absl::FunctionRef<void(Shard& shard, uint32_t i)> visit) const;
  // The same, for the keys key_of(i).
  void ForEachKeyByShard(absl::FunctionRef<absl::string_view(uint32_t i)> key_of,
                         absl::Span<const uint32_t> indexes,
                         absl::FunctionRef<void(Shard& shard, uint32_t i)> visit) const;
  // A put's soft pin length: the one it asked for or the default, at most max_kv_soft_pin_ttl.
  int64_t SoftPinTtlUs(const ReplicateConfig& config) const;
  absl::Status ValidateKey(std::string_view key) const;
  static absl::Status ValidateClientId(std::string_view client_id);  // 1 to 256 bytes
  // INVALID_PARAMS naming segment `name` and the entry when an index entry's key is invalid.
  absl::Status ValidateIndexKeys(std::string_view name, const std::vector<IndexEntry>& index) const;
  bool Leased(const Object& object, int64_t now_us) const {
    return object.readers > 0 && object.lease_deadline_us > now_us;
  }
  // Under the shard's lock: starts replacing the complete object `existing` (an upsert).
  absl::StatusOr<Replicas> TryPlaceUpsert(Shard& shard, const PutItem& item,
                                          const ReplicateConfig& config, uint32_t owner,
                                          int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Takes an object's replicas away: freed now, or, while leased, when the lease ends (their
  // owners drop them from their index now).
  void RetireReplicasLocked(Shard& shard, Object& object, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // PutEnd of an upsert: the new replicas replace the old ones, which are freed now or, while
  // leased, when the lease ends.
  void FinishUpsertLocked(Shard& shard, std::string_view key, Object& object, Upsert& upsert,
                          int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Keeps in shard.processing only the keys still being written, once each, and reclaims those
  // whose put started at or before `release_before` (INT64_MIN: none). Returns how many it
  // reclaimed.
  uint64_t SweepProcessingLocked(Shard& shard, int64_t release_before)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Frees the space of replicas no reader may still be reading.
  void FreeRetired(int64_t now);
  // Frees an object's space (and that of an upsert of it in progress) and erases it.
  // REQUIRES: shard.mu held.
  void EraseLocked(Shard& shard, ObjectTable::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Updates counts_ for an object entering (+1) or leaving (-1) the table.
  void Count(std::string_view key, const Object& object, int sign);
  // Under the shard's lock: refuses an existing key (or preempts an abandoned put), allocates the
  // replicas and records the object as processing, owned by ClientIndex `owner`. `reserved`, when
  // not null, is the allocation made for the key beforehand (SegmentManager::AllocateEach): it is
  // used instead of allocating, and set to nullopt once taken.
  // REQUIRES: owner_release_mu_ held (shared) since `owner` was interned.
  absl::StatusOr<Replicas> TryPlaceLocked(Shard& shard, const PutItem& item,
                                          const ReplicateConfig& config, uint32_t owner,
                                          int64_t now,
                                          std::optional<absl::StatusOr<Replicas>>* reserved)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) ABSL_SHARED_LOCKS_REQUIRED(owner_release_mu_);
  // A small number standing for `client_id` in object records. Only clients that own an object
  // (or an upsert) are interned, and each maintenance pass releases the ids no record holds, so
  // the table holds no more names than there are owners.
  uint32_t ClientIndex(std::string_view client_id);
  // ClientIndex of a client already interned, or nullopt.
  std::optional<uint32_t> FindClientIndex(std::string_view client_id) const;
  std::string ClientName(uint32_t index) const;
  // Starts a pass of releasing client ids: returns how many are interned now; ids interned or
  // looked up from here on are kept this pass.
  size_t MarkClientIndexes();
  // Releases the ids below in_use.size() that no record holds (in_use[i] false) and that were not
  // used since MarkClientIndexes().
  void ReleaseClientIndexes(const std::vector<bool>& in_use);
  // Releases the ids no object or upsert holds: a walk of every object (Mark, walk, Release).
  void ReleaseUnusedClientIds();
  // PutEnd and PutRevoke: for each key whose put `client_id` started and has not ended, runs
  // `finish` under the shard's lock (`i`: the key's index in `keys`; keys are visited shard by
  // shard, each shard's lock taken once). OBJECT_NOT_FOUND when no put is in progress (except, with
  // `complete_is_done`, for a complete object), ILLEGAL_CLIENT when another client started it.
  std::vector<absl::Status> FinishPuts(
      std::string_view op, std::string_view client_id, Keys keys, bool complete_is_done,
      absl::FunctionRef<void(Shard&, ObjectTable::iterator, size_t i)> finish,
      absl::FunctionRef<void(Shard&, ObjectTable::iterator,
                             absl::flat_hash_map<std::string, Upsert>::iterator, size_t i)>
          finish_upsert);
  // Removes complete, unleased objects whose key `match`es; returns how many.
  uint64_t RemoveUnleasedWhere(absl::FunctionRef<bool(std::string_view)> match);
  // Admits each of `indexes` (into `items`) against its tenant's quota, evicting the tenant's own
  // objects (twice per call at most) when it would go over; sets placed[i] for those refused.
  // Returns the keys to place: those admitted (also added to `admitted`, their bytes reserved
  // until ReleaseAdmitted) and those whose objects are there already (their puts are refused).
  std::vector<uint32_t> AdmitToQuotas(absl::Span<const PutItem> items,
                                      absl::Span<const uint32_t> indexes,
                                      const ReplicateConfig& config,
                                      std::vector<absl::StatusOr<Replicas>>& placed,
                                      std::vector<uint32_t>& admitted);
  void ReleaseAdmitted(absl::Span<const PutItem> items, absl::Span<const uint32_t> indexes);
  // Drops replicas on `segment` from every object; removes objects left with none.
  void DropSegmentReplicas(SegmentId segment);
  // Counts `keys` handled by `op` (one of kKeyOps), `errors` of them failed.
  void CountOp(std::string_view op, size_t keys, size_t errors);
  static constexpr std::array<std::string_view, 9> kKeyOps = {
      "put_start", "put_end", "put_revoke",      "get_replica_list", "exist_key",
      "get_size",  "remove",  "remove_by_regex", "remove_all"};
  // A new put id: larger than every one this master handed out or restored.
  uint64_t NextPutId() { return next_put_id_.fetch_add(1, std::memory_order_relaxed); }
  // Waits (index_ack_timeout at most) until owners acknowledged the changes up to `barrier`.
  void AwaitOwners(const IndexBarrier& barrier);

  const MasterConfig config_;
  Clock* const clock_;
  MetricsRegistry* const metrics_;
  std::atomic<uint64_t> epoch_;
  std::atomic<uint64_t> next_put_id_;
  SegmentManager segments_;
  ClientRegistry clients_;
  std::unique_ptr<Tenants> tenants_;
  mutable std::array<Shard, kShards> shards_;

  std::atomic<uint64_t> objects_{0};
  std::atomic<uint64_t> processing_{0};
  std::atomic<uint64_t> hard_pinned_{0};
  std::atomic<uint64_t> key_bytes_{0};
  std::array<Counter*, kKeyOps.size()> op_keys_{};    // mooncake_master_key_operations_total
  std::array<Counter*, kKeyOps.size()> op_errors_{};  // mooncake_master_key_errors_total
  Counter* leases_granted_;
  Counter* heartbeats_;
  Counter* clients_expired_;
  Counter* restored_objects_;
  Counter* evicted_objects_total_;
  Counter* evicted_bytes_total_;
  Counter* index_ack_timeouts_;
  std::atomic<int64_t> last_ack_warning_us_{0};
  std::atomic<uint64_t> evicted_objects_{0};
  std::atomic<uint64_t> evicted_bytes_{0};
  absl::Mutex evict_mu_;  // one eviction at a time

  IndexStaging staging_;  // index parts for mounts to come

  // Held shared by a PutStart from interning its client's id until its objects record it, and
  // exclusively by ReleaseUnusedClientIds while it marks the start of a pass: a PutStart's id is
  // then either held by objects the pass's walk sees or used after the mark, and never released
  // between its interning and its objects.
  absl::Mutex owner_release_mu_;
  mutable absl::Mutex client_names_mu_;
  absl::flat_hash_map<std::string, uint32_t> client_indexes_ ABSL_GUARDED_BY(client_names_mu_);
  std::vector<std::string> client_names_ ABSL_GUARDED_BY(client_names_mu_);  // "" = free
  std::vector<uint32_t> free_client_indexes_ ABSL_GUARDED_BY(client_names_mu_);
  // Indexes used since the last MarkClientIndexes(): not released by that pass.
  std::vector<bool> client_index_touched_ ABSL_GUARDED_BY(client_names_mu_);
  // Client ids the last pass that released unused ones found in use: the next such pass (a walk
  // of every object) waits until twice as many (plus 64) are interned, so that its cost is shared
  // by the ids it may release. Maintenance thread only.
  size_t interned_after_release_ = 0;

  std::unique_ptr<absl::Notification> stop_maintenance_;
  std::thread maintenance_;
};

}  // namespace mooncake::master
