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

absl::Status MasterService::ValidateClientId(std::string_view client_id) {
  if (client_id.empty() || client_id.size() > kMaxClientIdBytes) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("client_id must be 1 to {} bytes", kMaxClientIdBytes));
  }
  return absl::OkStatus();
}

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

void MasterService::EraseLocked(Shard& shard, ObjectTable::iterator it) {
  segments_.Free(it->second.replicas.data(), it->second.replicas.size(),
                 /*indexed=*/it->second.state == State::kComplete);
  if (!shard.upserts.empty()) {
    if (auto up = shard.upserts.find(it->first.lookup()); up != shard.upserts.end()) {
      segments_.Free(up->second.replicas.data(), up->second.replicas.size(), /*indexed=*/false);
      shard.upserts.erase(up);
    }
  }
  Count(it->first, it->second, -1);
  shard.objects.erase(it);
}

void MasterService::Count(std::string_view key, const Object& object, int sign) {
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

std::vector<absl::Status> MasterService::Remove(Keys keys, bool force) {
  std::vector<absl::Status> results;
  results.reserve(keys.size());
  size_t errors = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string_view key = keys[i];
    absl::Status status = ValidateKey(key);
    if (status.ok()) {
      Shard& shard = ShardOf(key);
      absl::MutexLock lock(&shard.mu);
      auto it = shard.objects.find(AsAbsl(key));
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
  const uint64_t removed = RemoveUnleasedWhere([&regex, tenant](std::string_view internal) {
    if (!InTenant(internal, tenant)) return false;
    const std::string_view key = UserKey(internal);
    return RE2::PartialMatch(re2::StringPiece(key.data(), key.size()), regex);
  });
  CountOp("remove_by_regex", removed, 0);
  return removed;
}

uint64_t MasterService::RemoveAll(std::string_view tenant) {
  const uint64_t removed =
      RemoveUnleasedWhere([tenant](std::string_view key) { return InTenant(key, tenant); });
  CountOp("remove_all", removed, 0);
  return removed;
}

uint64_t MasterService::RemoveUnleasedWhere(absl::FunctionRef<bool(std::string_view)> match) {
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
