#include "engine/buffer_registry.h"

#include <gtest/gtest.h>

#include "common/error_code.h"

namespace mooncake::engine {
namespace {

TEST(BufferRegistryTest, ContainsOnlyRangesInsideOneBuffer) {
  BufferRegistry registry;
  ASSERT_TRUE(registry.Register(0x1000, 0x1000, "cpu:0").ok());
  ASSERT_TRUE(registry.Register(0x2000, 0x1000, "cpu:0").ok());  // adjacent, not overlapping
  EXPECT_TRUE(registry.Contains(0x1000, 0x1000));
  EXPECT_TRUE(registry.Contains(0x1800, 0x10));
  EXPECT_FALSE(registry.Contains(0x1800, 0x1000));  // straddles two buffers
  EXPECT_FALSE(registry.Contains(0xfff, 2));
  EXPECT_FALSE(registry.Contains(0x2fff, 2));
  EXPECT_FALSE(registry.Contains(0x1000, 0));
  EXPECT_FALSE(registry.Contains(UINT64_MAX - 1, 4));  // wraps
  EXPECT_FALSE(registry.Contains(0, 0x10));
}

TEST(BufferRegistryTest, RefusesBadRanges) {
  BufferRegistry registry;
  ASSERT_TRUE(registry.Register(0x10000, 0x1000, "").ok());
  EXPECT_EQ(ErrorCodeOf(registry.Register(0x10800, 0x1000, "")), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(registry.Register(0xf800, 0x1000, "")), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(registry.Register(0, 0x1000, "")), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(registry.Register(0x20000, 0, "")), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(registry.Register(UINT64_MAX - 10, 100, "")), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(registry.Unregister(0x10001)), ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_TRUE(registry.Unregister(0x10000).ok());
  EXPECT_FALSE(registry.Contains(0x10000, 1));
}

}  // namespace
}  // namespace mooncake::engine
