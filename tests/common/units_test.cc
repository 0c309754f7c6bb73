#include "common/units.h"

#include <gtest/gtest.h>

#include "absl/time/time.h"

namespace mooncake {
namespace {

TEST(ByteSizeTest, ParsesUnitsCaseInsensitivelyAndBinary) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("512MB"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("16 MB"), 16ull << 20);
  EXPECT_EQ(*ParseByteSize("4gb"), 4ull << 30);
  EXPECT_EQ(*ParseByteSize("4GiB"), 4ull << 30);
  EXPECT_EQ(*ParseByteSize("2k"), 2048u);
  EXPECT_EQ(*ParseByteSize("1.5g"), 3ull << 29);
  EXPECT_EQ(*ParseByteSize(" 7 b "), 7u);
  EXPECT_EQ(*ParseByteSize("1T"), 1ull << 40);
}

TEST(ByteSizeTest, RejectsWhatIsNotASize) {
  for (const char* bad : {"", "MB", "-1", "50%", "12 parsecs", "1..2g", "0x10",
                          "99999999999999999999", "16777216T", "1e3"}) {
    absl::StatusOr<uint64_t> parsed = ParseByteSize(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
  }
}

TEST(ByteSizeTest, Formats) {
  EXPECT_EQ(FormatByteSize(16ull << 20), "16 MiB");
  EXPECT_EQ(FormatByteSize(1000), "1000 B");
  EXPECT_EQ(FormatByteSize(0), "0 B");
  EXPECT_EQ(FormatByteSize(3ull << 30), "3 GiB");
}

TEST(DurationTest, BareNumbersTakeTheDefaultUnit) {
  EXPECT_EQ(*ParseDuration("10000", absl::Milliseconds(1)), absl::Seconds(10));
  EXPECT_EQ(*ParseDuration("10", absl::Seconds(1)), absl::Seconds(10));
  EXPECT_EQ(*ParseDuration("0.5", absl::Seconds(1)), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("10s", absl::Milliseconds(1)), absl::Seconds(10));
  EXPECT_EQ(*ParseDuration("1.5h", absl::Milliseconds(1)), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("300ms", absl::Seconds(1)), absl::Milliseconds(300));
  EXPECT_EQ(*ParseDuration("0", absl::Seconds(1)), absl::ZeroDuration());
  for (const char* bad : {"", "-1", "-5s", "ten", "5 parsecs", "inf", "1e400", "+3"}) {
    EXPECT_FALSE(ParseDuration(bad, absl::Seconds(1)).ok()) << bad;
  }
}

}  // namespace
}  // namespace mooncake
