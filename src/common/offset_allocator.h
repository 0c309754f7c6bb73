// An O(1) allocator of offsets inside one segment, by two-level segregated fit.
//
// Free blocks are kept in 512 size classes ("bins") shaped like small floating-point numbers: an
// exponent (top level, 64 of them) and a 3-bit mantissa (second level, 8 per exponent), so a bin's
// sizes span at most 1/8 of its lower bound. Two bitmasks say which bins are non-empty, so finding
// a block is two count-trailing-zeros, whatever the number of blocks. A block is taken from the
// first non-empty bin whose smallest size fits the request; the rest of it goes back as a new free
// block. Freeing merges the block with free neighbours, so the free space of an empty allocator is
// always one block. Worst-case waste from rounding is 1/8 of a request plus the alignment.
//
// The allocator hands out offsets; it never touches the memory they describe.
// Thread safety: none; the owner serializes calls.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace mooncake {

class OffsetAllocator {
 public:
  // Manages [0, capacity) in units of `alignment` bytes (a power of two); a tail shorter than one
  // unit is never handed out.
  explicit OffsetAllocator(uint64_t capacity, uint64_t alignment = 64);

  struct Allocation {
    uint64_t offset;  // bytes from the start of the segment, a multiple of the alignment
    uint64_t size;    // bytes reserved: the request rounded up to the alignment
    uint32_t handle;  // pass to Free()
  };

  // A block of at least `size` bytes, or nullopt when no free block is large enough.
  // REQUIRES: size > 0.
  std::optional<Allocation> Allocate(uint64_t size);

  // Returns a block to the free space. False (and no change) for a handle that is not live.
  bool Free(uint32_t handle);

  // A byte range to reserve with ReserveAll.
  struct Range {
    uint64_t offset;
    uint64_t size;
  };
  // Reserves exactly these ranges in an allocator that has handed out nothing yet (rebuilding the
  // allocations of a segment whose owner reported what it holds): one allocation per range, in
  // order, each `size` rounded up to the alignment. Nullopt, and no change, if the allocator is in
  // use or a range is empty, unaligned, past the end, or not after the previous one.
  std::optional<std::vector<Allocation>> ReserveAll(const std::vector<Range>& ranges);

  uint64_t capacity() const { return capacity_units_ * alignment_; }
  uint64_t free_bytes() const { return free_units_ * alignment_; }
  uint64_t used_bytes() const { return capacity() - free_bytes(); }
  // A lower bound of the largest block Allocate() could return now (exact to within 1/8).
  uint64_t largest_free_block() const;
  size_t live_allocations() const { return live_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr int kTopBins = 64;
  static constexpr int kLeafBins = 8;

  struct Node {
    uint64_t offset = 0;             // units
    uint64_t size = 0;               // units
    uint32_t prev_neighbor = kNone;  // the block just before this one in address order
    uint32_t next_neighbor = kNone;
    uint32_t prev_in_bin = kNone;  // free blocks: the bin's doubly linked list
    uint32_t next_in_bin = kNone;
    bool used = false;
    bool live = false;  // the node describes a block (not on the spare list)
  };

  // `bytes` rounded up to whole units of the alignment (without overflow).
  uint64_t Units(uint64_t bytes) const {
    return bytes / alignment_ + (bytes % alignment_ != 0 ? 1 : 0);
  }
  uint32_t NewNode(uint64_t offset, uint64_t size);
  void ReleaseNode(uint32_t index);
  void InsertFree(uint32_t index);
  void RemoveFree(uint32_t index);
  int FindBin(int min_bin) const;

  const uint64_t alignment_;
  const uint64_t capacity_units_;
  uint64_t free_units_ = 0;
  size_t live_ = 0;
  uint64_t top_mask_ = 0;
  std::array<uint8_t, kTopBins> leaf_masks_{};
  std::array<uint32_t, kTopBins * kLeafBins> bin_heads_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> spare_nodes_;
};

}  // namespace mooncake
