#include "common/offset_allocator.h"

#include <bit>

namespace mooncake {
namespace {

constexpr int kMantissaBits = 3;
constexpr uint64_t kMantissaValue = 1u << kMantissaBits;
constexpr uint64_t kMantissaMask = kMantissaValue - 1;

// The bin whose smallest size is the largest one <= size: where a free block of `size` is kept.
int BinRoundDown(uint64_t size) {
  if (size < kMantissaValue) return static_cast<int>(size);
  const int highest = 63 - std::countl_zero(size);
  const int shift = highest - kMantissaBits;
  const uint64_t exponent = static_cast<uint64_t>(shift) + 1;
  return static_cast<int>((exponent << kMantissaBits) | ((size >> shift) & kMantissaMask));
}

// The first bin all of whose blocks are >= size: where a search for `size` starts.
int BinRoundUp(uint64_t size) {
  int bin = BinRoundDown(size);
  if (size >= kMantissaValue) {
    const int shift = (63 - std::countl_zero(size)) - kMantissaBits;
    if (size & ((uint64_t{1} << shift) - 1)) ++bin;  // carries into the next exponent as needed
  }
  return bin;
}

uint64_t BinSize(int bin) {
  const uint64_t exponent = static_cast<uint64_t>(bin) >> kMantissaBits;
  const uint64_t mantissa = static_cast<uint64_t>(bin) & kMantissaMask;
  if (exponent == 0) return mantissa;
  return (mantissa | kMantissaValue) << (exponent - 1);
}

}  // namespace

OffsetAllocator::OffsetAllocator(uint64_t capacity, uint64_t alignment)
    : alignment_(std::has_single_bit(alignment) ? alignment : 64),
      capacity_units_(capacity / alignment_) {
  bin_heads_.fill(kNone);
  if (capacity_units_ > 0) InsertFree(NewNode(0, capacity_units_));
}

uint32_t OffsetAllocator::NewNode(uint64_t offset, uint64_t size) {
  uint32_t index;
  if (!spare_nodes_.empty()) {
    index = spare_nodes_.back();
    spare_nodes_.pop_back();
  } else {
    index = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  nodes_[index] = Node{.offset = offset, .size = size, .live = true};
  return index;
}

void OffsetAllocator::ReleaseNode(uint32_t index) {
  nodes_[index].live = false;
  spare_nodes_.push_back(index);
}

void OffsetAllocator::InsertFree(uint32_t index) {
  Node& node = nodes_[index];
  const int bin = BinRoundDown(node.size);
  node.used = false;
  node.prev_in_bin = kNone;
  node.next_in_bin = bin_heads_[bin];
  if (node.next_in_bin != kNone) nodes_[node.next_in_bin].prev_in_bin = index;
  bin_heads_[bin] = index;
  top_mask_ |= uint64_t{1} << (bin / kLeafBins);
  leaf_masks_[bin / kLeafBins] |= static_cast<uint8_t>(1u << (bin % kLeafBins));
  free_units_ += node.size;
}

void OffsetAllocator::RemoveFree(uint32_t index) {
  Node& node = nodes_[index];
  const int bin = BinRoundDown(node.size);
  if (node.prev_in_bin != kNone) {
    nodes_[node.prev_in_bin].next_in_bin = node.next_in_bin;
  } else {
    bin_heads_[bin] = node.next_in_bin;
  }
  if (node.next_in_bin != kNone) nodes_[node.next_in_bin].prev_in_bin = node.prev_in_bin;
  if (bin_heads_[bin] == kNone) {
    uint8_t& leaf = leaf_masks_[bin / kLeafBins];
    leaf = static_cast<uint8_t>(leaf & ~(1u << (bin % kLeafBins)));
    if (leaf == 0) top_mask_ &= ~(uint64_t{1} << (bin / kLeafBins));
  }
  node.prev_in_bin = node.next_in_bin = kNone;
  free_units_ -= node.size;
}

int OffsetAllocator::FindBin(int min_bin) const {
  const int top = min_bin / kLeafBins;
  if (top >= kTopBins) return -1;
  const unsigned leaf = leaf_masks_[top] & (0xffu << (min_bin % kLeafBins));
  if (leaf != 0) return top * kLeafBins + std::countr_zero(leaf);
  if (top + 1 >= kTopBins) return -1;
  const uint64_t above = top_mask_ & (~uint64_t{0} << (top + 1));
  if (above == 0) return -1;
  const int next_top = std::countr_zero(above);
  return next_top * kLeafBins + std::countr_zero(static_cast<unsigned>(leaf_masks_[next_top]));
}

std::optional<OffsetAllocator::Allocation> OffsetAllocator::Allocate(uint64_t size) {
  if (size == 0 || size > capacity()) return std::nullopt;
  const uint64_t units = Units(size);
  const int bin = FindBin(BinRoundUp(units));
  if (bin < 0) return std::nullopt;

  const uint32_t index = bin_heads_[bin];
  RemoveFree(index);
  Node& node = nodes_[index];
  node.used = true;
  ++live_;
  if (node.size > units) {
    // Split: the tail goes back to the free bins as a block of its own.
    const uint32_t rest = NewNode(nodes_[index].offset + units, nodes_[index].size - units);
    Node& block = nodes_[index];  // NewNode may have moved the vector
    Node& tail = nodes_[rest];
    block.size = units;
    tail.prev_neighbor = index;
    tail.next_neighbor = block.next_neighbor;
    if (block.next_neighbor != kNone) nodes_[block.next_neighbor].prev_neighbor = rest;
    block.next_neighbor = rest;
    InsertFree(rest);
  }
  const Node& block = nodes_[index];
  return Allocation{block.offset * alignment_, block.size * alignment_, index};
}

bool OffsetAllocator::Free(uint32_t handle) {
  if (handle >= nodes_.size() || !nodes_[handle].live || !nodes_[handle].used) return false;
  --live_;
  nodes_[handle].used = false;

  const uint32_t prev = nodes_[handle].prev_neighbor;
  if (prev != kNone && !nodes_[prev].used) {
    RemoveFree(prev);
    Node& node = nodes_[handle];
    node.offset = nodes_[prev].offset;
    node.size += nodes_[prev].size;
    node.prev_neighbor = nodes_[prev].prev_neighbor;
    if (node.prev_neighbor != kNone) nodes_[node.prev_neighbor].next_neighbor = handle;
    ReleaseNode(prev);
  }
  const uint32_t next = nodes_[handle].next_neighbor;
  if (next != kNone && !nodes_[next].used) {
    RemoveFree(next);
    Node& node = nodes_[handle];
    node.size += nodes_[next].size;
    node.next_neighbor = nodes_[next].next_neighbor;
    if (node.next_neighbor != kNone) nodes_[node.next_neighbor].prev_neighbor = handle;
    ReleaseNode(next);
  }
  InsertFree(handle);
  return true;
}

std::optional<std::vector<OffsetAllocator::Allocation>> OffsetAllocator::ReserveAll(
    const std::vector<Range>& ranges) {
  if (live_ != 0) return std::nullopt;
  uint64_t cursor = 0;  // units: where the previous range ended
  for (const Range& range : ranges) {
    if (range.size == 0 || range.offset % alignment_ != 0) return std::nullopt;
    const uint64_t offset = range.offset / alignment_;
    if (offset < cursor || offset > capacity_units_) return std::nullopt;
    const uint64_t units = Units(range.size);
    if (units > capacity_units_ - offset) return std::nullopt;
    cursor = offset + units;
  }
  // Lay the blocks out again from scratch, in address order: used ones and the gaps between them.
  nodes_.clear();
  spare_nodes_.clear();
  bin_heads_.fill(kNone);
  leaf_masks_.fill(0);
  top_mask_ = 0;
  free_units_ = 0;
  uint32_t previous = kNone;
  const auto append = [&](uint64_t offset, uint64_t units, bool used) {
    const uint32_t index = NewNode(offset, units);
    nodes_[index].prev_neighbor = previous;
    if (previous != kNone) nodes_[previous].next_neighbor = index;
    previous = index;
    if (used) {
      nodes_[index].used = true;
      ++live_;
    } else {
      InsertFree(index);
    }
    return index;
  };
  std::vector<Allocation> out;
  out.reserve(ranges.size());
  cursor = 0;
  for (const Range& range : ranges) {
    const uint64_t offset = range.offset / alignment_;
    const uint64_t units = Units(range.size);
    if (offset > cursor) append(cursor, offset - cursor, false);
    const uint32_t handle = append(offset, units, true);
    out.push_back(Allocation{offset * alignment_, units * alignment_, handle});
    cursor = offset + units;
  }
  if (cursor < capacity_units_) append(cursor, capacity_units_ - cursor, false);
  return out;
}

uint64_t OffsetAllocator::largest_free_block() const {
  if (top_mask_ == 0) return 0;
  const int top = 63 - std::countl_zero(top_mask_);
  const int leaf = 7 - std::countl_zero(leaf_masks_[top]);
  return BinSize(top * kLeafBins + leaf) * alignment_;
}

}  // namespace mooncake
