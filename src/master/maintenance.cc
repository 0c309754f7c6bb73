// The master's periodic work: dead clients, puts never ended, eviction.
#include <algorithm>
#include <utility>

#include "common/logging.h"
#include "common/strings.h"
#include "master/master_service.h"

namespace mooncake::master {

void MasterService::DropSegmentReplicas(SegmentId segment) {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.objects.begin(); it != shard.objects.end();) {
      auto next = std::next(it);
      auto& replicas = it->second.replicas;
      // The segment's allocator is gone with it: these replicas are dropped, not freed.
      replicas.erase(std::remove_if(replicas.begin(), replicas.end(),
                                    [segment](const Replica& r) { return r.segment == segment; }),
                     replicas.end());
      if (replicas.empty()) {
        Count(it->first, it->second, -1);
        shard.objects.erase(it);
      }
      it = next;
    }
    // An upsert that lost a replica cannot complete: drop it (its PutEnd finds nothing), freeing
    // its replicas elsewhere; the object keeps its value, or is gone if its replicas went too.
    for (auto it = shard.upserts.begin(); it != shard.upserts.end();) {
      auto next = std::next(it);
      const auto& replicas = it->second.replicas;
      const bool hit = std::any_of(replicas.begin(), replicas.end(),
                                   [segment](const Replica& r) { return r.segment == segment; });
      if (hit || !shard.objects.contains(it->first)) {
        // A no-op on the unmounted segment.
        segments_.Free(replicas.data(), replicas.size(), /*indexed=*/false);
        shard.upserts.erase(it);
      }
      it = next;
    }
    // Retired replicas on the segment: its allocator is gone, nothing to free.
    for (Retired& retired : shard.retired) {
      auto& replicas = retired.replicas;
      replicas.erase(std::remove_if(replicas.begin(), replicas.end(),
                                    [segment](const Replica& r) { return r.segment == segment; }),
                     replicas.end());
    }
  }
}

void MasterService::BeginTerm(uint64_t epoch) {
  if (epoch_.exchange(epoch, std::memory_order_acq_rel) == epoch) return;
  size_t dropped = 0;
  for (const SegmentInfo& segment : segments_.List()) {
    absl::StatusOr<SegmentInfo> gone = segments_.Unmount(segment.name, "");
    if (!gone.ok()) continue;
    DropSegmentReplicas(gone->id);
    ++dropped;
  }
  if (dropped > 0) {
    spdlog::info("epoch {}: forgot {} segments of an earlier term; their owners mount them again",
                 epoch, dropped);
  }
  // The leader of the term before may have changed the tenants' policy.
  if (absl::Status loaded = tenants_->Reload(); !loaded.ok()) {
    spdlog::error("epoch {}: {}; the tenants' quotas stay as they were", epoch,
                  AsStd(loaded.message()));
  }
}

void MasterService::RunMaintenance() {
  const int64_t now = clock_->NowMicros();

  // Clients silent for longer than the liveness TTL: their segments go, and what was only there.
  for (const std::string& client :
       clients_.TakeSilentSince(now - absl::ToInt64Microseconds(config_.client_live_ttl))) {
    clients_expired_->Increment(1);
    spdlog::info("client {} left: no heartbeat for {}", client,
                 absl::FormatDuration(config_.client_live_ttl));
    for (const std::string& name : segments_.SegmentsOf(client)) {
      absl::StatusOr<SegmentInfo> gone = segments_.Unmount(name, client);
      if (!gone.ok()) continue;
      DropSegmentReplicas(gone->id);
      spdlog::warn("client {} sent no heartbeat for {}: unmounted its segment {}", client,
                   absl::FormatDuration(config_.client_live_ttl), name);
    }
  }

  // Puts started and never ended nor revoked: reclaim their space. Only the keys noted as being
  // written are looked at (Shard::processing); walking every object under each shard's lock took
  // a tenth of the master's CPU and stalled its calls with a million objects.
  const int64_t release_before = now - absl::ToInt64Microseconds(config_.put_start_release_timeout);
  uint64_t reclaimed = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    reclaimed += SweepProcessingLocked(shard, release_before);
    for (auto it = shard.upserts.begin(); it != shard.upserts.end();) {
      auto next = std::next(it);
      if (it->second.put_start_us <= release_before) {
        segments_.Free(it->second.replicas.data(), it->second.replicas.size(), /*indexed=*/false);
        shard.upserts.erase(it);
        ++reclaimed;
      }
      it = next;
    }
  }
  FreeRetired(now);
  if (reclaimed > 0) spdlog::info("reclaimed {} puts that were never ended", reclaimed);
  if (interned_clients() > 2 * interned_after_release_ + 64) ReleaseUnusedClientIds();

  const uint64_t total = segments_.total_bytes();
  if (total > 0 && static_cast<double>(segments_.used_bytes()) >
                       config_.eviction_high_watermark_ratio * static_cast<double>(total)) {
    Evict(static_cast<uint64_t>(config_.eviction_ratio * static_cast<double>(total)));
  }
}

size_t MasterService::noted_puts() const {
  size_t noted = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    noted += shard.processing.size();
  }
  return noted;
}

uint64_t MasterService::SweepProcessingLocked(Shard& shard, int64_t release_before) {
  uint64_t reclaimed = 0;
  std::vector<std::string> pending;
  for (std::string& key : shard.processing) {
    auto it = shard.objects.find(key);
    if (it == shard.objects.end() || it->second.state != State::kProcessing) continue;
    if (it->second.put_start_us <= release_before) {
      EraseLocked(shard, it);
      ++reclaimed;
    } else {
      pending.push_back(std::move(key));
    }
  }
  // A key put again after its first put was abandoned is noted twice.
  std::sort(pending.begin(), pending.end());
  pending.erase(std::unique(pending.begin(), pending.end()), pending.end());
  shard.processing = std::move(pending);
  shard.processing_after_sweep = shard.processing.size();
  return reclaimed;
}

void MasterService::ReleaseUnusedClientIds() {
  size_t marked = 0;
  {
    // The mark is taken with no PutStart in flight: each one before it has recorded its objects
    // (the walk below sees them), each one after it interns its id after the mark (which keeps
    // the id this pass). PutStarts wait only for the mark, not for the walk.
    absl::MutexLock no_put_starts(&owner_release_mu_);
    marked = MarkClientIndexes();
  }
  std::vector<bool> owners(marked, false);
  auto hold = [&owners](uint32_t owner) {
    if (owner < owners.size()) owners[owner] = true;
  };
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [key, object] : shard.objects) hold(object.owner);
    for (const auto& [key, upsert] : shard.upserts) hold(upsert.owner);
  }
  ReleaseClientIndexes(owners);
  // The ids found in use: those interned during the walk are kept this pass but not known to be
  // in use, so they count as growth toward the next pass, not as its base (counted in the base,
  // they let the table double with every pass while clients come and go faster than the walk).
  interned_after_release_ = static_cast<size_t>(std::count(owners.begin(), owners.end(), true));
}

uint64_t MasterService::Evict(uint64_t target_bytes, std::optional<std::string_view> tenant) {
  if (target_bytes == 0) return 0;
  absl::MutexLock evict_lock(&evict_mu_);
  const int64_t now = clock_->NowMicros();

  // Pass 1: the last-access times of what may be evicted, in two groups: objects without a live
  // soft pin go first; soft-pinned ones only if allowed and still needed. Never leased, processing
  // or hard-pinned objects.
  struct Candidate {
    int64_t last_access_us;
    uint64_t bytes;
  };
  // The pool's bytes, or, for a tenant, its quota's (each object's size once).
  auto bytes_of = [&tenant](const Object& object) {
    return tenant.has_value() ? object.size : object.size * object.replicas.size();
  };
  std::vector<Candidate> plain, soft;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [key, object] : shard.objects) {
      if (object.state != State::kComplete || object.hard_pin || Leased(object, now)) continue;
      if (tenant.has_value() && !InTenant(key, *tenant)) continue;
      const Candidate candidate{object.last_access_us, bytes_of(object)};
      (object.soft_pin_deadline_us > now ? soft : plain).push_back(candidate);
    }
  }
  // The access time up to which the oldest objects of a group add up to `want` bytes.
  auto threshold = [](std::vector<Candidate>& group, uint64_t want) {
    std::sort(group.begin(), group.end(), [](const Candidate& a, const Candidate& b) {
      return a.last_access_us < b.last_access_us;
    });
    uint64_t sum = 0;
    for (const Candidate& c : group) {
      sum += c.bytes;
      if (sum >= want) return c.last_access_us;
    }
    return group.empty() ? INT64_MIN : group.back().last_access_us;
  };

  uint64_t freed = 0;       // in bytes_of's units
  uint64_t pool_freed = 0;  // in the pool's
  uint64_t objects = 0;
  // Pass 2: evict the oldest of a group up to its threshold, until the target is met.
  auto evict_group = [&](bool soft_pinned, int64_t up_to) {
    for (Shard& shard : shards_) {
      if (freed >= target_bytes) return;
      absl::MutexLock lock(&shard.mu);
      for (auto it = shard.objects.begin(); it != shard.objects.end() && freed < target_bytes;) {
        auto next = std::next(it);
        const Object& object = it->second;
        if (object.state == State::kComplete && !object.hard_pin && !Leased(object, now) &&
            (object.soft_pin_deadline_us > now) == soft_pinned && object.last_access_us <= up_to &&
            (!tenant.has_value() || InTenant(it->first, *tenant))) {
          freed += bytes_of(object);
          pool_freed += object.size * object.replicas.size();
          ++objects;
          EraseLocked(shard, it);
        }
        it = next;
      }
    }
  };
  evict_group(false, threshold(plain, target_bytes));
  if (freed < target_bytes && config_.allow_evict_soft_pinned_objects && !soft.empty()) {
    evict_group(true, threshold(soft, target_bytes - freed));
  }
  evicted_objects_.fetch_add(objects);
  evicted_bytes_.fetch_add(pool_freed);
  evicted_objects_total_->Increment(objects);
  evicted_bytes_total_->Increment(pool_freed);
  return freed;
}

void MasterService::StartMaintenance() {
  if (maintenance_.joinable()) return;
  stop_maintenance_ = std::make_unique<absl::Notification>();
  maintenance_ = std::thread([this] {
    while (!stop_maintenance_->WaitForNotificationWithTimeout(config_.maintenance_interval)) {
      RunMaintenance();
    }
  });
}

void MasterService::StopMaintenance() {
  if (!maintenance_.joinable()) return;
  stop_maintenance_->Notify();
  maintenance_.join();
}

}  // namespace mooncake::master
