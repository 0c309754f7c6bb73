#include "master/segment_manager.h"

#include <algorithm>
#include <random>

#include "absl/container/inlined_vector.h"
#include "absl/time/clock.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "http/spin_wait.h"

namespace mooncake::master {
namespace {

// How many segments free_ratio_first samples before choosing the freest.
constexpr size_t kFreeRatioSamples = 3;

double FreeRatio(const SegmentInfo& info, const OffsetAllocator& allocator) {
  return info.size == 0 ? 0 : static_cast<double>(allocator.free_bytes()) / info.size;
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

// Checks an owner's report against a segment of `size` bytes; `order` gets the entries' indexes
// sorted by offset.
absl::Status CheckIndex(std::string_view name, uint64_t size, uint64_t alignment,
                        const std::vector<IndexEntry>& index, std::vector<size_t>& order) {
  order.resize(index.size());
  for (size_t i = 0; i < index.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&index](size_t a, size_t b) { return index[a].offset < index[b].offset; });
  uint64_t end = 0;  // of the previous entry, rounded up to the alignment
  for (size_t i : order) {
    const IndexEntry& entry = index[i];
    if (entry.size == 0 || entry.offset % alignment != 0 || entry.offset > size ||
        entry.size > size - entry.offset) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("segment '{}': index entry '{}' (offset {}, size {}) is empty, "
                                   "not aligned to {} bytes, or outside the segment's {} bytes",
                                   name, entry.key, entry.offset, entry.size, alignment, size));
    }
    if (entry.offset < end) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("segment '{}': index entry '{}' at offset {} overlaps the one "
                                   "before it",
                                   name, entry.key, entry.offset));
    }
    end = entry.offset + (entry.size + alignment - 1) / alignment * alignment;
  }
  return absl::OkStatus();
}

}  // namespace

SegmentManager::SegmentManager(AllocationStrategy strategy, uint64_t alignment, uint64_t seed,
                               absl::Duration wait_spin)
    : strategy_(strategy), alignment_(alignment), wait_spin_(wait_spin) {
  if (seed != 0) {
    std::seed_seq seq{seed};
    rng_ = absl::BitGen(seq);
  }
}

absl::StatusOr<Mounted> SegmentManager::Mount(std::string_view name, uint64_t base, uint64_t size,
                                              std::string_view client_id, uint64_t incarnation,
                                              const std::vector<IndexEntry>* index) {
  if (name.empty() || name.size() > 1024) {
    return MakeError(ErrorCode::INVALID_PARAMS, "segment name must be 1 to 1024 bytes");
  }
  // A name is a data endpoint ("host:port"); it also appears in logs, metrics and admin pages.
  for (char c : name) {
    if (c <= ' ' || c > '~' || c == '"' || c == '\\') {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       "segment name must be printable ASCII without spaces, quotes or "
                       "backslashes");
    }
  }
  if (size < alignment_) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("segment '{}' has size {}; it must be at least {} bytes", name,
                                 size, alignment_));
  }
  if (base > UINT64_MAX - size) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("segment '{}': base {} + size {} overflows", name, base, size));
  }
  std::vector<size_t> order;
  if (index != nullptr) {
    if (absl::Status valid = CheckIndex(name, size, alignment_, *index, order); !valid.ok()) {
      return valid;
    }
  }
  auto allocator = std::make_unique<OffsetAllocator>(size, alignment_);
  Mounted mounted;
  if (index != nullptr && !index->empty()) {
    std::vector<OffsetAllocator::Range> ranges;
    ranges.reserve(order.size());
    for (size_t i : order) ranges.push_back({(*index)[i].offset, (*index)[i].size});
    std::optional<std::vector<OffsetAllocator::Allocation>> reserved =
        allocator->ReserveAll(ranges);
    if (!reserved) {  // CheckIndex let through something the allocator cannot hold
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("segment '{}': its index does not fit the segment", name));
    }
    mounted.restored.resize(index->size());
    for (size_t k = 0; k < order.size(); ++k) {
      mounted.restored[order[k]] = Replica{0, (*reserved)[k].handle, (*reserved)[k].offset};
    }
  }
  absl::MutexLock lock(&mu_);
  if (auto it = by_name_.find(AsAbsl(name)); it != by_name_.end()) {
    Segment& old = segments_.at(it->second);
    if (old.info.client_id == client_id) {
      return MakeError(ErrorCode::SEGMENT_ALREADY_EXISTS,
                       fmt::format("segment '{}' is already mounted", name));
    }
    mounted.replaced = old.info;
    mounted.replaced->used = old.allocator->used_bytes();
    RemoveLocked(it->second);
  }
  const SegmentId id = next_id_++;
  Segment segment{
      SegmentInfo{id, std::string(name), base, size, std::string(client_id), 0, incarnation},
      std::move(allocator)};
  segment.mount_id = absl::Uniform<uint64_t>(rng_, 1, UINT64_MAX);
  segment.indexed = index != nullptr;
  mounted.mount_id = segment.mount_id;
  for (Replica& replica : mounted.restored) replica.segment = id;
  segments_.emplace(id, std::move(segment));
  by_name_.emplace(std::string(name), id);
  order_.push_back(id);
  total_bytes_ += size;
  mounted.id = id;
  return mounted;
}

bool SegmentManager::IsMountedBy(std::string_view name, std::string_view client_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_name_.find(AsAbsl(name));
  return it != by_name_.end() && segments_.at(it->second).info.client_id == client_id;
}

void SegmentManager::RemoveLocked(SegmentId id) {
  const Segment& segment = segments_.at(id);
  total_bytes_ -= segment.info.size;
  by_name_.erase(segment.info.name);
  order_.erase(std::find(order_.begin(), order_.end(), id));
  segments_.erase(id);
  changes_.fetch_add(1, std::memory_order_release);
}

absl::StatusOr<SegmentInfo> SegmentManager::Unmount(std::string_view name,
                                                    std::string_view client_id) {
  absl::MutexLock lock(&mu_);
  auto it = by_name_.find(AsAbsl(name));
  if (it == by_name_.end()) {
    return MakeError(ErrorCode::SEGMENT_NOT_FOUND,
                     fmt::format("segment '{}' is not mounted", name));
  }
  const SegmentId id = it->second;
  Segment& segment = segments_.at(id);
  if (!client_id.empty() && segment.info.client_id != client_id) {
    return MakeError(ErrorCode::ILLEGAL_CLIENT,
                     fmt::format("segment '{}' belongs to another client", name));
  }
  SegmentInfo info = segment.info;
  info.used = segment.allocator->used_bytes();
  RemoveLocked(id);
  return info;
}

void SegmentManager::ForEachCandidateLocked(const std::vector<std::string>& preferred,
                                            absl::FunctionRef<bool(Segment&)> visit) {
  // Walked lazily: a replica set usually takes the first candidate or two, so a put's cost per key
  // does not grow with the number of segments mounted.
  absl::InlinedVector<Segment*, 4> chosen;  // the preferred segments, visited first
  for (const std::string& name : preferred) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) continue;
    Segment* segment = &segments_.at(it->second);
    if (std::find(chosen.begin(), chosen.end(), segment) != chosen.end()) continue;
    chosen.push_back(segment);
    if (!visit(*segment)) return;
  }
  const size_t n = order_.size();
  if (n == 0) return;
  const auto rest = [&](size_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {  // under mu_
    Segment* segment = &segments_.at(order_[i % n]);
    return std::find(chosen.begin(), chosen.end(), segment) == chosen.end() ? segment : nullptr;
  };
  // A random rotation of the mount order: spreads objects over segments at O(1) cost per choice.
  const size_t start = absl::Uniform<size_t>(rng_, 0, n);
  size_t i = start;
  if (strategy_ == AllocationStrategy::kFreeRatioFirst) {
    // Of the first few segments of the rotation, the freest goes first.
    absl::InlinedVector<Segment*, kFreeRatioSamples> sampled;
    for (; i < start + n && sampled.size() < kFreeRatioSamples; ++i) {
      if (Segment* segment = rest(i)) sampled.push_back(segment);
    }
    std::sort(sampled.begin(), sampled.end(), [](const Segment* a, const Segment* b) {
      return FreeRatio(a->info, *a->allocator) > FreeRatio(b->info, *b->allocator);
    });
    for (Segment* segment : sampled) {
      if (!visit(*segment)) return;
    }
  }
  for (; i < start + n; ++i) {
    Segment* segment = rest(i);
    if (segment != nullptr && !visit(*segment)) return;
  }
}

absl::StatusOr<Replicas> SegmentManager::Allocate(uint64_t size, uint32_t count,
                                                  const std::vector<std::string>& preferred) {
  absl::MutexLock lock(&mu_);
  return AllocateLocked(size, count, preferred);
}

std::vector<absl::StatusOr<Replicas>> SegmentManager::AllocateEach(
    absl::Span<const uint64_t> sizes, uint32_t count, const std::vector<std::string>& preferred) {
  std::vector<absl::StatusOr<Replicas>> out;
  out.reserve(sizes.size());
  absl::MutexLock lock(&mu_);
  for (uint64_t size : sizes) out.push_back(AllocateLocked(size, count, preferred));
  return out;
}

absl::StatusOr<Replicas> SegmentManager::AllocateLocked(uint64_t size, uint32_t count,
                                                        const std::vector<std::string>& preferred) {
  Replicas replicas;
  replicas.reserve(std::min<size_t>(count, segments_.size()));
  if (count > 0) {
    ForEachCandidateLocked(preferred, [&](Segment& segment) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      if (segment.journal.size() >= kMaxJournal) return true;  // its owner is far behind
      std::optional<OffsetAllocator::Allocation> got = segment.allocator->Allocate(size);
      if (got) replicas.push_back(Replica{segment.info.id, got->handle, got->offset});
      return replicas.size() < count;
    });
  }
  if (replicas.empty()) {
    return MakeError(ErrorCode::NO_AVAILABLE_HANDLE,
                     fmt::format("no mounted segment has {} free bytes in one block", size));
  }
  return replicas;
}

void SegmentManager::Free(const Replica* replicas, size_t n, bool indexed) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < n; ++i) {
    auto it = segments_.find(replicas[i].segment);
    if (it == segments_.end()) continue;
    Segment& segment = it->second;
    if (!segment.indexed || !indexed) {
      segment.allocator->Free(replicas[i].handle);
      continue;
    }
    const uint64_t seq = JournalLocked(segment, false, IndexEntry{.offset = replicas[i].offset});
    segment.quarantine.emplace_back(seq, replicas[i].handle);
  }
}

void SegmentManager::Unindex(const Replica* replicas, size_t n) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < n; ++i) {
    auto it = segments_.find(replicas[i].segment);
    if (it != segments_.end() && it->second.indexed) {
      JournalLocked(it->second, false, IndexEntry{.offset = replicas[i].offset});
    }
  }
}

void SegmentManager::Index(std::string_view key, uint64_t size, uint64_t put_id,
                           const Replica* replicas, size_t n) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < n; ++i) {
    auto it = segments_.find(replicas[i].segment);
    if (it != segments_.end() && it->second.indexed) {
      JournalLocked(it->second, true,
                    IndexEntry{std::string(key), replicas[i].offset, size, put_id});
    }
  }
}

uint64_t SegmentManager::JournalLocked(Segment& segment, bool add, IndexEntry entry) {
  const uint64_t seq = segment.next_seq++;
  segment.journal.emplace_back(NowMicros(), IndexChange{seq, add, std::move(entry)});
  changes_.fetch_add(1, std::memory_order_release);
  return seq;
}

IndexBarrier SegmentManager::Barrier(absl::Span<const SegmentId> segments) const {
  IndexBarrier barrier;
  absl::ReaderMutexLock lock(&mu_);
  const auto add = [&barrier](SegmentId id, const Segment& segment) {
    if (segment.indexed && segment.next_seq - 1 > segment.acked) {
      barrier.emplace_back(id, segment.next_seq - 1);
    }
  };
  if (segments.empty()) {
    for (const auto& [id, segment] : segments_) add(id, segment);
    return barrier;
  }
  for (SegmentId id : segments) {
    auto it = segments_.find(id);
    if (it == segments_.end()) continue;
    if (std::any_of(barrier.begin(), barrier.end(),
                    [id](const auto& b) { return b.first == id; })) {
      continue;
    }
    add(id, it->second);
  }
  return barrier;
}

bool SegmentManager::SpinUntilReady(absl::FunctionRef<bool()> ready, absl::Duration limit,
                                    http::SpinRole role) const {
  // Looks again only when something changed; the first look is at once.
  uint64_t seen = changes_.load(std::memory_order_acquire) - 1;
  return http::SpinUntil(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        const uint64_t now = changes_.load(std::memory_order_acquire);
        if (now == seen) return false;
        seen = now;
        absl::ReaderMutexLock lock(&mu_);
        return ready();
      },
      std::min(wait_spin_, limit), role);
}

bool SegmentManager::AwaitAcknowledged(const IndexBarrier& barrier, absl::Duration timeout) {
  if (barrier.empty()) return true;
  const absl::Time deadline = absl::Now() + timeout;
  const int64_t behind_since = NowMicros() - absl::ToInt64Microseconds(timeout);
  const auto acknowledged = [this, &barrier, behind_since]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (const auto& [id, seq] : barrier) {
      auto it = segments_.find(id);
      if (it == segments_.end() || it->second.acked >= seq) continue;
      // An owner already this far behind is not waited for: each caller would wait in vain.
      const auto& journal = it->second.journal;
      if (!journal.empty() && journal.front().first < behind_since) continue;
      return false;
    }
    return true;
  };
  // The owner mostly answers within a round trip: poll for it before sleeping.
  SpinUntilReady(acknowledged, timeout, http::SpinRole::kWaiter);
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&acknowledged), deadline);
  for (const auto& [id, seq] : barrier) {
    auto it = segments_.find(id);
    if (it != segments_.end() && it->second.acked < seq) return false;
  }
  return true;
}

absl::StatusOr<IndexSync> SegmentManager::Sync(std::string_view name, std::string_view client_id,
                                               uint64_t mount_id, uint64_t acked,
                                               absl::Duration wait, size_t max_changes) {
  const absl::Time deadline = absl::Now() + wait;
  SegmentId id = 0;
  const auto ready = [this, &id]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto found = segments_.find(id);
    return found == segments_.end() || !found->second.journal.empty();
  };
  bool ready_now = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_name_.find(AsAbsl(name));
    if (it == by_name_.end() || segments_.at(it->second).info.client_id != client_id ||
        !segments_.at(it->second).indexed) {
      return MakeError(
          ErrorCode::SEGMENT_NOT_FOUND,
          fmt::format("segment '{}' is not mounted with an index by this client", name));
    }
    id = it->second;
    Segment* segment = &segments_.at(id);
    if (mount_id == segment->mount_id && acked > segment->acked) {
      segment->acked = std::min(acked, segment->next_seq - 1);
      changes_.fetch_add(1, std::memory_order_release);
      auto& journal = segment->journal;
      while (!journal.empty() && journal.front().second.seq <= segment->acked) journal.pop_front();
      auto& quarantine = segment->quarantine;
      while (!quarantine.empty() && quarantine.front().first <= segment->acked) {
        segment->allocator->Free(quarantine.front().second);
        quarantine.pop_front();
      }
    }
    ready_now = ready();
  }
  // A busy owner's next change mostly comes within a round trip: poll for it before sleeping.
  if (!ready_now) SpinUntilReady(ready, wait, http::SpinRole::kLongPoll);
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  auto found = segments_.find(id);
  if (found == segments_.end()) {
    return MakeError(ErrorCode::SEGMENT_NOT_FOUND, fmt::format("segment '{}' was unmounted", name));
  }
  const Segment& segment = found->second;
  IndexSync sync;
  sync.mount_id = segment.mount_id;
  const size_t n = std::min(max_changes, segment.journal.size());
  sync.changes.reserve(n);
  for (size_t i = 0; i < n; ++i) sync.changes.push_back(segment.journal[i].second);
  return sync;
}

ReplicaLocations SegmentManager::Locate(const Replica* replicas, size_t n) const {
  const absl::Span<const Replica> list(replicas, n);
  return std::move(LocateEach({&list, 1})[0]);
}

std::vector<ReplicaLocations> SegmentManager::LocateEach(
    absl::Span<const absl::Span<const Replica>> lists) const {
  std::vector<ReplicaLocations> out(lists.size());
  absl::ReaderMutexLock lock(&mu_);
  for (size_t l = 0; l < lists.size(); ++l) {
    out[l].reserve(lists[l].size());
    for (const Replica& replica : lists[l]) {
      auto it = segments_.find(replica.segment);
      if (it == segments_.end()) continue;
      out[l].push_back(ReplicaLocation{it->second.info.name, it->second.info.base + replica.offset,
                                       it->second.info.incarnation});
    }
  }
  return out;
}

bool SegmentManager::IsMounted(SegmentId id) const {
  absl::ReaderMutexLock lock(&mu_);
  return segments_.contains(id);
}

std::vector<SegmentInfo> SegmentManager::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<SegmentInfo> out;
  for (SegmentId id : order_) {
    const Segment& segment = segments_.at(id);
    out.push_back(segment.info);
    out.back().used = segment.allocator->used_bytes();
  }
  return out;
}

std::vector<std::string> SegmentManager::SegmentsOf(std::string_view client_id) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> out;
  for (SegmentId id : order_) {
    const Segment& segment = segments_.at(id);
    if (segment.info.client_id == client_id) out.push_back(segment.info.name);
  }
  return out;
}

uint64_t SegmentManager::total_bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  return total_bytes_;
}

uint64_t SegmentManager::used_bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  uint64_t used = 0;
  for (const auto& [id, segment] : segments_) used += segment.allocator->used_bytes();
  return used;
}

}  // namespace mooncake::master
