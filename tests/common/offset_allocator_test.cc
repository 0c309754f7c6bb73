#include "common/offset_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace mooncake {
namespace {

TEST(OffsetAllocatorTest, AllocatesAlignedBlocksAndCoalescesOnFree) {
  OffsetAllocator allocator(1 << 20, 64);
  auto a = allocator.Allocate(100);
  auto b = allocator.Allocate(64);
  auto c = allocator.Allocate(1);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->size, 128u);
  EXPECT_EQ(b->size, 64u);
  EXPECT_EQ(c->size, 64u);
  for (const auto& x : {*a, *b, *c}) EXPECT_EQ(x.offset % 64, 0u);
  EXPECT_EQ(allocator.used_bytes(), 256u);
  EXPECT_TRUE(allocator.Free(b->handle));
  EXPECT_FALSE(allocator.Free(b->handle));  // double free is refused
  EXPECT_FALSE(allocator.Free(999999));     // so is a handle never given out
  EXPECT_TRUE(allocator.Free(a->handle));
  EXPECT_TRUE(allocator.Free(c->handle));
  EXPECT_EQ(allocator.free_bytes(), 1u << 20);
  // Everything merged back into one block: the whole segment fits again.
  auto whole = allocator.Allocate(1 << 20);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->offset, 0u);
  EXPECT_FALSE(allocator.Allocate(1));
}

TEST(OffsetAllocatorTest, RefusesWhatDoesNotFit) {
  OffsetAllocator allocator(4096, 64);
  EXPECT_FALSE(allocator.Allocate(0));
  EXPECT_FALSE(allocator.Allocate(4097));
  EXPECT_FALSE(allocator.Allocate(UINT64_MAX));
  OffsetAllocator tiny(63, 64);  // less than one unit
  EXPECT_EQ(tiny.capacity(), 0u);
  EXPECT_FALSE(tiny.Allocate(1));
}

TEST(OffsetAllocatorTest, HugeSegments) {
  const uint64_t capacity = uint64_t{3} << 40;  // 3 TiB of offsets: nothing is touched
  OffsetAllocator allocator(capacity, 4096);
  auto a = allocator.Allocate(uint64_t{2} << 40);
  auto b = allocator.Allocate(uint64_t{1} << 39);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(allocator.Allocate(uint64_t{1} << 40));
  EXPECT_TRUE(allocator.Free(a->handle));
  EXPECT_TRUE(allocator.Allocate(uint64_t{1} << 40));
}

// Random allocate/free against a model of the live blocks: blocks never overlap, stay inside the
// segment, and the free-byte count always matches.
TEST(OffsetAllocatorTest, MatchesAReferenceModelUnderRandomChurn) {
  const uint64_t capacity = 64 << 20;
  OffsetAllocator allocator(capacity, 64);
  std::mt19937_64 rng(12345);
  std::map<uint64_t, OffsetAllocator::Allocation> live;  // by offset
  uint64_t used = 0;
  for (int step = 0; step < 200000; ++step) {
    const bool allocate = live.empty() || rng() % 100 < 55;
    if (allocate) {
      const uint64_t size = 1 + rng() % (rng() % 4 == 0 ? (4 << 20) : 65536);
      auto got = allocator.Allocate(size);
      if (!got) {
        // Only when no free block could hold it.
        EXPECT_LT(allocator.largest_free_block(), size + 64) << "step " << step;
        continue;
      }
      ASSERT_GE(got->size, size);
      ASSERT_LE(got->offset + got->size, capacity);
      auto after = live.lower_bound(got->offset);
      if (after != live.end()) {
        ASSERT_LE(got->offset + got->size, after->first) << step;
      }
      if (after != live.begin()) {
        auto before = std::prev(after);
        ASSERT_LE(before->first + before->second.size, got->offset) << step;
      }
      live.emplace(got->offset, *got);
      used += got->size;
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      ASSERT_TRUE(allocator.Free(it->second.handle));
      used -= it->second.size;
      live.erase(it);
    }
    ASSERT_EQ(allocator.used_bytes(), used);
    ASSERT_EQ(allocator.live_allocations(), live.size());
  }
  for (auto& [offset, allocation] : live) ASSERT_TRUE(allocator.Free(allocation.handle));
  EXPECT_EQ(allocator.free_bytes(), capacity);
  EXPECT_TRUE(allocator.Allocate(capacity));
}

// KV-cache pages of SPEC.md §7: 4 MiB (Llama TP1), 512 KiB (TP8), ~4.3 MiB (DeepSeek MLA), 64 KiB
// (page size 1), 4 KiB warm-up values. Fill, then churn (free a random object, put a new one) at
// high occupancy, the way a full cache runs. The segment must stay usable to a high fill level.
TEST(OffsetAllocatorTest, LowFragmentationUnderTheKvCacheSizeMix) {
  const uint64_t capacity = uint64_t{1} << 30;
  OffsetAllocator allocator(capacity, 64);
  const std::vector<uint64_t> sizes = {4u << 20, 512u << 10, 4509715, 64u << 10, 4096};
  std::mt19937_64 rng(7);
  std::vector<OffsetAllocator::Allocation> live;
  auto put = [&] {
    auto got = allocator.Allocate(sizes[rng() % sizes.size()]);
    if (got) live.push_back(*got);
    return got.has_value();
  };
  while (put()) {
  }
  const double first_fill = static_cast<double>(allocator.used_bytes()) / capacity;
  double worst_fill = 1.0;
  for (int step = 0; step < 100000; ++step) {
    const size_t victim = rng() % live.size();
    ASSERT_TRUE(allocator.Free(live[victim].handle));
    live[victim] = live.back();
    live.pop_back();
    // Refill until a put fails: the fill level at that moment is what the cache can use.
    while (put()) {
    }
    worst_fill = std::min(worst_fill, static_cast<double>(allocator.used_bytes()) / capacity);
  }
  std::printf("fill at first failure: %.4f; worst fill at a failure during churn: %.4f\n",
              first_fill, worst_fill);
  EXPECT_GT(first_fill, 0.99);
  EXPECT_GT(worst_fill, 0.95);
}

TEST(OffsetAllocatorTest, ReserveAllRebuildsReportedRangesExactly) {
  OffsetAllocator allocator(1 << 20, 64);
  auto reserved = allocator.ReserveAll({{0, 100}, {128, 64}, {4096, 1}, {(1 << 20) - 64, 64}});
  ASSERT_TRUE(reserved.has_value());
  ASSERT_EQ(reserved->size(), 4u);
  EXPECT_EQ((*reserved)[0].offset, 0u);
  EXPECT_EQ((*reserved)[0].size, 128u);  // rounded up to the alignment
  EXPECT_EQ((*reserved)[2].offset, 4096u);
  EXPECT_EQ(allocator.live_allocations(), 4u);
  EXPECT_EQ(allocator.used_bytes(), 128u + 64 + 64 + 64);
  // New allocations fill the gaps and never overlap a reserved range.
  std::vector<OffsetAllocator::Allocation> all = *reserved;
  while (auto got = allocator.Allocate(64)) all.push_back(*got);
  EXPECT_EQ(allocator.free_bytes(), 0u);
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < all.size(); ++i)
    EXPECT_GE(all[i].offset, all[i - 1].offset + all[i - 1].size);
  // Freeing everything merges back into one block.
  for (const auto& a : all) ASSERT_TRUE(allocator.Free(a.handle));
  EXPECT_EQ(allocator.largest_free_block(), uint64_t{1} << 20);
  // An allocator in use, and bad ranges, are refused without change.
  ASSERT_TRUE(allocator.Allocate(64).has_value());
  EXPECT_FALSE(allocator.ReserveAll({{4096, 64}}).has_value());
  OffsetAllocator fresh(1 << 20, 64);
  EXPECT_FALSE(fresh.ReserveAll({{0, 100}, {64, 10}}).has_value());     // overlap
  EXPECT_FALSE(fresh.ReserveAll({{128, 10}, {0, 10}}).has_value());     // not in order
  EXPECT_FALSE(fresh.ReserveAll({{32, 10}}).has_value());               // unaligned
  EXPECT_FALSE(fresh.ReserveAll({{0, 0}}).has_value());                 // empty
  EXPECT_FALSE(fresh.ReserveAll({{(1 << 20) - 64, 65}}).has_value());   // past the end
  EXPECT_FALSE(fresh.ReserveAll({{UINT64_MAX - 63, 64}}).has_value());  // far past it
  EXPECT_EQ(fresh.free_bytes(), uint64_t{1} << 20);
  EXPECT_TRUE(fresh.ReserveAll({}).has_value());
}

}  // namespace
}  // namespace mooncake
