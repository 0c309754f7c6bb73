#include "master/segment_manager.h"

#include <algorithm>
#include <random>

#include "common/error_code.h"
#include "common/strings.h"

namespace mooncake::master {
namespace {

// How many segments free_ratio_first samples before choosing the freest.
constexpr size_t kFreeRatioSamples = 3;

double FreeRatio(const SegmentInfo& info, const OffsetAllocator& allocator) {
  return info.size == 0 ? 0 : static_cast<double>(allocator.free_bytes()) / info.size;
}

}  // namespace

SegmentManager::SegmentManager(AllocationStrategy strategy, uint64_t alignment, uint64_t seed)
    : strategy_(strategy), alignment_(alignment) {
  if (seed != 0) {
    std::seed_seq seq{seed};
    rng_ = absl::BitGen(seq);
  }
}

absl::StatusOr<Mounted> SegmentManager::Mount(std::string_view name, uint64_t base, uint64_t size,
                                              std::string_view client_id, uint64_t incarnation) {
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
  Mounted mounted;
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
      std::make_unique<OffsetAllocator>(size, alignment_)};
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

std::vector<SegmentManager::Segment*> SegmentManager::CandidatesLocked(
    const std::vector<std::string>& preferred) {
  std::vector<Segment*> out;
  out.reserve(order_.size());
  for (const std::string& name : preferred) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) continue;
    Segment* segment = &segments_.at(it->second);
    if (std::find(out.begin(), out.end(), segment) == out.end()) out.push_back(segment);
  }
  const size_t first_rest = out.size();
  if (order_.empty()) return out;
  // A random rotation of the mount order: spreads objects over segments at O(1) cost per choice.
  const size_t start = absl::Uniform<size_t>(rng_, 0, order_.size());
  for (size_t i = 0; i < order_.size(); ++i) {
    Segment* segment = &segments_.at(order_[(start + i) % order_.size()]);
    if (std::find(out.begin(), out.begin() + first_rest, segment) == out.begin() + first_rest) {
      out.push_back(segment);
    }
  }
  if (strategy_ == AllocationStrategy::kFreeRatioFirst) {
    // Of a few sampled segments, the freest goes first.
    const size_t sampled = std::min(kFreeRatioSamples, out.size() - first_rest);
    std::sort(out.begin() + first_rest, out.begin() + first_rest + sampled,
              [](const Segment* a, const Segment* b) {
                return FreeRatio(a->info, *a->allocator) > FreeRatio(b->info, *b->allocator);
              });
  }
  return out;
}

absl::StatusOr<std::vector<Replica>> SegmentManager::Allocate(
    uint64_t size, uint32_t count, const std::vector<std::string>& preferred) {
  std::vector<Replica> replicas;
  absl::MutexLock lock(&mu_);
  for (Segment* segment : CandidatesLocked(preferred)) {
    if (replicas.size() == count) break;
    std::optional<OffsetAllocator::Allocation> got = segment->allocator->Allocate(size);
    if (!got) continue;
    replicas.push_back(Replica{segment->info.id, got->handle, got->offset});
  }
  if (replicas.empty()) {
    return MakeError(ErrorCode::NO_AVAILABLE_HANDLE,
                     fmt::format("no mounted segment has {} free bytes in one block", size));
  }
  return replicas;
}

void SegmentManager::Free(const Replica* replicas, size_t n) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < n; ++i) {
    auto it = segments_.find(replicas[i].segment);
    if (it != segments_.end()) it->second.allocator->Free(replicas[i].handle);
  }
}

std::vector<ReplicaLocation> SegmentManager::Locate(const Replica* replicas, size_t n) const {
  std::vector<ReplicaLocation> out;
  out.reserve(n);
  absl::ReaderMutexLock lock(&mu_);
  for (size_t i = 0; i < n; ++i) {
    auto it = segments_.find(replicas[i].segment);
    if (it == segments_.end()) continue;
    out.push_back(ReplicaLocation{it->second.info.name, it->second.info.base + replicas[i].offset,
                                  it->second.info.incarnation});
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
