#include "master/master_service.h"

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/functional/function_ref.h"
#include "absl/hash/hash.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/units.h"
#include "re2/re2.h"

namespace mooncake::master {

int64_t MasterService::SoftPinTtlUs(const ReplicateConfig& config) const {
  return absl::ToInt64Microseconds(std::min(
      config.soft_pin_ttl.value_or(config_.default_kv_soft_pin_ttl), config_.max_kv_soft_pin_ttl));
}
namespace {

constexpr size_t kMaxClientIdBytes = 256;
constexpr size_t kMaxRegexBytes = 4096;

absl::Status ValidateClientId(std::string_view client_id) {
  if (client_id.empty() || client_id.size() > kMaxClientIdBytes) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("client_id must be 1 to {} bytes", kMaxClientIdBytes));
  }
  return absl::OkStatus();
}

uint64_t RandomEpoch() {
  absl::BitGen gen;
  return absl::Uniform<uint64_t>(gen, 1, UINT64_MAX);
}

}  // namespace

MasterService::MasterService(MasterConfig config, Clock* clock, MetricsRegistry* metrics)
    : config_(std::move(config)),
      clock_(clock),
      metrics_(metrics),
      epoch_(RandomEpoch()),
      // Put ids start from the wall clock, so that a restarted master's puts come after those
      // of its predecessor that owners still report (and restored ids push it further).
      next_put_id_(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()))),
      segments_(config_.allocation_strategy, config_.allocation_alignment, config_.seed,
                config_.index_wait_spin),
      tenants_(*Tenants::Create(TenantOptions{})),  // quotas off: nothing to read
      leases_granted_(&metrics_->GetCounter("mooncake_master_leases_granted_total",
                                            "Read leases granted or extended (GetReplicaList, "
                                            "ExistKey)")),
      heartbeats_(&metrics_->GetCounter("mooncake_master_heartbeats_total",
                                        "Heartbeats received from clients and stores")),
      clients_expired_(&metrics_->GetCounter(
          "mooncake_master_clients_expired_total",
          "Clients declared dead after no heartbeat for client_live_ttl_sec")),
      restored_objects_(&metrics_->GetCounter(
          "mooncake_master_restored_replicas_total",
          "Replicas made readable again from the index a segment's owner reported at its mount")),
      evicted_objects_total_(
          &metrics_->GetCounter("mooncake_master_evicted_objects_total", "Objects evicted")),
      evicted_bytes_total_(
          &metrics_->GetCounter("mooncake_master_evicted_bytes_total", "Bytes evicted")),
      index_ack_timeouts_(&metrics_->GetCounter(
          "mooncake_master_index_ack_timeouts_total",
          "Puts and removes answered before every owner acknowledged the change to its index "
          "(index_ack_timeout)")) {
  for (size_t i = 0; i < kKeyOps.size(); ++i) {
    const MetricLabels labels = {{"op", std::string(kKeyOps[i])}};
    op_keys_[i] = &metrics_->GetCounter("mooncake_master_key_operations_total",
                                        "Keys handled by the master, by operation", labels);
    op_errors_[i] = &metrics_->GetCounter("mooncake_master_key_errors_total",
                                          "Keys whose operation failed, by operation", labels);
  }
}

MasterService::~MasterService() { StopMaintenance(); }

absl::Status MasterService::EnableTenantQuotas(TenantOptions options) {
  absl::StatusOr<std::unique_ptr<Tenants>> tenants = Tenants::Create(std::move(options));
  if (!tenants.ok()) return tenants.status();
  if (objects_.load() != 0) {
    return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                     "tenant quotas are set up before the master holds objects");
  }
  tenants_ = *std::move(tenants);
  return absl::OkStatus();
}

size_t MasterService::ShardIndexOf(std::string_view key) const {
  // The top bits of the hash: each shard's table takes its slot (hash >> 7) and its control byte
  // (the low 7 bits) from the same hash. Sharding by the low bits left every key of a shard with
  // the same 6 of those 7 bits: nearly every probe then matched several slots and compared keys.
  static_assert(kShards == 64);
  return absl::HashOf(AsAbsl(key)) >> 58;
}

MasterService::Shard& MasterService::ShardOf(std::string_view key) const {
  return shards_[ShardIndexOf(key)];
}

absl::Status MasterService::ValidateKey(std::string_view internal_key) const {
  // The limit is on the client's key; a tenant's name comes on top.
  const std::string_view key = UserKey(internal_key);
  if (key.empty()) return MakeError(ErrorCode::INVALID_KEY, "key is empty");
  if (key.size() > config_.max_key_bytes) {
    return MakeError(ErrorCode::INVALID_KEY, fmt::format("key is {} bytes; the limit is {}",
                                                         key.size(), config_.max_key_bytes));
  }
  return absl::OkStatus();
}

absl::Status MasterService::ValidateIndexKeys(std::string_view name,
                                              const std::vector<IndexEntry>& index) const {
  for (const IndexEntry& entry : index) {
    if (absl::Status valid = ValidateKey(entry.key); !valid.ok()) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("segment '{}': index entry at offset {}: {}", name, entry.offset,
                                   valid.message()));
    }
  }
  return absl::OkStatus();
}

void MasterService::CountOp(std::string_view op, size_t keys, size_t errors) {
  for (size_t i = 0; i < kKeyOps.size(); ++i) {
    if (kKeyOps[i] != op) continue;
    op_keys_[i]->Increment(keys);
    if (errors > 0) op_errors_[i]->Increment(errors);
    return;
  }
  SPDLOG_ERROR("no counter for key operation '{}'", op);  // a programming error
}

void MasterService::EraseLocked(Shard& shard,
                                absl::flat_hash_map<std::string, Object>::iterator it) {
  segments_.Free(it->second.replicas.data(), it->second.replicas.size(),
                 /*indexed=*/it->second.state == State::kComplete);
  if (!shard.upserts.empty()) {
    if (auto up = shard.upserts.find(it->first); up != shard.upserts.end()) {
      segments_.Free(up->second.replicas.data(), up->second.replicas.size(), /*indexed=*/false);
      shard.upserts.erase(up);
    }
  }
  Count(it->first, it->second, -1);
  shard.objects.erase(it);
}

void MasterService::Count(const std::string& key, const Object& object, int sign) {
  const auto add = [sign](std::atomic<uint64_t>& counter, uint64_t n) {
    if (sign > 0) {
      counter.fetch_add(n, std::memory_order_relaxed);
    } else {
      counter.fetch_sub(n, std::memory_order_relaxed);
    }
  };
  add(objects_, 1);
  add(key_bytes_, key.size());
  tenants_->Count(key, object.size, sign);
  if (object.state == State::kProcessing) add(processing_, 1);
  if (object.hard_pin) add(hard_pinned_, 1);
}

MasterService::Counts MasterService::counts() const {
  return Counts{objects_.load(),   processing_.load(),      hard_pinned_.load(),
                key_bytes_.load(), evicted_objects_.load(), evicted_bytes_.load()};
}

absl::StatusOr<Mounted> MasterService::Mount(std::string_view client_id, std::string_view name,
                                             uint64_t base, uint64_t size, uint64_t incarnation,
                                             const std::vector<IndexEntry>* index) {
  if (absl::Status valid = ValidateClientId(client_id); !valid.ok()) return valid;
  absl::StatusOr<Mounted> mounted =
      segments_.Mount(name, base, size, client_id, incarnation, index);
  if (!mounted.ok()) return mounted.status();
  if (mounted->replaced) {
    spdlog::warn(
        "segment {} mounted by client {} replaces the one client {} mounted: a new "
        "process serves that endpoint; the objects in the old one are dropped",
        name, client_id, mounted->replaced->client_id);
    DropSegmentReplicas(mounted->replaced->id);
  }
  if (clients_.Touch(client_id, clock_->NowMicros())) {
    spdlog::info("client {} joined (mounting a segment)", client_id);
  }
  spdlog::info("segment {} of client {} mounted: {}", name, client_id, FormatByteSize(size));
  return mounted;
}

absl::Status MasterService::MountSegment(std::string_view client_id, std::string_view name,
                                         uint64_t base, uint64_t size, uint64_t incarnation) {
  return Mount(client_id, name, base, size, incarnation, nullptr).status();
}

absl::StatusOr<uint64_t> MasterService::MountIndexedSegment(std::string_view client_id,
                                                            std::string_view name, uint64_t base,
                                                            uint64_t size, uint64_t incarnation,
                                                            std::vector<IndexEntry> index,
                                                            uint64_t staged) {
  if (absl::Status valid = ValidateIndexKeys(name, index); !valid.ok()) return valid;
  if (staged != 0) {
    absl::StatusOr<std::vector<IndexEntry>> all =
        staging_.Take(client_id, name, staged, std::move(index));
    if (!all.ok()) return all.status();
    index = *std::move(all);
  }
  absl::StatusOr<Mounted> mounted = Mount(client_id, name, base, size, incarnation, &index);
  if (!mounted.ok()) return mounted.status();
  size_t restored = 0;
  size_t dropped = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    const IndexEntry& entry = index[i];
    const Replica& replica = mounted->restored[i];
    // Later puts must be newer than every restored one.
    uint64_t next = next_put_id_.load(std::memory_order_relaxed);
    while (next <= entry.put_id &&
           !next_put_id_.compare_exchange_weak(next, entry.put_id + 1, std::memory_order_relaxed)) {
    }
    Shard& shard = ShardOf(entry.key);
    absl::MutexLock lock(&shard.mu);
    const int64_t now = clock_->NowMicros();
    auto it = shard.objects.find(entry.key);
    if (it != shard.objects.end()) {
      Object& object = it->second;
      const bool complete = object.state == State::kComplete;
      const bool here =
          std::any_of(object.replicas.begin(), object.replicas.end(),
                      [&replica](const Replica& r) { return r.segment == replica.segment; });
      if (complete && object.put_id == entry.put_id && object.size == entry.size && !here) {
        object.replicas.push_back(replica);  // another replica of the same put
        ++restored;
        continue;
      }
      if (!complete || object.put_id >= entry.put_id || shard.upserts.contains(entry.key)) {
        // An older value, or one this master is writing anew: the owner drops it.
        segments_.Free(&replica, 1);
        ++dropped;
        continue;
      }
      // The owner holds a newer value than the one restored from elsewhere.
      RetireReplicasLocked(shard, object, now);
      Count(entry.key, object, -1);
    } else {
      it = shard.objects.emplace(entry.key, Object{}).first;
      it->second.put_start_us = now;
      it->second.last_access_us = now;
    }
    Object& object = it->second;
    object.size = entry.size;
    object.state = State::kComplete;
    object.put_id = entry.put_id;
    object.hard_pin = false;
    object.soft_pin_deadline_us = 0;
    object.replicas.assign(1, replica);
    // Readers of the master that lost its state may hold leases on the value, which this master
    // cannot know: it keeps the object (no eviction, no reuse of its space) for as long as such a
    // lease can last.
    object.lease_id = object.lease_id == UINT32_MAX ? 1 : object.lease_id + 1;
    object.readers = 1;
    object.lease_deadline_us = now + absl::ToInt64Microseconds(config_.default_kv_lease_ttl);
    Count(entry.key, object, +1);
    ++restored;
  }
  restored_objects_->Increment(restored);
  if (!index.empty()) {
    spdlog::info(
        "segment {} of client {} mounted with an index of {} objects: {} readable again, "
        "{} superseded",
        name, client_id, index.size(), restored, dropped);
  }
  return mounted->mount_id;
}

absl::StatusOr<uint64_t> MasterService::StageSegmentIndex(std::string_view client_id,
                                                          std::string_view name, bool first,
                                                          std::vector<IndexEntry> entries) {
  if (absl::Status valid = ValidateIndexKeys(name, entries); !valid.ok()) return valid;
  return staging_.Stage(client_id, name, first, std::move(entries), clock_->NowMicros());
}

absl::StatusOr<IndexSync> MasterService::SyncIndex(std::string_view client_id,
                                                   std::string_view name, uint64_t mount_id,
                                                   uint64_t acked, absl::Duration wait) {
  return segments_.Sync(name, client_id, mount_id, acked, wait, config_.max_batch_keys);
}

void MasterService::AwaitOwners(const IndexBarrier& barrier) {
  if (barrier.empty()) return;
  if (!segments_.AwaitAcknowledged(barrier, config_.index_ack_timeout)) {
    index_ack_timeouts_->Increment(1);
    // At most one warning per 10 s: an owner that lags does so for every call.
    const int64_t now = clock_->NowMicros();
    int64_t last = last_ack_warning_us_.load(std::memory_order_relaxed);
    if (now - last >= 10'000'000 && last_ack_warning_us_.compare_exchange_strong(last, now)) {
      spdlog::warn(
          "a segment's owner did not acknowledge changes to its index within {}: objects "
          "put or removed now may come back wrong after a failover of this master",
          absl::FormatDuration(config_.index_ack_timeout));
    }
  }
}

absl::Status MasterService::UnmountSegment(std::string_view client_id, std::string_view name) {
  if (absl::Status valid = ValidateClientId(client_id); !valid.ok()) return valid;
  absl::StatusOr<SegmentInfo> gone = segments_.Unmount(name, client_id);
  if (!gone.ok()) return gone.status();
  DropSegmentReplicas(gone->id);
  spdlog::info("segment {} of client {} unmounted", name, client_id);
  return absl::OkStatus();
}

HeartbeatResult MasterService::Heartbeat(std::string_view client_id,
                                         absl::Span<const std::string> segments) {
  HeartbeatResult result;
  result.epoch = epoch();
  if (!ValidateClientId(client_id).ok()) return result;
  heartbeats_->Increment(1);
  result.remount = clients_.Touch(client_id, clock_->NowMicros());
  if (result.remount) spdlog::info("client {} joined", client_id);
  for (const std::string& segment : segments) {
    if (!segments_.IsMountedBy(segment, client_id)) result.remount = true;
  }
  return result;
}

std::vector<absl::StatusOr<std::vector<ReplicaLocation>>> MasterService::PutStart(
    std::string_view client_id, absl::Span<const PutItem> items, const ReplicateConfig& config) {
  std::vector<absl::StatusOr<std::vector<ReplicaLocation>>> results;
  results.reserve(items.size());
  absl::Status request_error = ValidateClientId(client_id);
  if (request_error.ok() &&
      (config.replica_num == 0 || config.replica_num > config_.max_replicas)) {
    request_error = MakeError(ErrorCode::INVALID_PARAMS,
                              fmt::format("replica_num must be 1 to {}", config_.max_replicas));
  }
  size_t errors = 0;
  std::vector<absl::StatusOr<std::vector<Replica>>> placed(items.size());
  std::vector<uint32_t> valid;
  valid.reserve(items.size());
  for (uint32_t i = 0; i < items.size(); ++i) {
    absl::Status status = request_error.ok() ? ValidateKey(items[i].key) : request_error;
    if (status.ok() && (items[i].size == 0 || items[i].size > config_.max_object_bytes)) {
      status = MakeError(ErrorCode::INVALID_PARAMS,
                         fmt::format("size of '{}' must be 1 to {} bytes", UserKey(items[i].key),
                                     config_.max_object_bytes));
    }
    if (status.ok()) {
      valid.push_back(i);
    } else {
      placed[i] = std::move(status);
    }
  }
  // Placed shard by shard, each shard's lock taken once. The client's id is interned once for the
  // batch; owner_release_mu_ keeps it from being released until the batch's objects hold it.
  // The space of a batch of new keys is allocated beforehand, under one lock of the segments
  // instead of one per key (taken while holding a shard's lock, it made the writers of every
  // shard wait for one another); what a refused key does not take is given back after.
  std::vector<std::optional<absl::StatusOr<std::vector<Replica>>>> reserved;
  auto place = [&](absl::Span<const uint32_t> indexes, bool reserve) {
    if (reserve) {
      std::vector<uint64_t> sizes;
      sizes.reserve(indexes.size());
      for (uint32_t i : indexes) sizes.push_back(items[i].size);
      std::vector<absl::StatusOr<std::vector<Replica>>> got =
          segments_.AllocateEach(sizes, config.replica_num, config.preferred_segments);
      reserved.assign(items.size(), std::nullopt);
      for (size_t n = 0; n < indexes.size(); ++n) reserved[indexes[n]] = std::move(got[n]);
    }
    absl::ReaderMutexLock no_release(&owner_release_mu_);
    const uint32_t owner = ClientIndex(client_id);  // the same again if an object holds it
    const int64_t now = clock_->NowMicros();
    ForEachKeyByShard([items](uint32_t i) { return absl::string_view(items[i].key); }, indexes,
                      [&](Shard& shard, uint32_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                        placed[i] = TryPlaceLocked(shard, items[i], config, owner, now,
                                                   reserve ? &reserved[i] : nullptr);
                      });
    if (reserve) {
      std::vector<Replica> unused;
      for (uint32_t i : indexes) {
        if (reserved[i].has_value() && reserved[i]->ok()) {
          unused.insert(unused.end(), (*reserved[i])->begin(), (*reserved[i])->end());
        }
      }
      // Never journaled: the owners never knew of this space.
      if (!unused.empty()) segments_.Free(unused.data(), unused.size(), /*indexed=*/false);
    }
  };
  // Tenant quotas: keys past their tenant's are refused here; the others' bytes stay reserved
  // until their objects are counted.
  std::vector<uint32_t> admitted;
  if (tenants_->quotas_enabled()) valid = AdmitToQuotas(items, valid, config, placed, admitted);
  absl::Cleanup release_admitted = [&] { ReleaseAdmitted(items, admitted); };
  if (!valid.empty()) place(valid, /*reserve=*/!config.upsert);
  std::vector<uint32_t> no_room;
  for (uint32_t i : valid) {
    if (ErrorCodeOf(placed[i].status()) == ErrorCode::NO_AVAILABLE_HANDLE) no_room.push_back(i);
  }
  if (!no_room.empty()) {
    // No room: evict once for the whole batch, then try those keys again.
    Evict(static_cast<uint64_t>(config_.eviction_ratio *
                                static_cast<double>(segments_.total_bytes())));
    // Evicted space on indexed segments is reusable once their owners know it is gone.
    AwaitOwners(segments_.Barrier());
    place(no_room, /*reserve=*/false);
  }
  // Located under one lock for the batch.
  std::vector<absl::Span<const Replica>> lists(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (placed[i].ok()) lists[i] = *placed[i];
  }
  std::vector<std::vector<ReplicaLocation>> located = segments_.LocateEach(lists);
  for (size_t i = 0; i < items.size(); ++i) {
    if (placed[i].ok()) {
      results.push_back(std::move(located[i]));
    } else {
      results.push_back(placed[i].status());
      ++errors;
    }
  }
  CountOp("put_start", items.size(), errors);
  return results;
}

std::vector<uint32_t> MasterService::AdmitToQuotas(
    absl::Span<const PutItem> items, absl::Span<const uint32_t> indexes,
    const ReplicateConfig& config, std::vector<absl::StatusOr<std::vector<Replica>>>& placed,
    std::vector<uint32_t>& admitted) {
  // Keys whose put will be refused because the object is there (OBJECT_ALREADY_EXISTS, or
  // REPLICA_IS_NOT_READY while it is being written) take no room: they are not admitted, so that
  // a tenant at its quota evicts none of its objects for them. (Removed between this look and
  // the put, such a key is stored unadmitted: the quota is exceeded by that object at most.)
  std::vector<bool> present(items.size(), false);
  const int64_t now = clock_->NowMicros();
  const int64_t discard_us = absl::ToInt64Microseconds(config_.put_start_discard_timeout);
  ForEachKeyByShard([items](uint32_t i) { return absl::string_view(items[i].key); }, indexes,
                    [&](Shard& shard, uint32_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                      auto it = shard.objects.find(items[i].key);
                      if (it == shard.objects.end()) return;
                      const Object& object = it->second;
                      const bool complete = object.state == State::kComplete;
                      const bool abandoned = !complete && now - object.put_start_us >= discard_us;
                      // An upsert of a complete object needs room for the new value.
                      present[i] = !abandoned && !(config.upsert && complete);
                    });
  std::vector<uint32_t> to_place;
  to_place.reserve(indexes.size());
  admitted.reserve(indexes.size());
  int evictions = 0;  // the original tries two rounds of a tenant's eviction; so do we
  for (uint32_t i : indexes) {
    if (present[i]) {
      to_place.push_back(i);
      continue;
    }
    const std::string_view tenant = SplitKey(items[i].key).tenant;
    absl::Status status;
    while (true) {
      const uint64_t capacity = segments_.total_bytes();
      uint64_t over = 0;
      status = tenants_->Reserve(tenant, items[i].size, capacity, &over);
      if (status.ok() || ErrorCodeOf(status) != ErrorCode::NO_AVAILABLE_HANDLE || over == 0 ||
          evictions == 2) {
        break;
      }
      ++evictions;
      // What it lacks and a share of its quota more, so that a tenant writing at its quota does
      // not evict once per put; only its own objects.
      const uint64_t quota = tenants_->EffectiveQuota(tenant, capacity);
      const uint64_t freed =
          Evict(over + static_cast<uint64_t>(config_.eviction_ratio * static_cast<double>(quota)),
                tenant);
      if (freed == 0) break;
      tenants_->CountEvicted(tenant, freed);
      // The space is reusable once the owners know the objects are gone.
      AwaitOwners(segments_.Barrier());
    }
    if (status.ok()) {
      admitted.push_back(i);
      to_place.push_back(i);
    } else {
      placed[i] = std::move(status);
    }
  }
  return to_place;
}

void MasterService::ReleaseAdmitted(absl::Span<const PutItem> items,
                                    absl::Span<const uint32_t> indexes) {
  for (uint32_t i : indexes) tenants_->Release(SplitKey(items[i].key).tenant, items[i].size);
}

absl::StatusOr<std::vector<Replica>> MasterService::TryPlaceLocked(
    Shard& shard, const PutItem& item, const ReplicateConfig& config, uint32_t owner, int64_t now,
    std::optional<absl::StatusOr<std::vector<Replica>>>* reserved) {
  auto it = shard.objects.find(item.key);
  if (it != shard.objects.end()) {
    const Object& existing = it->second;
    const bool abandoned =
        existing.state == State::kProcessing &&
        now - existing.put_start_us >= absl::ToInt64Microseconds(config_.put_start_discard_timeout);
    if (config.upsert && existing.state == State::kComplete) {
      return TryPlaceUpsert(shard, item, config, owner, now);
    }
    if (config.upsert && !abandoned) {
      return MakeError(ErrorCode::REPLICA_IS_NOT_READY,
                       fmt::format("a put of '{}' is in progress", UserKey(item.key)));
    }
    if (!abandoned) {
      return MakeError(ErrorCode::OBJECT_ALREADY_EXISTS,
                       fmt::format("key '{}' already exists", UserKey(item.key)));
    }
    EraseLocked(shard, it);  // an abandoned put: the new one takes its place
  }
  absl::StatusOr<std::vector<Replica>> placed =
      reserved != nullptr && reserved->has_value()
          ? std::move(**reserved)
          : segments_.Allocate(item.size, config.replica_num, config.preferred_segments);
  if (reserved != nullptr) reserved->reset();
  if (!placed.ok()) return placed;
  Object object;
  object.size = item.size;
  object.put_start_us = now;
  object.last_access_us = now;
  object.hard_pin = config.with_hard_pin;
  object.soft_pin_requested =
      config.with_soft_pin || (config.upsert && config.soft_pin_action == SoftPinAction::kEnable);
  if (object.soft_pin_requested) {
    object.soft_pin_deadline_us = SoftPinTtlUs(config);
  }
  object.owner = owner;
  object.replicas.assign(placed->begin(), placed->end());
  Count(item.key, object, +1);
  shard.objects.emplace(item.key, std::move(object));
  shard.processing.push_back(item.key);
  // Without maintenance passes (an embedded service), or between them, ended puts would pile up.
  if (shard.processing.size() > 2 * shard.processing_after_sweep + 1024) {
    SweepProcessingLocked(shard, INT64_MIN);
  }
  return placed;
}

absl::StatusOr<std::vector<Replica>> MasterService::TryPlaceUpsert(Shard& shard,
                                                                   const PutItem& item,
                                                                   const ReplicateConfig& config,
                                                                   uint32_t owner, int64_t now) {
  if (auto up = shard.upserts.find(item.key); up != shard.upserts.end()) {
    const bool abandoned = now - up->second.put_start_us >=
                           absl::ToInt64Microseconds(config_.put_start_discard_timeout);
    if (!abandoned) {
      return MakeError(ErrorCode::REPLICA_IS_NOT_READY,
                       fmt::format("an upsert of '{}' is in progress", UserKey(item.key)));
    }
    segments_.Free(up->second.replicas.data(), up->second.replicas.size(), /*indexed=*/false);
    shard.upserts.erase(up);
  }
  absl::StatusOr<std::vector<Replica>> placed =
      segments_.Allocate(item.size, config.replica_num, config.preferred_segments);
  if (!placed.ok()) return placed;
  Upsert upsert;
  upsert.size = item.size;
  upsert.put_start_us = now;
  upsert.owner = owner;
  upsert.hard_pin = config.with_hard_pin;
  upsert.soft_pin_action = config.with_soft_pin ? SoftPinAction::kEnable : config.soft_pin_action;
  upsert.soft_pin_ttl_us = SoftPinTtlUs(config);
  upsert.replicas.assign(placed->begin(), placed->end());
  shard.upserts.emplace(item.key, std::move(upsert));
  return placed;
}

void MasterService::RetireReplicasLocked(Shard& shard, Object& object, int64_t now) {
  // Readers that were handed the old replicas may read them until their lease ends; their
  // owners drop the old value from their index now.
  if (Leased(object, now)) {
    segments_.Unindex(object.replicas.data(), object.replicas.size());
    shard.retired.push_back(Retired{object.lease_deadline_us, std::move(object.replicas)});
  } else {
    segments_.Free(object.replicas.data(), object.replicas.size());
  }
  object.replicas.clear();
}

void MasterService::FinishUpsertLocked(Shard& shard, const std::string& key, Object& object,
                                       Upsert& upsert, int64_t now) {
  RetireReplicasLocked(shard, object, now);
  Count(key, object, -1);
  object.size = upsert.size;
  object.put_id = NextPutId();
  object.replicas = std::move(upsert.replicas);
  segments_.Index(key, object.size, object.put_id, object.replicas.data(), object.replicas.size());
  object.hard_pin = upsert.hard_pin;
  object.last_access_us = now;
  switch (upsert.soft_pin_action) {
    case SoftPinAction::kPreserve:
      break;
    case SoftPinAction::kEnable:
      object.soft_pin_deadline_us = now + upsert.soft_pin_ttl_us;
      break;
    case SoftPinAction::kDisable:
      object.soft_pin_deadline_us = 0;
      break;
  }
  Count(key, object, +1);
}

void MasterService::FreeRetired(int64_t now) {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    auto& retired = shard.retired;
    if (retired.empty()) continue;
    auto keep = std::partition(retired.begin(), retired.end(),
                               [now](const Retired& r) { return r.free_at_us > now; });
    for (auto it = keep; it != retired.end(); ++it) {
      segments_.Free(it->replicas.data(), it->replicas.size());
    }
    retired.erase(keep, retired.end());
  }
}

std::vector<absl::Status> MasterService::FinishPuts(
    std::string_view op, std::string_view client_id, absl::Span<const std::string> keys,
    bool complete_is_done,
    absl::FunctionRef<void(Shard&, absl::flat_hash_map<std::string, Object>::iterator, size_t i)>
        finish,
    absl::FunctionRef<void(Shard&, absl::flat_hash_map<std::string, Object>::iterator,
                           absl::flat_hash_map<std::string, Upsert>::iterator, size_t i)>
        finish_upsert) {
  std::vector<absl::Status> results(keys.size());
  const absl::Status client = ValidateClientId(client_id);
  // A client never interned owns no object: every key it names fails below.
  const std::optional<uint32_t> found_caller =
      client.ok() ? FindClientIndex(client_id) : std::nullopt;
  const bool known = found_caller.has_value();
  const uint32_t caller = found_caller.value_or(0);
  absl::InlinedVector<uint32_t, 256> valid;
  valid.reserve(keys.size());
  for (uint32_t i = 0; i < keys.size(); ++i) {
    results[i] = client.ok() ? ValidateKey(keys[i]) : client;
    if (results[i].ok()) valid.push_back(i);
  }
  ForEachKeyByShard(keys, valid, [&](Shard& shard, uint32_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    const std::string& key = keys[i];
    absl::Status& status = results[i];
    auto it = shard.objects.find(key);
    const bool found = it != shard.objects.end();
    auto up = shard.upserts.empty() ? shard.upserts.end() : shard.upserts.find(key);
    if (up != shard.upserts.end() && found) {
      // An upsert of a complete object (EraseLocked drops an upsert with its object).
      if (!known || up->second.owner != caller) {
        status = MakeError(ErrorCode::ILLEGAL_CLIENT,
                           fmt::format("the upsert of '{}' was started by client {}", UserKey(key),
                                       ClientName(up->second.owner)));
      } else {
        finish_upsert(shard, it, up, i);
      }
    } else if (found && (!known || it->second.owner != caller)) {
      status = MakeError(ErrorCode::ILLEGAL_CLIENT,
                         fmt::format("the put of '{}' was started by client {}", UserKey(key),
                                     ClientName(it->second.owner)));
    } else if (found && it->second.state == State::kProcessing) {
      finish(shard, it, i);
    } else if (!found || !complete_is_done) {
      status = MakeError(ErrorCode::OBJECT_NOT_FOUND,
                         fmt::format("no put of '{}' is in progress", UserKey(key)));
    }
    // A complete object and complete_is_done: a repeated PutEnd (a retried request) succeeds.
  });
  size_t errors = 0;
  for (const absl::Status& status : results) errors += status.ok() ? 0 : 1;
  CountOp(op, keys.size(), errors);
  return results;
}

std::vector<absl::Status> MasterService::PutEnd(std::string_view client_id,
                                                absl::Span<const std::string> keys) {
  std::vector<SegmentId> touched;  // segments whose owners learn of the new objects
  // The puts this call ended (their put ids, by key index): checked again once the owners have
  // acknowledged.
  std::vector<std::optional<uint64_t>> ended(keys.size());
  std::vector<absl::Status> results = FinishPuts(
      "put_end", client_id, keys, /*complete_is_done=*/true,
      [this, &touched, &ended](Shard&, absl::flat_hash_map<std::string, Object>::iterator it,
                               size_t i) {
        Object& object = it->second;
        const int64_t now = clock_->NowMicros();
        object.state = State::kComplete;
        processing_.fetch_sub(1, std::memory_order_relaxed);
        object.last_access_us = now;
        object.put_id = NextPutId();
        if (object.soft_pin_requested) {
          object.soft_pin_deadline_us = now + object.soft_pin_deadline_us;
        }
        segments_.Index(it->first, object.size, object.put_id, object.replicas.data(),
                        object.replicas.size());
        for (const Replica& r : object.replicas) touched.push_back(r.segment);
        ended[i] = object.put_id;
      },
      [this, &touched, &ended](Shard& shard, absl::flat_hash_map<std::string, Object>::iterator it,
                               absl::flat_hash_map<std::string, Upsert>::iterator up, size_t i)
          ABSL_NO_THREAD_SAFETY_ANALYSIS {
            for (const Replica& r : it->second.replicas) touched.push_back(r.segment);
            FinishUpsertLocked(shard, it->first, it->second, up->second, clock_->NowMicros());
            shard.upserts.erase(up);
            for (const Replica& r : it->second.replicas) touched.push_back(r.segment);
            ended[i] = it->second.put_id;
          });
  if (touched.empty()) return results;
  // Answered once the owners know: a failover right after loses none of these objects.
  AwaitOwners(segments_.Barrier(touched));
  // Meanwhile a segment may have gone (its owner declared dead, a new term began) and taken the
  // object with it: that put did not succeed. Which of the few segments are mounted is asked once.
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  std::vector<SegmentId> mounted;
  for (SegmentId segment : touched) {
    if (segments_.IsMounted(segment)) mounted.push_back(segment);
  }
  // A key named twice was ended by its first mention: both are checked.
  absl::flat_hash_map<absl::string_view, uint64_t> ended_by_key;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (ended[i].has_value()) ended_by_key.emplace(keys[i], *ended[i]);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto put = ended_by_key.find(keys[i]);
    if (!results[i].ok() || put == ended_by_key.end()) continue;
    Shard& shard = ShardOf(keys[i]);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.objects.find(keys[i]);
    // A segment is unmounted before its replicas are dropped: check both.
    const bool alive =
        it != shard.objects.end() && it->second.put_id == put->second &&
        std::any_of(it->second.replicas.begin(), it->second.replicas.end(),
                    [&mounted](const Replica& r) {
                      return std::binary_search(mounted.begin(), mounted.end(), r.segment);
                    });
    if (!alive) {
      results[i] = MakeError(ErrorCode::OBJECT_NOT_FOUND,
                             fmt::format("'{}' was lost while its put ended: its segment was "
                                         "unmounted, or a new term began",
                                         UserKey(keys[i])));
    }
  }
  return results;
}

std::vector<absl::Status> MasterService::PutRevoke(std::string_view client_id,
                                                   absl::Span<const std::string> keys) {
  return FinishPuts(
      "put_revoke", client_id, keys, /*complete_is_done=*/false,
      [this](Shard& shard, absl::flat_hash_map<std::string, Object>::iterator it, size_t)
          ABSL_NO_THREAD_SAFETY_ANALYSIS { EraseLocked(shard, it); },
      [this](Shard& shard, absl::flat_hash_map<std::string, Object>::iterator,
             absl::flat_hash_map<std::string, Upsert>::iterator up,
             size_t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        // The object keeps its old value.
        segments_.Free(up->second.replicas.data(), up->second.replicas.size(), /*indexed=*/false);
        shard.upserts.erase(up);
      });
}

uint32_t MasterService::ClientIndex(std::string_view client_id) {
  absl::MutexLock lock(&client_names_mu_);
  auto it = client_indexes_.find(AsAbsl(client_id));
  uint32_t index = 0;
  if (it != client_indexes_.end()) {
    index = it->second;
  } else if (!free_client_indexes_.empty()) {
    index = free_client_indexes_.back();
    free_client_indexes_.pop_back();
    client_names_[index] = std::string(client_id);
    client_indexes_.emplace(std::string(client_id), index);
  } else {
    index = static_cast<uint32_t>(client_names_.size());
    client_names_.emplace_back(client_id);
    client_indexes_.emplace(std::string(client_id), index);
  }
  if (index < client_index_touched_.size()) client_index_touched_[index] = true;
  return index;
}

size_t MasterService::MarkClientIndexes() {
  absl::MutexLock lock(&client_names_mu_);
  client_index_touched_.assign(client_names_.size(), false);
  return client_names_.size();
}

void MasterService::ReleaseClientIndexes(const std::vector<bool>& in_use) {
  absl::MutexLock lock(&client_names_mu_);
  for (uint32_t i = 0; i < in_use.size() && i < client_names_.size(); ++i) {
    if (in_use[i] || client_index_touched_[i] || client_names_[i].empty()) continue;
    client_indexes_.erase(client_names_[i]);
    std::string().swap(client_names_[i]);
    free_client_indexes_.push_back(i);
  }
  client_index_touched_.clear();
}

size_t MasterService::interned_clients() const {
  absl::MutexLock lock(&client_names_mu_);
  return client_indexes_.size();
}

std::optional<uint32_t> MasterService::FindClientIndex(std::string_view client_id) const {
  absl::MutexLock lock(&client_names_mu_);
  auto it = client_indexes_.find(AsAbsl(client_id));
  if (it == client_indexes_.end()) return std::nullopt;
  return it->second;
}

std::string MasterService::ClientName(uint32_t index) const {
  absl::MutexLock lock(&client_names_mu_);
  return index < client_names_.size() ? client_names_[index] : "unknown";
}

std::vector<absl::Status> MasterService::Remove(absl::Span<const std::string> keys, bool force) {
  std::vector<absl::Status> results;
  results.reserve(keys.size());
  size_t errors = 0;
  for (const std::string& key : keys) {
    absl::Status status = ValidateKey(key);
    if (status.ok()) {
      Shard& shard = ShardOf(key);
      absl::MutexLock lock(&shard.mu);
      auto it = shard.objects.find(key);
      const int64_t now = clock_->NowMicros();
      if (it == shard.objects.end()) {
        status =
            MakeError(ErrorCode::OBJECT_NOT_FOUND, fmt::format("key '{}' not found", UserKey(key)));
      } else if (it->second.state != State::kComplete && !force) {
        status = MakeError(ErrorCode::REPLICA_IS_NOT_READY,
                           fmt::format("key '{}' is still being written", UserKey(key)));
      } else if (Leased(it->second, now) && !force) {
        status = MakeError(ErrorCode::OBJECT_HAS_LEASE,
                           fmt::format("key '{}' is leased to a reader", UserKey(key)));
      } else {
        EraseLocked(shard, it);
      }
    }
    if (!status.ok()) ++errors;
    results.push_back(std::move(status));
  }
  CountOp("remove", keys.size(), errors);
  // A removed object never comes back after a failover.
  if (errors < keys.size()) AwaitOwners(segments_.Barrier());
  return results;
}

absl::StatusOr<uint64_t> MasterService::RemoveByRegex(std::string_view pattern,
                                                      std::string_view tenant) {
  if (pattern.size() > kMaxRegexBytes) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("regex is {} bytes; the limit is {}",
                                                            pattern.size(), kMaxRegexBytes));
  }
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);
  RE2 regex(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!regex.ok()) {
    CountOp("remove_by_regex", 0, 1);
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("invalid regex '{}': {}", pattern, regex.error()));
  }
  const uint64_t removed = RemoveUnleasedWhere([&regex, tenant](const std::string& internal) {
    if (!InTenant(internal, tenant)) return false;
    const std::string_view key = UserKey(internal);
    return RE2::PartialMatch(re2::StringPiece(key.data(), key.size()), regex);
  });
  CountOp("remove_by_regex", removed, 0);
  return removed;
}

uint64_t MasterService::RemoveAll(std::string_view tenant) {
  const uint64_t removed =
      RemoveUnleasedWhere([tenant](const std::string& key) { return InTenant(key, tenant); });
  CountOp("remove_all", removed, 0);
  return removed;
}

uint64_t MasterService::RemoveUnleasedWhere(absl::FunctionRef<bool(const std::string&)> match) {
  uint64_t removed = 0;
  absl::Cleanup await_owners = [this, &removed] {
    if (removed > 0) AwaitOwners(segments_.Barrier());
  };
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    const int64_t now = clock_->NowMicros();
    for (auto it = shard.objects.begin(); it != shard.objects.end();) {
      auto next = std::next(it);
      if (it->second.state == State::kComplete && !Leased(it->second, now) && match(it->first)) {
        EraseLocked(shard, it);
        ++removed;
      }
      it = next;
    }
  }
  return removed;
}

std::vector<std::string> MasterService::AllKeys(std::string_view tenant) const {
  std::vector<std::string> keys;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [key, object] : shard.objects) {
      if (object.state == State::kComplete && InTenant(key, tenant)) {
        keys.emplace_back(UserKey(key));
      }
    }
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

absl::StatusOr<nlohmann::json> MasterService::Describe(std::string_view key) const {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  Object copy;
  {
    Shard& shard = ShardOf(key);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.objects.find(AsAbsl(key));
    if (it == shard.objects.end()) {
      return MakeError(ErrorCode::OBJECT_NOT_FOUND,
                       fmt::format("key '{}' not found", UserKey(key)));
    }
    copy = it->second;
  }
  const int64_t now = clock_->NowMicros();
  nlohmann::json replicas = nlohmann::json::array();
  for (const ReplicaLocation& location :
       segments_.Locate(copy.replicas.data(), copy.replicas.size())) {
    replicas.push_back({{"segment", location.segment}, {"address", location.address}});
  }
  return nlohmann::json{
      {"key", std::string(key)},
      {"size", copy.size},
      {"state", copy.state == State::kComplete ? "complete" : "processing"},
      {"replicas", replicas},
      {"lease_ms_left", Leased(copy, now) ? (copy.lease_deadline_us - now) / 1000 : 0},
      {"readers", Leased(copy, now) ? copy.readers : 0},
      {"soft_pinned", copy.soft_pin_deadline_us > now},
      {"hard_pinned", copy.hard_pin},
      {"client_id", ClientName(copy.owner)},
  };
}

MasterStats MasterService::Stats() const {
  MasterStats stats;
  const int64_t now = clock_->NowMicros();
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [key, object] : shard.objects) {
      ++stats.objects;
      stats.key_bytes += key.size();
      if (object.state == State::kProcessing) ++stats.processing;
      if (Leased(object, now)) ++stats.leased;
      if (object.soft_pin_deadline_us > now) ++stats.soft_pinned;
      if (object.hard_pin) ++stats.hard_pinned;
    }
  }
  stats.total_bytes = segments_.total_bytes();
  stats.used_bytes = segments_.used_bytes();
  stats.evicted_objects = evicted_objects_.load();
  stats.evicted_bytes = evicted_bytes_.load();
  stats.segments = segments_.List().size();
  stats.clients = clients_.size();
  return stats;
}

}  // namespace mooncake::master
