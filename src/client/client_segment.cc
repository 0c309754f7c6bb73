// The segment a client contributes to the pool: its mount at the master with the index of the
// objects in it, the index kept in step with the master's changes, the heartbeat that keeps the
// client alive, the segment's faulting-in and its gauges. (The calls are in client.cc.)
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "client/client.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/strings.h"
#include "common/units.h"
#include "engine/transfer_engine.h"

namespace mooncake::client {
namespace {

#ifndef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14; older kernels refuse it (EINVAL)
#endif

}  // namespace

void Client::RegisterSegmentMetrics() {
  MetricsRegistry& registry = MetricsRegistry::Default();
  const MetricLabels labels = {{"segment", segment_name_}};
  const double size = static_cast<double>(config_.global_segment_size);
  registry.SetGaugeCallback("mooncake_client_segment_bytes",
                            "Bytes of the segment this client contributes", labels,
                            [size] { return size; });
  registry.SetGaugeCallback(
      "mooncake_client_segment_used_bytes",
      "Bytes of the objects held in the segment (as its index with the master says)", labels,
      [this] { return static_cast<double>(indexed_bytes_.load(std::memory_order_relaxed)); });
  registry.SetGaugeCallback(
      "mooncake_client_segment_objects", "Objects held in the segment", labels,
      [this] { return static_cast<double>(indexed_objects_.load(std::memory_order_relaxed)); });
}

void Client::UnregisterSegmentMetrics() {
  MetricsRegistry& registry = MetricsRegistry::Default();
  const MetricLabels labels = {{"segment", segment_name_}};
  for (const char* name : {"mooncake_client_segment_bytes", "mooncake_client_segment_used_bytes",
                           "mooncake_client_segment_objects"}) {
    registry.RemoveGaugeCallback(name, labels);
  }
}

void Client::IndexAdd(uint64_t offset, Indexed object) {
  auto [it, added] = index_.try_emplace(offset);
  if (!added) indexed_bytes_.fetch_sub(it->second.size, std::memory_order_relaxed);
  indexed_bytes_.fetch_add(object.size, std::memory_order_relaxed);
  it->second = std::move(object);
  indexed_objects_.store(index_.size(), std::memory_order_relaxed);
}

void Client::IndexErase(uint64_t offset) {
  auto it = index_.find(offset);
  if (it == index_.end()) return;
  indexed_bytes_.fetch_sub(it->second.size, std::memory_order_relaxed);
  index_.erase(it);
  indexed_objects_.store(index_.size(), std::memory_order_relaxed);
}

void Client::Prefault() {
  // In steps, so that Close() waits for one step at most. MADV_POPULATE_WRITE faults the pages
  // in as a write would, without changing a byte: transfers may land in them meanwhile.
  constexpr uint64_t kStep = 64u << 20;
  char* base = static_cast<char*>(segment_);
  const uint64_t size = config_.global_segment_size;
  const absl::Time started = absl::Now();
  for (uint64_t offset = 0; offset < size; offset += kStep) {
    if (stop_heartbeat_.HasBeenNotified()) return;
    if (madvise(base + offset, std::min(kStep, size - offset), MADV_POPULATE_WRITE) != 0) {
      spdlog::warn("cannot fault in segment {} ahead of its writes: {}", segment_name_,
                   strerror(errno));
      return;
    }
  }
  spdlog::info("segment {}: {} faulted in, in {}", segment_name_, FormatByteSize(size),
               absl::FormatDuration(absl::Now() - started));
}

absl::Status Client::Mount() {
  absl::MutexLock lock(&index_mu_);
  if (stop_heartbeat_.HasBeenNotified()) return Closed();  // Close() unmounts
  std::vector<IndexEntry> entries;
  entries.reserve(index_.size());
  for (const auto& [offset, object] : index_) {
    entries.push_back(IndexEntry{object.key, offset, object.size, object.put_id});
  }
  const auto mount = [&](const std::vector<IndexEntry>& index) {
    return master_->MountIndexedSegment(segment_name_, reinterpret_cast<uint64_t>(segment_),
                                        config_.global_segment_size, engine_->incarnation(), index);
  };
  absl::StatusOr<uint64_t> mounted = mount(entries);
  if (ErrorCodeOf(mounted.status()) == ErrorCode::INVALID_PARAMS && !entries.empty()) {
    // A master that cannot take the index (e.g. a smaller key limit): the segment comes back
    // empty rather than not at all.
    spdlog::warn("the master refused the index of segment {} ({} objects): {}; mounting it empty",
                 segment_name_, entries.size(), mounted.status().message());
    index_.clear();
    indexed_bytes_ = 0;
    indexed_objects_ = 0;
    entries.clear();
    mounted = mount(entries);
  }
  // Already mounted by us: an earlier attempt went through and its answer was lost; the next
  // sync learns the mount's id.
  if (ErrorCodeOf(mounted.status()) == ErrorCode::SEGMENT_ALREADY_EXISTS) {
    mount_id_ = 0;
    acked_ = 0;
    return absl::OkStatus();
  }
  if (!mounted.ok()) {
    return MakeError(ErrorCodeOf(mounted.status()),
                     fmt::format("cannot mount segment {} at the master: {}", segment_name_,
                                 mounted.status().message()));
  }
  mount_id_ = *mounted;
  acked_ = 0;
  if (!entries.empty()) {
    spdlog::info("segment {} mounted with the index of its {} objects", segment_name_,
                 entries.size());
  }
  return absl::OkStatus();
}

void Client::IndexSyncLoop() {
  // How long the master may hold a fetch open when there is no change: short enough that a
  // stop or a failover is noticed soon, long enough to cost nothing while idle.
  constexpr absl::Duration kWait = absl::Seconds(1);
  constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
  absl::Duration backoff = kFirstBackoff;
  bool failing = false;
  while (!stop_heartbeat_.HasBeenNotified()) {
    uint64_t mount_id = 0;
    uint64_t acked = 0;
    {
      absl::MutexLock lock(&index_mu_);
      mount_id = mount_id_;
      acked = acked_;
    }
    absl::StatusOr<IndexSyncReply> reply =
        master_->SyncSegmentIndex(segment_name_, mount_id, acked, kWait);
    if (stop_heartbeat_.HasBeenNotified()) return;
    if (!reply.ok()) {
      absl::Status why = reply.status();
      if (ErrorCodeOf(why) == ErrorCode::SEGMENT_NOT_FOUND) {
        // A master that does not know the segment: restarted, a new leader, or it declared this
        // client dead. Mount again, with the index, so the objects stay readable.
        why = Mount();
        if (why.ok()) {
          spdlog::info("segment {} mounted again at the master (it had lost it)", segment_name_);
          failing = false;
          backoff = kFirstBackoff;
          continue;
        }
      }
      if (!failing) {
        spdlog::warn("segment {}: keeping its index with the master failed (will retry): {}",
                     segment_name_, why.message());
      }
      failing = true;
      stop_heartbeat_.WaitForNotificationWithTimeout(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(2));
      continue;
    }
    if (failing) spdlog::info("segment {}: index in step with the master again", segment_name_);
    failing = false;
    backoff = kFirstBackoff;
    absl::MutexLock lock(&index_mu_);
    if (mount_id_ != mount_id) continue;  // mounted again meanwhile: this answer is stale
    if (reply->mount_id != mount_id_) {
      // The first sync after a mount whose id was not known: the changes start at its start.
      mount_id_ = reply->mount_id;
      acked_ = 0;
    }
    for (const IndexChange& change : reply->changes) {
      if (change.seq <= acked_) continue;  // applied already (an answer that was lost)
      if (change.add) {
        IndexAdd(change.entry.offset,
                 Indexed{change.entry.key, change.entry.size, change.entry.put_id});
      } else {
        IndexErase(change.entry.offset);
      }
      acked_ = change.seq;
    }
  }
}

absl::Duration Client::HeartbeatIntervalFor(const HeartbeatReply& reply) const {
  // A master whose liveness TTL is under four intervals gets four heartbeats per TTL, so that one
  // late or lost heartbeat never makes it declare a live client dead.
  if (!reply.client_live_ttl.has_value()) return config_.heartbeat_interval;
  return std::max(absl::Milliseconds(10),
                  std::min(config_.heartbeat_interval, *reply.client_live_ttl / 4));
}

void Client::HeartbeatLoop() {
  bool failing = false;
  while (!stop_heartbeat_.WaitForNotificationWithTimeout(heartbeat_interval_)) {
    absl::StatusOr<HeartbeatReply> reply = master_->Heartbeat(
        segment_ != nullptr ? std::vector<std::string>{segment_name_} : std::vector<std::string>{});
    if (!reply.ok()) {
      if (!failing) spdlog::warn("master heartbeat failed: {}", reply.status().message());
      failing = true;
      continue;
    }
    if (failing) spdlog::info("master answers heartbeats again");
    failing = false;
    heartbeat_interval_ = HeartbeatIntervalFor(*reply);  // a new master may say otherwise
    if (reply->epoch != epoch_) {
      // The segment (if any) is mounted again by IndexSyncLoop, which the new master answers
      // with SEGMENT_NOT_FOUND.
      spdlog::info("the master is a new one (epoch {})", reply->epoch);
      epoch_ = reply->epoch;
    }
  }
}

}  // namespace mooncake::client
