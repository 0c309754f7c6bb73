#include "common/random.h"

#include <gtest/gtest.h>

#include <array>
#include <set>

namespace mooncake {
namespace {

TEST(RandomTest, EveryDrawIsFreshAndFillsEveryByte) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(RandomU64());
  EXPECT_EQ(seen.size(), 1000u);
  // Odd sizes and offsets are filled to the last byte: 64 draws of 33 bytes leave no byte that is
  // zero in all of them.
  std::array<uint8_t, 33> any{};
  for (int i = 0; i < 64; ++i) {
    std::array<uint8_t, 34> buffer{};
    RandomBytes(buffer.data() + 1, 33);
    EXPECT_EQ(buffer[0], 0);
    for (size_t b = 0; b < 33; ++b) any[b] |= buffer[b + 1];
  }
  for (uint8_t b : any) EXPECT_NE(b, 0);
}

}  // namespace
}  // namespace mooncake
