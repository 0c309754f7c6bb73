// The master's reads: batch lookups shard by shard (ExistKey, GetSize, GetReplicaList) and the
// read leases GetReplicaList grants and ReleaseLeases ends.
#include <algorithm>
#include <array>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "fmt/format.h"
#include "master/master_service.h"

namespace mooncake::master {

void MasterService::ForEachKeyByShard(
    Keys keys, absl::Span<const uint32_t> indexes,
    absl::FunctionRef<void(Shard& shard, uint32_t i)> visit) const {
  ForEachKeyByShard([keys](uint32_t i) { return AsAbsl(keys[i]); }, indexes, visit);
}

void MasterService::ForEachKeyByShard(
    absl::FunctionRef<absl::string_view(uint32_t i)> key_of, absl::Span<const uint32_t> indexes,
    absl::FunctionRef<void(Shard& shard, uint32_t i)> visit) const {
  // Counting sort of the indexes by shard.
  std::array<uint32_t, kShards + 1> start{};
  absl::InlinedVector<uint8_t, 256> shard_of(indexes.size());
  for (size_t n = 0; n < indexes.size(); ++n) {
    shard_of[n] = static_cast<uint8_t>(ShardIndexOf(AsStd(key_of(indexes[n]))));
    ++start[shard_of[n] + 1];
  }
  for (size_t s = 0; s < kShards; ++s) start[s + 1] += start[s];
  absl::InlinedVector<uint32_t, 256> sorted(indexes.size());
  std::array<uint32_t, kShards> next{};
  std::copy(start.begin(), start.end() - 1, next.begin());
  for (size_t n = 0; n < indexes.size(); ++n) sorted[next[shard_of[n]]++] = indexes[n];

  for (size_t s = 0; s < kShards; ++s) {
    if (start[s] == start[s + 1]) continue;
    Shard& shard = shards_[s];
    absl::MutexLock lock(&shard.mu);
    for (uint32_t n = start[s]; n < start[s + 1]; ++n) shard.objects.prefetch(key_of(sorted[n]));
    for (uint32_t n = start[s]; n < start[s + 1]; ++n) visit(shard, sorted[n]);
  }
}

std::vector<absl::StatusOr<ReplicaList>> MasterService::GetReplicaList(Keys keys) {
  const int64_t lease_us = absl::ToInt64Microseconds(config_.default_kv_lease_ttl);
  // What each key's object held, read under its shard's lock; located after.
  struct Found {
    absl::Status status;
    uint64_t size = 0;
    uint32_t lease_id = 0;
    absl::InlinedVector<Replica, 1> replicas;
  };
  std::vector<Found> found(keys.size());
  absl::InlinedVector<uint32_t, 256> valid;
  valid.reserve(keys.size());
  for (uint32_t i = 0; i < keys.size(); ++i) {
    found[i].status = ValidateKey(keys[i]);
    if (found[i].status.ok()) valid.push_back(i);
  }
  // One clock reading for the batch: its leases start together.
  const int64_t now = clock_->NowMicros();
  uint64_t granted = 0;
  ForEachKeyByShard(keys, valid, [&](Shard& shard, uint32_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    const std::string_view key = keys[i];
    auto it = shard.objects.find(AsAbsl(key));
    if (it == shard.objects.end() || it->second.state != State::kComplete) {
      found[i].status =
          it == shard.objects.end()
              ? MakeError(ErrorCode::OBJECT_NOT_FOUND,
                          fmt::format("key '{}' not found", UserKey(key)))
              : MakeError(ErrorCode::REPLICA_IS_NOT_READY,
                          fmt::format("key '{}' is still being written", UserKey(key)));
      return;
    }
    Object& object = it->second;
    if (!Leased(object, now)) {
      // A new lease: releases of the previous one no longer count.
      object.lease_id = object.lease_id == UINT32_MAX ? 1 : object.lease_id + 1;
      object.readers = 0;
    }
    if (object.readers < UINT16_MAX) ++object.readers;
    object.lease_deadline_us = std::max(object.lease_deadline_us, now + lease_us);
    ++granted;
    object.last_access_us = now;
    found[i].size = object.size;
    found[i].lease_id = object.lease_id;
    found[i].replicas.assign(object.replicas.begin(), object.replicas.end());
  });

  if (granted > 0) leases_granted_->Increment(granted);
  std::vector<absl::Span<const Replica>> lists(keys.size());
  for (uint32_t i = 0; i < keys.size(); ++i) lists[i] = found[i].replicas;
  std::vector<ReplicaLocations> located = segments_.LocateEach(lists);
  std::vector<absl::StatusOr<ReplicaList>> results;
  results.reserve(keys.size());
  size_t errors = 0;
  for (uint32_t i = 0; i < keys.size(); ++i) {
    Found& f = found[i];
    if (!f.status.ok()) {
      results.push_back(std::move(f.status));
      ++errors;
      continue;
    }
    if (located[i].empty()) {
      results.push_back(MakeError(ErrorCode::OBJECT_NOT_FOUND,
                                  fmt::format("key '{}' has no replica left", UserKey(keys[i]))));
      ++errors;
      continue;
    }
    results.push_back(
        ReplicaList{f.size, std::move(located[i]), config_.default_kv_lease_ttl, f.lease_id});
  }
  CountOp("get_replica_list", keys.size(), errors);
  return results;
}

void MasterService::ReleaseLeases(absl::Span<const LeaseRelease> releases) {
  absl::InlinedVector<uint32_t, 256> all(releases.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  ForEachKeyByShard([releases](uint32_t i) { return AsAbsl(releases[i].key); }, all,
                    [&](Shard& shard, uint32_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                      auto it = shard.objects.find(AsAbsl(releases[i].key));
                      if (it == shard.objects.end()) return;
                      Object& object = it->second;
                      if (object.lease_id == releases[i].lease_id && object.readers > 0)
                        --object.readers;
                    });
}

std::vector<absl::StatusOr<bool>> MasterService::ExistKey(Keys keys) {
  std::vector<absl::StatusOr<bool>> results(keys.size(), false);
  absl::InlinedVector<uint32_t, 256> valid;
  valid.reserve(keys.size());
  size_t errors = 0;
  for (uint32_t i = 0; i < keys.size(); ++i) {
    if (absl::Status status = ValidateKey(keys[i]); !status.ok()) {
      results[i] = std::move(status);
      ++errors;
    } else {
      valid.push_back(i);
    }
  }
  ForEachKeyByShard(keys, valid, [&](Shard& shard, uint32_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto it = shard.objects.find(AsAbsl(keys[i]));
    // A probe, not a use: neither a lease nor an access for eviction.
    results[i] = it != shard.objects.end() && it->second.state == State::kComplete;
  });
  CountOp("exist_key", keys.size(), errors);
  return results;
}

std::vector<absl::StatusOr<uint64_t>> MasterService::GetSize(Keys keys) {
  std::vector<absl::StatusOr<uint64_t>> results;
  results.reserve(keys.size());
  size_t errors = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string_view key = keys[i];
    absl::Status valid = ValidateKey(key);
    absl::StatusOr<uint64_t> result;
    if (!valid.ok()) {
      result = std::move(valid);
    } else {
      Shard& shard = ShardOf(key);
      absl::MutexLock lock(&shard.mu);
      auto it = shard.objects.find(AsAbsl(key));
      if (it == shard.objects.end()) {
        result =
            MakeError(ErrorCode::OBJECT_NOT_FOUND, fmt::format("key '{}' not found", UserKey(key)));
      } else if (it->second.state != State::kComplete) {
        result = MakeError(ErrorCode::REPLICA_IS_NOT_READY,
                           fmt::format("key '{}' is still being written", UserKey(key)));
      } else {
        result = it->second.size;
      }
    }
    if (!result.ok()) ++errors;
    results.push_back(std::move(result));
  }
  CountOp("get_size", keys.size(), errors);
  return results;
}

}  // namespace mooncake::master
