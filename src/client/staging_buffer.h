// The local buffer of the copying calls: blocks of registered memory handed out to calls that
// stage values through it.
//
// A caller that holds no block may wait for one (Acquire); a caller that already holds blocks only
// tries (TryAcquire) and, when that fails, finishes its work and releases what it holds first. So
// no caller waits while holding memory, and any request no larger than the buffer is eventually
// served.
//
// Thread safety: thread-safe.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/offset_allocator.h"

namespace mooncake::client {

class StagingBuffer {
 public:
  StagingBuffer(char* base, uint64_t size)
      : base_(base), capacity_(size / kAlignment * kAlignment), allocator_(size, kAlignment) {}

  struct Block {
    char* data = nullptr;
    uint64_t size = 0;
    uint32_t handle = 0;
  };

  // Whether a request of `size` bytes can ever be served.
  bool Fits(uint64_t size) const {
    return size > 0 && size <= capacity_ && RoundUp(size) <= capacity_;
  }
  uint64_t capacity() const { return capacity_; }

  std::optional<Block> TryAcquire(uint64_t size) {
    absl::MutexLock lock(&mu_);
    return AllocateLocked(size);
  }

  // Waits until a block is free. REQUIRES: Fits(size), and the caller holds no block.
  Block Acquire(uint64_t size) {
    absl::MutexLock lock(&mu_);
    std::optional<Block> block;
    auto available = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      block = AllocateLocked(size);
      return block.has_value();
    };
    mu_.Await(absl::Condition(&available));
    return *block;
  }

  void Release(const Block& block) {
    absl::MutexLock lock(&mu_);
    allocator_.Free(block.handle);
  }

 private:
  static constexpr uint64_t kAlignment = 64;
  static uint64_t RoundUp(uint64_t size) {
    return (size + kAlignment - 1) / kAlignment * kAlignment;
  }

  std::optional<Block> AllocateLocked(uint64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::optional<OffsetAllocator::Allocation> got = allocator_.Allocate(size);
    if (!got) return std::nullopt;
    return Block{base_ + got->offset, size, got->handle};
  }

  char* const base_;
  const uint64_t capacity_;
  mutable absl::Mutex mu_;
  OffsetAllocator allocator_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::client
