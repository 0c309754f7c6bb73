// MasterService: where a put's replicas go (distinct segments, preferred ones, spread, the
// freest first).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "master/master_service_fixture.h"

namespace mooncake::master {
namespace {

TEST_F(MasterServiceTest, ReplicasGoToDistinctSegmentsBestEffort) {
  Mount("a:1", 16 * kMiB);
  Mount("b:1", 16 * kMiB);
  auto two = Start("two", kMiB, {.replica_num = 2});
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_NE((*two)[0].segment, (*two)[1].segment);
  auto many = Start("many", kMiB, {.replica_num = 5});
  ASSERT_TRUE(many.ok());
  EXPECT_EQ(many->size(), 2u);  // only two segments exist
  EXPECT_EQ(ErrorCodeOf(Start("zero", kMiB, {.replica_num = 0}).status()),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(Start("too-many", kMiB, {.replica_num = 17}).status()),
            ErrorCode::INVALID_PARAMS);
}

TEST_F(MasterServiceTest, PreferredSegmentsComeFirst) {
  for (const char* name : {"a:1", "b:1", "c:1"}) Mount(name, 16 * kMiB);
  for (int i = 0; i < 16; ++i) {  // c:1 holds exactly 16
    auto placed = Start("p" + std::to_string(i), kMiB, {.preferred_segments = {"c:1"}});
    ASSERT_TRUE(placed.ok());
    EXPECT_EQ((*placed)[0].segment, "c:1");
  }
  // A full preferred segment, or an unknown one, is only a hint.
  auto overflow = Start("p16", kMiB, {.preferred_segments = {"c:1"}});
  ASSERT_TRUE(overflow.ok());
  EXPECT_NE((*overflow)[0].segment, "c:1");
  EXPECT_TRUE(Start("q", kMiB, {.preferred_segments = {"nowhere:1"}}).ok());
}

TEST_F(MasterServiceTest, PlacementAmongManySegmentsSpreadsAndKeepsReplicasDistinct) {
  // Forty segments: the preferred one first (named twice, used once), the others from a random
  // start in the mount order each time, so that the objects spread; never a segment twice in one
  // replica set.
  for (int s = 0; s < 40; ++s) Mount("s" + std::to_string(s) + ":1", 64 * kMiB);
  std::set<std::string> others;
  for (int i = 0; i < 60; ++i) {  // s7:1 holds 64 of them
    auto placed = Start("k" + std::to_string(i), kMiB,
                        {.replica_num = 3, .preferred_segments = {"s7:1", "nowhere:1", "s7:1"}});
    ASSERT_TRUE(placed.ok()) << placed.status();
    ASSERT_EQ(placed->size(), 3u);
    EXPECT_EQ((*placed)[0].segment, "s7:1");
    const std::set<std::string> distinct = {(*placed)[0].segment, (*placed)[1].segment,
                                            (*placed)[2].segment};
    EXPECT_EQ(distinct.size(), 3u);
    others.insert((*placed)[1].segment);
    others.insert((*placed)[2].segment);
  }
  EXPECT_EQ(others.count("s7:1"), 0u);
  EXPECT_GE(others.size(), 20u);  // of 39, over 120 choices
}

class FreeRatioFirstTest : public MasterServiceTest {
 protected:
  FreeRatioFirstTest()
      : MasterServiceTest(
            MasterConfig{.allocation_strategy = AllocationStrategy::kFreeRatioFirst}) {}
};

TEST_F(FreeRatioFirstTest, TheFreestOfTheSampledSegmentsComesFirst) {
  // Three segments, as many as are sampled: every put goes to the freest of them, so that they
  // fill evenly, whatever the random start.
  for (const char* name : {"a:1", "b:1", "c:1"}) Mount(name, 16 * kMiB);
  ASSERT_TRUE(Put("fill-a", 8 * kMiB, {.preferred_segments = {"a:1"}}).ok());
  ASSERT_TRUE(Put("fill-b", 4 * kMiB, {.preferred_segments = {"b:1"}}).ok());
  // Free: a 8, b 12, c 16 MiB.
  std::map<std::string, int> count;
  for (int i = 0; i < 12; ++i) {
    auto placed = Start("k" + std::to_string(i), kMiB);
    ASSERT_TRUE(placed.ok()) << placed.status();
    ++count[(*placed)[0].segment];
  }
  // c alone until it is level with b (4 puts), then b and c in turn (4 each): a never.
  EXPECT_EQ(count["c:1"], 8);
  EXPECT_EQ(count["b:1"], 4);
  EXPECT_EQ(count["a:1"], 0);
}

}  // namespace
}  // namespace mooncake::master
