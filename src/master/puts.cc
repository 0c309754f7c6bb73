// The master's writes: PutStart (tenant quotas, placement on the segments, eviction when there is
// no room, upserts beside the value they replace), PutEnd (which answers once the segments' owners
// know of the objects) and PutRevoke.
#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "master/master_service.h"

namespace mooncake::master {

std::vector<absl::StatusOr<ReplicaLocations>> MasterService::PutStart(
    std::string_view client_id, absl::Span<const PutItem> items, const ReplicateConfig& config) {
  std::vector<absl::StatusOr<ReplicaLocations>> results;
  results.reserve(items.size());
  absl::Status request_error = ValidateClientId(client_id);
  if (request_error.ok() &&
      (config.replica_num == 0 || config.replica_num > config_.max_replicas)) {
    request_error = MakeError(ErrorCode::INVALID_PARAMS,
                              fmt::format("replica_num must be 1 to {}", config_.max_replicas));
  }
  size_t errors = 0;
  std::vector<absl::StatusOr<Replicas>> placed(items.size());
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
  std::vector<std::optional<absl::StatusOr<Replicas>>> reserved;
  auto place = [&](absl::Span<const uint32_t> indexes, bool reserve) {
    if (reserve) {
      std::vector<uint64_t> sizes;
      sizes.reserve(indexes.size());
      for (uint32_t i : indexes) sizes.push_back(items[i].size);
      std::vector<absl::StatusOr<Replicas>> got =
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
      Replicas unused;
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
  std::vector<ReplicaLocations> located = segments_.LocateEach(lists);
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

std::vector<uint32_t> MasterService::AdmitToQuotas(absl::Span<const PutItem> items,
                                                   absl::Span<const uint32_t> indexes,
                                                   const ReplicateConfig& config,
                                                   std::vector<absl::StatusOr<Replicas>>& placed,
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

absl::StatusOr<Replicas> MasterService::TryPlaceLocked(
    Shard& shard, const PutItem& item, const ReplicateConfig& config, uint32_t owner, int64_t now,
    std::optional<absl::StatusOr<Replicas>>* reserved) {
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
  absl::StatusOr<Replicas> placed =
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

absl::StatusOr<Replicas> MasterService::TryPlaceUpsert(Shard& shard, const PutItem& item,
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
  absl::StatusOr<Replicas> placed =
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

void MasterService::FinishUpsertLocked(Shard& shard, std::string_view key, Object& object,
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
    std::string_view op, std::string_view client_id, Keys keys, bool complete_is_done,
    absl::FunctionRef<void(Shard&, ObjectTable::iterator, size_t i)> finish,
    absl::FunctionRef<void(Shard&, ObjectTable::iterator,
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
    const std::string_view key = keys[i];
    absl::Status& status = results[i];
    auto it = shard.objects.find(AsAbsl(key));
    const bool found = it != shard.objects.end();
    auto up = shard.upserts.empty() ? shard.upserts.end() : shard.upserts.find(AsAbsl(key));
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

std::vector<absl::Status> MasterService::PutEnd(std::string_view client_id, Keys keys) {
  std::vector<SegmentId> touched;  // segments whose owners learn of the new objects
  // The puts this call ended (their put ids, by key index): checked again once the owners have
  // acknowledged.
  std::vector<std::optional<uint64_t>> ended(keys.size());
  std::vector<absl::Status> results = FinishPuts(
      "put_end", client_id, keys, /*complete_is_done=*/true,
      [this, &touched, &ended](Shard&, ObjectTable::iterator it, size_t i) {
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
      [this, &touched, &ended](Shard& shard, ObjectTable::iterator it,
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
    if (ended[i].has_value()) ended_by_key.emplace(AsAbsl(keys[i]), *ended[i]);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto put = ended_by_key.find(AsAbsl(keys[i]));
    if (!results[i].ok() || put == ended_by_key.end()) continue;
    Shard& shard = ShardOf(keys[i]);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.objects.find(AsAbsl(keys[i]));
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

std::vector<absl::Status> MasterService::PutRevoke(std::string_view client_id, Keys keys) {
  return FinishPuts(
      "put_revoke", client_id, keys, /*complete_is_done=*/false,
      [this](Shard& shard, ObjectTable::iterator it, size_t)
          ABSL_NO_THREAD_SAFETY_ANALYSIS { EraseLocked(shard, it); },
      [this](Shard& shard, ObjectTable::iterator,
             absl::flat_hash_map<std::string, Upsert>::iterator up,
             size_t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        // The object keeps its old value.
        segments_.Free(up->second.replicas.data(), up->second.replicas.size(), /*indexed=*/false);
        shard.upserts.erase(up);
      });
}

}  // namespace mooncake::master
