// MasterService in-process with a fake clock: object lifecycle, leases, pins, eviction, liveness,
// segment loss, and that no sequence of requests leaks space.
#include "master/master_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/error_code.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace mooncake::master {
namespace {

constexpr char kClient[] = "client-1";
constexpr uint64_t kMiB = 1 << 20;

class MasterServiceTest : public ::testing::Test {
 protected:
  explicit MasterServiceTest(MasterConfig config = {})
      : service_(WithSeed(config), &clock_, &metrics_) {}

  static MasterConfig WithSeed(MasterConfig config) {
    config.seed = 42;
    return config;
  }

  void Mount(const std::string& name, uint64_t size, const std::string& client = kClient) {
    ASSERT_TRUE(service_.MountSegment(client, name, 0x10000000, size).ok());
  }

  absl::StatusOr<ReplicaLocations> Start(const std::string& key, uint64_t size,
                                         ReplicateConfig config = {}) {
    PutItem item{key, size};
    return service_.PutStart(kClient, {&item, 1}, config)[0];
  }

  absl::Status Put(const std::string& key, uint64_t size, ReplicateConfig config = {}) {
    absl::StatusOr<ReplicaLocations> started = Start(key, size, config);
    if (!started.ok()) return started.status();
    return service_.PutEnd(kClient, {&key, 1})[0];
  }

  ErrorCode GetCode(const std::string& key) {
    return ErrorCodeOf(service_.GetReplicaList({&key, 1})[0].status());
  }
  ErrorCode RemoveCode(const std::string& key) {
    return ErrorCodeOf(service_.Remove({&key, 1})[0]);
  }
  bool Exists(const std::string& key) { return *service_.ExistKey({&key, 1})[0]; }

  FakeClock clock_;
  MetricsRegistry metrics_;
  MasterService service_;
};

TEST_F(MasterServiceTest, PutLifecycle) {
  Mount("seg-a:1", 64 * kMiB);
  auto started = Start("k", 1000);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_EQ(started->size(), 1u);
  EXPECT_EQ((*started)[0].segment, "seg-a:1");
  EXPECT_GE((*started)[0].address, 0x10000000u);
  // Processing: not readable, not "existing", cannot be started again.
  EXPECT_EQ(GetCode("k"), ErrorCode::REPLICA_IS_NOT_READY);
  EXPECT_FALSE(Exists("k"));
  EXPECT_EQ(ErrorCodeOf(Start("k", 1000).status()), ErrorCode::OBJECT_ALREADY_EXISTS);
  std::string key = "k";
  ASSERT_TRUE(service_.PutEnd(kClient, {&key, 1})[0].ok());
  EXPECT_TRUE(service_.PutEnd(kClient, {&key, 1})[0].ok());  // a retried PutEnd is harmless
  auto got = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size, 1000u);
  EXPECT_EQ(got->replicas[0].address, (*started)[0].address);
  EXPECT_EQ(got->lease, absl::Milliseconds(10000));
  EXPECT_EQ(*service_.GetSize({&key, 1})[0], 1000u);
  // Complete objects are immutable.
  EXPECT_EQ(ErrorCodeOf(Start("k", 5).status()), ErrorCode::OBJECT_ALREADY_EXISTS);
}

TEST_F(MasterServiceTest, RevokeFreesTheSpace) {
  Mount("seg:1", 8 * kMiB);
  ASSERT_TRUE(Start("k", 4 * kMiB).ok());
  EXPECT_EQ(service_.Stats().used_bytes, 4 * kMiB);
  std::string key = "k";
  ASSERT_TRUE(service_.PutRevoke(kClient, {&key, 1})[0].ok());
  EXPECT_EQ(service_.Stats().used_bytes, 0u);
  EXPECT_EQ(ErrorCodeOf(service_.PutRevoke(kClient, {&key, 1})[0]), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(service_.PutEnd(kClient, {&key, 1})[0]), ErrorCode::OBJECT_NOT_FOUND);
}

TEST_F(MasterServiceTest, OnlyTheClientThatStartedAPutEndsIt) {
  Mount("seg:1", 8 * kMiB);
  ASSERT_TRUE(Start("k", 100).ok());
  std::string key = "k";
  EXPECT_EQ(ErrorCodeOf(service_.PutEnd("intruder", {&key, 1})[0]), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_EQ(ErrorCodeOf(service_.PutRevoke("intruder", {&key, 1})[0]), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_TRUE(service_.PutEnd(kClient, {&key, 1})[0].ok());
  EXPECT_EQ((*service_.Describe("k"))["client_id"], kClient);
}

TEST_F(MasterServiceTest, AbandonedPutsArePreemptedThenReclaimed) {
  Mount("seg:1", 8 * kMiB);
  ASSERT_TRUE(Start("k", kMiB).ok());
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(ErrorCodeOf(Start("k", kMiB).status()), ErrorCode::OBJECT_ALREADY_EXISTS);
  clock_.Advance(absl::Seconds(1));  // put_start_discard_timeout: 30 s
  ASSERT_TRUE(Start("k", 2 * kMiB).ok());
  EXPECT_EQ(service_.Stats().used_bytes, 2 * kMiB);  // the first put's space was freed

  ASSERT_TRUE(Start("never-ended", kMiB).ok());
  for (int i = 0; i < 599; ++i) {  // the segment's owner stays alive throughout
    clock_.Advance(absl::Seconds(1));
    service_.Heartbeat(kClient);
  }
  service_.RunMaintenance();
  EXPECT_EQ(service_.Stats().processing, 2u);
  clock_.Advance(absl::Seconds(1));  // put_start_release_timeout: 600 s
  service_.Heartbeat(kClient);
  service_.RunMaintenance();
  EXPECT_EQ(service_.Stats().processing, 0u);
  EXPECT_EQ(service_.Stats().used_bytes, 0u);
}

// Maintenance looks only at the keys whose puts it noted (Shard::processing), not at every
// object: a put that ended, or whose key was removed and put again, is judged by the object the
// key holds now.
TEST_F(MasterServiceTest, MaintenanceReclaimsByTheKeysCurrentPut) {
  Mount("seg:1", 8 * kMiB);
  ASSERT_TRUE(Put("ended", kMiB).ok());
  ASSERT_TRUE(Put("again", kMiB).ok());
  ASSERT_TRUE(service_.Remove({std::string("again")}, /*force=*/true)[0].ok());
  ASSERT_TRUE(Start("old", kMiB).ok());
  for (int i = 0; i < 300; ++i) {  // half of put_start_release_timeout; the owner stays alive
    clock_.Advance(absl::Seconds(1));
    service_.Heartbeat(kClient);
  }
  ASSERT_TRUE(Start("again", kMiB).ok());  // a new put of the removed key, 300 s younger
  for (int i = 0; i < 300; ++i) {
    clock_.Advance(absl::Seconds(1));
    service_.Heartbeat(kClient);
  }
  service_.RunMaintenance();
  EXPECT_TRUE(Exists("ended"));
  EXPECT_EQ(GetCode("old"), ErrorCode::OBJECT_NOT_FOUND);        // 600 s: reclaimed
  EXPECT_EQ(GetCode("again"), ErrorCode::REPLICA_IS_NOT_READY);  // 300 s: still written
  EXPECT_EQ(service_.Stats().processing, 1u);
  ASSERT_TRUE(service_.PutEnd(kClient, {std::string("again")})[0].ok());
  EXPECT_TRUE(Exists("again"));
  service_.RunMaintenance();
  EXPECT_EQ(service_.Stats().used_bytes, 2 * kMiB);  // "ended" and "again"
}

// The keys noted for maintenance (puts in flight) are swept as they pile up, so a service whose
// maintenance never runs (embedded), or a burst between two passes, holds no more than a bounded
// number of ended puts' keys.
TEST_F(MasterServiceTest, EndedPutsDoNotPileUpWithoutMaintenance) {
  Mount("seg:1", 64 * kMiB);
  for (int i = 0; i < 200000; ++i) {
    const std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(Put(key, 64).ok());
    ASSERT_TRUE(service_.Remove({&key, 1}, /*force=*/true)[0].ok());
  }
  ASSERT_TRUE(Start("in-flight", 64).ok());
  EXPECT_LE(service_.noted_puts(), 64u * 1025u);
  service_.RunMaintenance();
  EXPECT_EQ(service_.noted_puts(), 1u);  // "in-flight"
}

// Client ids are released by maintenance while puts start: a put's id is never released between
// its PutStart and its objects (else another client would get the id, and the put's own PutEnd
// would be refused as ILLEGAL_CLIENT).
TEST_F(MasterServiceTest, ClientIdsReleasedWhilePutsStartStayWithTheirPuts) {
  Mount("seg:1", 64 * kMiB);
  std::atomic<bool> done{false};
  std::thread maintenance([&] {
    while (!done.load()) service_.RunMaintenance();
  });
  for (int i = 0; i < 20000; ++i) {
    const std::string client = "client-" + std::to_string(i);
    const std::string key = "k" + std::to_string(i % 64);
    PutItem item{key, 64};
    ASSERT_TRUE(service_.PutStart(client, {&item, 1}, {})[0].ok()) << i;
    ASSERT_TRUE(service_.PutEnd(client, {&key, 1})[0].ok()) << i;
    ASSERT_TRUE(service_.Remove({&key, 1}, /*force=*/true)[0].ok()) << i;
  }
  done.store(true);
  maintenance.join();
  service_.RunMaintenance();
  // Ids were released along the way (20,000 were interned in all); the last pass may leave up to
  // twice those kept by the pass before, plus 64.
  EXPECT_LT(service_.interned_clients(), 1000u);
}

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

TEST_F(MasterServiceTest, NoSegmentMeansNoAvailableHandle) {
  EXPECT_EQ(ErrorCodeOf(Start("k", 10).status()), ErrorCode::NO_AVAILABLE_HANDLE);
  Mount("small:1", kMiB);
  EXPECT_EQ(ErrorCodeOf(Start("big", 2 * kMiB).status()), ErrorCode::NO_AVAILABLE_HANDLE);
}

TEST_F(MasterServiceTest, BadKeysAndSizes) {
  Mount("seg:1", kMiB);
  EXPECT_EQ(ErrorCodeOf(Start("", 10).status()), ErrorCode::INVALID_KEY);
  EXPECT_EQ(ErrorCodeOf(Start(std::string(4097, 'k'), 10).status()), ErrorCode::INVALID_KEY);
  EXPECT_TRUE(Start(std::string(4096, 'k'), 10).ok());
  EXPECT_EQ(ErrorCodeOf(Start("zero", 0).status()), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(Start("huge", uint64_t{1} << 41).status()), ErrorCode::INVALID_PARAMS);
  PutItem item{"k", 10};
  EXPECT_EQ(ErrorCodeOf(service_.PutStart("", {&item, 1}, {})[0].status()),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(GetCode(""), ErrorCode::INVALID_KEY);
  EXPECT_EQ(GetCode("absent"), ErrorCode::OBJECT_NOT_FOUND);
}

TEST_F(MasterServiceTest, BatchResultsArePerKeyAndInOrder) {
  Mount("seg:1", 64 * kMiB);
  ASSERT_TRUE(Put("exists", 100).ok());
  std::vector<PutItem> items = {{"a", 10}, {"exists", 10}, {"", 10}, {"b", 0}, {"c", 20}};
  auto results = service_.PutStart(kClient, items, {});
  ASSERT_EQ(results.size(), 5u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(ErrorCodeOf(results[1].status()), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(ErrorCodeOf(results[2].status()), ErrorCode::INVALID_KEY);
  EXPECT_EQ(ErrorCodeOf(results[3].status()), ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(results[4].ok());
  std::vector<std::string> keys = {"a", "missing", "c"};
  auto ended = service_.PutEnd(kClient, keys);
  EXPECT_TRUE(ended[0].ok());
  EXPECT_EQ(ErrorCodeOf(ended[1]), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(ended[2].ok());
  std::vector<std::string> probe = {"c", "nope", "a", "exists"};
  auto exist = service_.ExistKey(probe);
  EXPECT_TRUE(*exist[0]);
  EXPECT_FALSE(*exist[1]);
  EXPECT_TRUE(*exist[2]);
  EXPECT_TRUE(*exist[3]);
  auto sizes = service_.GetSize(probe);
  EXPECT_EQ(*sizes[0], 20u);
  EXPECT_EQ(ErrorCodeOf(sizes[1].status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(*sizes[3], 100u);
}

// A batch's space is allocated before its keys are visited (one lock of the segments for the
// batch): what refused keys were given goes back at once, a preempted abandoned put's key takes
// its share, and keys that found no room evict and try again.
TEST_F(MasterServiceTest, ABatchsSpaceNotTakenByItsKeysIsGivenBack) {
  Mount("seg:1", 16 * kMiB);
  ASSERT_TRUE(Put("done", kMiB).ok());
  ASSERT_TRUE(Start("abandoned", kMiB).ok());
  ASSERT_TRUE(Start("writing", kMiB).ok());
  clock_.Advance(absl::Hours(1));  // past put_start_discard_timeout: "abandoned" may be preempted
  ASSERT_TRUE(Start("writing", kMiB).ok());  // preempted too, and started again just now
  EXPECT_EQ(service_.Stats().used_bytes, 3 * kMiB);
  std::vector<PutItem> items = {{"done", kMiB},      {"new1", 2 * kMiB}, {"writing", kMiB},
                                {"abandoned", kMiB}, {"new2", kMiB},     {"new1", kMiB}};
  auto results = service_.PutStart(kClient, items, {});
  ASSERT_EQ(results.size(), items.size());
  EXPECT_EQ(ErrorCodeOf(results[0].status()), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_TRUE(results[1].ok()) << results[1].status();
  EXPECT_EQ(ErrorCodeOf(results[2].status()), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_TRUE(results[3].ok()) << results[3].status();  // took the abandoned put's place
  EXPECT_TRUE(results[4].ok()) << results[4].status();
  EXPECT_EQ(ErrorCodeOf(results[5].status()), ErrorCode::OBJECT_ALREADY_EXISTS);  // in this batch
  // done 1 + writing 1 + new1 2 + abandoned 1 + new2 1: nothing else stays allocated.
  EXPECT_EQ(service_.Stats().used_bytes, 6 * kMiB);
  for (const SegmentInfo& segment : service_.ListSegments()) EXPECT_EQ(segment.used, 6 * kMiB);

  // A batch larger than the room left: the keys without room evict once and try again.
  std::vector<std::string> ended = {"new1", "abandoned", "new2", "writing"};
  for (const absl::Status& status : service_.PutEnd(kClient, ended)) ASSERT_TRUE(status.ok());
  clock_.Advance(absl::Minutes(1));  // no lease left
  std::vector<PutItem> big;
  for (int i = 0; i < 12; ++i) big.push_back({"big" + std::to_string(i), kMiB});
  uint64_t placed = 0;
  for (const auto& result : service_.PutStart(kClient, big, {})) {
    if (result.ok()) {
      ++placed;
    } else {
      EXPECT_EQ(ErrorCodeOf(result.status()), ErrorCode::NO_AVAILABLE_HANDLE);
    }
  }
  const MasterStats stats = service_.Stats();
  EXPECT_GT(stats.evicted_objects, 0u);
  EXPECT_GT(placed, 10u);  // 10 MiB were free; the rest were placed after the eviction
  // Every byte accounted for: what was there, less what was evicted, plus what was placed.
  EXPECT_EQ(stats.used_bytes, 6 * kMiB - stats.evicted_bytes + placed * kMiB);
}

// Batch lookups go shard by shard (ForEachKeyByShard); the answers still come one per key, in
// the keys' order, for a batch that spans every shard and mixes every case.
TEST_F(MasterServiceTest, LargeBatchLookupsAnswerEveryKeyInOrder) {
  Mount("seg:1", 64 * kMiB);
  std::vector<std::string> keys;
  for (int i = 0; i < 600; ++i) {
    keys.push_back("key-" + std::to_string(i));
    if (i % 3 == 0) {
      ASSERT_TRUE(Put(keys.back(), 100 + i).ok());
    } else if (i % 3 == 1) {
      ASSERT_TRUE(Start(keys.back(), 100 + i).ok());  // still being written
    }
  }
  keys.push_back("");        // invalid
  keys.push_back("key-0");   // present, twice
  keys.push_back("key-99");  // present
  const auto exist = service_.ExistKey(keys);
  const auto lists = service_.GetReplicaList(keys);
  ASSERT_EQ(exist.size(), keys.size());
  ASSERT_EQ(lists.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    SCOPED_TRACE(keys[i]);
    if (keys[i].empty()) {
      EXPECT_EQ(ErrorCodeOf(exist[i].status()), ErrorCode::INVALID_KEY);
      EXPECT_EQ(ErrorCodeOf(lists[i].status()), ErrorCode::INVALID_KEY);
      continue;
    }
    const int n = std::stoi(keys[i].substr(4));
    ASSERT_TRUE(exist[i].ok());
    EXPECT_EQ(*exist[i], n % 3 == 0);
    if (n % 3 == 0) {
      ASSERT_TRUE(lists[i].ok()) << lists[i].status();
      EXPECT_EQ(lists[i]->size, static_cast<uint64_t>(100 + n));
      ASSERT_EQ(lists[i]->replicas.size(), 1u);
      EXPECT_EQ(lists[i]->replicas[0].segment, "seg:1");
    } else {
      EXPECT_EQ(ErrorCodeOf(lists[i].status()),
                n % 3 == 1 ? ErrorCode::REPLICA_IS_NOT_READY : ErrorCode::OBJECT_NOT_FOUND);
    }
  }
}

TEST_F(MasterServiceTest, LeasesBlockRemovalUntilTheyEnd) {
  Mount("seg:1", 8 * kMiB);
  ASSERT_TRUE(Put("k", 100).ok());
  EXPECT_EQ(RemoveCode("k"), ErrorCode::OK);  // no lease yet
  ASSERT_TRUE(Put("k", 100).ok());
  EXPECT_EQ(GetCode("k"), ErrorCode::OK);  // grants a 10 s lease
  EXPECT_EQ(RemoveCode("k"), ErrorCode::OBJECT_HAS_LEASE);
  EXPECT_EQ(service_.RemoveAll(), 0u);
  clock_.Advance(absl::Seconds(9));
  EXPECT_TRUE(Exists("k"));  // a probe: grants no lease and renews none
  EXPECT_EQ(RemoveCode("k"), ErrorCode::OBJECT_HAS_LEASE);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(RemoveCode("k"), ErrorCode::OK);
  EXPECT_EQ(GetCode("k"), ErrorCode::OBJECT_NOT_FOUND);
  // force overrides the lease.
  ASSERT_TRUE(Put("f", 100).ok());
  GetCode("f");
  std::string key = "f";
  EXPECT_TRUE(service_.Remove({&key, 1}, /*force=*/true)[0].ok());
}

TEST_F(MasterServiceTest, RemoveByRegexAndRemoveAll) {
  Mount("seg:1", 64 * kMiB);
  for (const char* key : {"abc_0_k", "abc_0_v", "abc_1_k", "xyz_0_k"})
    ASSERT_TRUE(Put(key, 10).ok());
  ASSERT_TRUE(Start("abc_processing", 10).ok());
  GetCode("abc_1_k");  // leased: skipped
  auto removed = service_.RemoveByRegex("^abc_.*_k$");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1u);  // abc_0_k; abc_1_k is leased
  EXPECT_EQ(ErrorCodeOf(service_.RemoveByRegex("(unclosed").status()), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(service_.RemoveByRegex(std::string(5000, 'a')).status()),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(service_.RemoveAll(), 2u);  // abc_0_v, xyz_0_k
  EXPECT_EQ(service_.AllKeys(), std::vector<std::string>{"abc_1_k"});
}

TEST_F(MasterServiceTest, UnmountDropsReplicasAndOrphans) {
  Mount("a:1", 16 * kMiB);
  Mount("b:1", 16 * kMiB);
  ASSERT_TRUE(Put("both", kMiB, {.replica_num = 2}).ok());
  ASSERT_TRUE(Put("only-a", kMiB, {.preferred_segments = {"a:1"}}).ok());
  EXPECT_EQ(ErrorCodeOf(service_.UnmountSegment("someone-else", "a:1")), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_EQ(ErrorCodeOf(service_.UnmountSegment(kClient, "nope:1")), ErrorCode::SEGMENT_NOT_FOUND);
  ASSERT_TRUE(service_.UnmountSegment(kClient, "a:1").ok());
  EXPECT_EQ(GetCode("only-a"), ErrorCode::OBJECT_NOT_FOUND);
  std::string key = "both";
  auto left = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->replicas.size(), 1u);
  EXPECT_EQ(left->replicas[0].segment, "b:1");
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "b:1", 0, kMiB)),
            ErrorCode::SEGMENT_ALREADY_EXISTS);
}

TEST_F(MasterServiceTest, BadSegments) {
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "", 0, kMiB)), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "z:1", 0, 0)), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, "o:1", UINT64_MAX - 10, kMiB)),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment("", "c:1", 0, kMiB)), ErrorCode::INVALID_PARAMS);
  // Names that could break a metrics line, a log line or an admin page.
  for (const std::string& name :
       std::vector<std::string>{"a\"b:1", "a\nb:1", "a b:1", "a\\b:1", std::string("a\0b", 3),
                                std::string("\xc3\xa9:1"), std::string("x\x7f:1")}) {
    EXPECT_EQ(ErrorCodeOf(service_.MountSegment(kClient, name, 0, kMiB)), ErrorCode::INVALID_PARAMS)
        << name;
  }
  EXPECT_TRUE(service_.MountSegment(kClient, "[fe80::1]:12345", 0, kMiB).ok());
}

TEST_F(MasterServiceTest, SilentClientsLoseTheirSegments) {
  Mount("a:1", 16 * kMiB, "alive");
  Mount("b:1", 16 * kMiB, "silent");
  ASSERT_TRUE(Put("on-b", kMiB, {.preferred_segments = {"b:1"}}).ok());
  EXPECT_FALSE(service_.Heartbeat("alive").remount);
  clock_.Advance(absl::Seconds(6));
  service_.Heartbeat("alive");
  clock_.Advance(absl::Seconds(6));  // "silent" was last heard 12 s ago; the TTL is 10 s
  service_.RunMaintenance();
  auto segments = service_.ListSegments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0].name, "a:1");
  EXPECT_EQ(GetCode("on-b"), ErrorCode::OBJECT_NOT_FOUND);
  // When it comes back it is told to remount.
  HeartbeatResult back = service_.Heartbeat("silent");
  EXPECT_TRUE(back.remount);
  EXPECT_EQ(back.epoch, service_.epoch());
  EXPECT_FALSE(service_.Heartbeat("silent").remount);
}

// What the default logger writes while it lives.
class CapturedLog {
 public:
  CapturedLog() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~CapturedLog() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

TEST_F(MasterServiceTest, ClientsAndSegmentsComingAndGoingAreCountedAndLogged) {
  CapturedLog log;
  EXPECT_EQ(service_.client_count(), 0u);
  Mount("a:1", 16 * kMiB, "mounter");
  service_.Heartbeat("reader");
  EXPECT_EQ(service_.client_count(), 2u);
  EXPECT_NE(log.text().find("client mounter joined"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("segment a:1 of client mounter mounted: 16 MiB"), std::string::npos)
      << log.text();
  EXPECT_NE(log.text().find("client reader joined"), std::string::npos);
  service_.Heartbeat("reader");  // known: no second line
  const std::string once = "client reader joined";
  EXPECT_EQ(log.text().find(once), log.text().rfind(once));

  ASSERT_TRUE(service_.UnmountSegment("mounter", "a:1").ok());
  EXPECT_NE(log.text().find("segment a:1 of client mounter unmounted"), std::string::npos);
  clock_.Advance(absl::Seconds(6));
  service_.Heartbeat("reader");
  clock_.Advance(absl::Seconds(6));  // "mounter" was last heard 12 s ago; the TTL is 10 s
  service_.RunMaintenance();
  EXPECT_EQ(service_.client_count(), 1u);
  EXPECT_NE(log.text().find("client mounter left: no heartbeat for 10s"), std::string::npos)
      << log.text();
  EXPECT_EQ(log.text().find("client reader left"), std::string::npos);
}

// A new process at a segment's endpoint (a store restarted under the same name, before the master
// noticed the old one was dead) takes the name over; the old incarnation's objects are dropped and
// replicas name the new incarnation.
TEST_F(MasterServiceTest, ANewProcessAtASegmentsEndpointTakesItOver) {
  ASSERT_TRUE(service_.MountSegment("old", "s:1", 0x10000000, 16 * kMiB, 111).ok());
  ASSERT_TRUE(Put("on-old", kMiB).ok());
  std::string key = "on-old";
  auto located = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(located.ok());
  EXPECT_EQ(located->replicas[0].incarnation, 111u);
  ASSERT_TRUE(service_.MountSegment("new", "s:1", 0x10000000, 16 * kMiB, 222).ok());
  EXPECT_EQ(GetCode("on-old"), ErrorCode::OBJECT_NOT_FOUND);
  auto segments = service_.ListSegments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0].client_id, "new");
  EXPECT_EQ(segments[0].incarnation, 222u);
  EXPECT_EQ(segments[0].used, 0u);
  ASSERT_TRUE(Put("on-new", kMiB).ok());
  key = "on-new";
  located = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(located.ok());
  EXPECT_EQ(located->replicas[0].incarnation, 222u);
  // The same client mounting again is a retry, not a takeover.
  EXPECT_EQ(ErrorCodeOf(service_.MountSegment("new", "s:1", 0x10000000, 16 * kMiB, 222)),
            ErrorCode::SEGMENT_ALREADY_EXISTS);
  EXPECT_EQ(GetCode("on-new"), ErrorCode::OK);
}

// A client whose segment is no longer mounted under it (unmounted by someone else, or taken over)
// is asked to remount by its next heartbeat, which names the segments it serves.
TEST_F(MasterServiceTest, HeartbeatAsksForARemountOfALostSegment) {
  Mount("a:1", 16 * kMiB, "owner");
  const std::vector<std::string> mine = {"a:1"};
  EXPECT_FALSE(service_.Heartbeat("owner", mine).remount);
  ASSERT_TRUE(service_.UnmountSegment("owner", "a:1").ok());
  EXPECT_TRUE(service_.Heartbeat("owner", mine).remount);
  EXPECT_FALSE(service_.Heartbeat("owner").remount);  // names nothing: nothing to remount
  Mount("a:1", 16 * kMiB, "owner");
  EXPECT_FALSE(service_.Heartbeat("owner", mine).remount);
}

// Finding: every client id that ever started a put stayed in the master. Ids are released once no
// object record holds them; a client with a put in flight keeps its id (and only it may end it).
TEST_F(MasterServiceTest, ClientIdsAreForgottenWhenNoRecordHoldsThem) {
  Mount("seg:1", 64 * kMiB);
  for (int i = 0; i < 20000; ++i) {
    const std::string client = "client-" + std::to_string(i);
    const std::string key = "k" + std::to_string(i % 100);
    PutItem item{key, 64};
    ASSERT_TRUE(service_.PutStart(client, {&item, 1}, {})[0].ok());
    ASSERT_TRUE(service_.PutEnd(client, {&key, 1})[0].ok());
    ASSERT_TRUE(service_.Remove({&key, 1}, /*force=*/true)[0].ok());
  }
  EXPECT_EQ(service_.interned_clients(), 20000u);
  PutItem pending{"pending", 64};
  ASSERT_TRUE(service_.PutStart("keeper", {&pending, 1}, {})[0].ok());
  service_.RunMaintenance();
  EXPECT_EQ(service_.interned_clients(), 1u);  // only "keeper", whose put is in flight
  const std::string key = "pending";
  EXPECT_EQ(ErrorCodeOf(service_.PutEnd("client-7", {&key, 1})[0]), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_TRUE(service_.PutEnd("keeper", {&key, 1})[0].ok());
  // Released ids are reused: new owners do not grow the table past what they hold.
  for (int i = 0; i < 100; ++i) {
    PutItem item{"again" + std::to_string(i), 64};
    ASSERT_TRUE(service_.PutStart("new-" + std::to_string(i), {&item, 1}, {})[0].ok());
  }
  EXPECT_EQ(service_.interned_clients(), 101u);
  auto described = service_.Describe("again5");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ((*described)["client_id"], "new-5");
}

// Finding: every object a read or batch_is_exist touched stayed leased (unevictable) for 10 s. A
// lease now protects a read in flight: it ends when its readers release it.
TEST_F(MasterServiceTest, LeasesEndWhenTheirReadersReleaseThem) {
  Mount("seg:1", 8 * kMiB);
  ASSERT_TRUE(Put("k", 100).ok());
  std::string key = "k";
  absl::StatusOr<ReplicaList> first = service_.GetReplicaList({&key, 1})[0];
  absl::StatusOr<ReplicaList> second = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->lease_id, 0u);
  EXPECT_EQ(first->lease_id, second->lease_id);  // one lease, two readers
  service_.ReleaseLeases({{LeaseRelease{"k", first->lease_id}}});
  EXPECT_EQ(RemoveCode("k"), ErrorCode::OBJECT_HAS_LEASE);  // the second reader still reads
  service_.ReleaseLeases({{LeaseRelease{"k", second->lease_id}}});
  EXPECT_EQ(service_.Stats().leased, 0u);
  // A release of a lease that has ended (expired, then a new one granted) does not end the new.
  absl::StatusOr<ReplicaList> third = service_.GetReplicaList({&key, 1})[0];
  ASSERT_TRUE(third.ok());
  EXPECT_NE(third->lease_id, first->lease_id);
  service_.ReleaseLeases({{LeaseRelease{"k", first->lease_id}}, {LeaseRelease{"nope", 1}}});
  EXPECT_EQ(RemoveCode("k"), ErrorCode::OBJECT_HAS_LEASE);
  // A reader that never releases holds it for default_kv_lease_ttl at most.
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(RemoveCode("k"), ErrorCode::OK);
}

// Released leases leave objects to LRU eviction, and probes do not count as uses: with most
// objects probed and a few read, eviction takes the cold ones, not the newest.
TEST_F(MasterServiceTest, ProbedAndReadObjectsDoNotPinTheCache) {
  Mount("seg:1", 100 * kMiB);
  std::vector<std::string> old;
  for (int i = 0; i < 90; ++i) {
    old.push_back("old" + std::to_string(i));
    ASSERT_TRUE(Put(old.back(), kMiB).ok());
    clock_.Advance(absl::Milliseconds(10));
  }
  // 50 new objects into a full segment: room for them and the hot few, if the rest goes.
  for (int round = 0; round < 5; ++round) {
    for (int n = 0; n < 10; ++n) {
      const std::string key = "new" + std::to_string(round * 10 + n);
      ASSERT_TRUE(Put(key, kMiB).ok()) << key;
      clock_.Advance(absl::Milliseconds(10));
    }
    // Readers: probe everything, read (and release) a hot few.
    (void)service_.ExistKey(old);
    for (int hot = 0; hot < 5; ++hot) {
      absl::StatusOr<ReplicaList> got = service_.GetReplicaList({&old[hot], 1})[0];
      if (got.ok()) service_.ReleaseLeases({{LeaseRelease{old[hot], got->lease_id}}});
    }
  }
  size_t newest = 0;
  for (int i = 0; i < 50; ++i) newest += Exists("new" + std::to_string(i));
  EXPECT_EQ(newest, 50u);
  for (int hot = 0; hot < 5; ++hot) EXPECT_TRUE(Exists(old[hot])) << old[hot];
}

TEST_F(MasterServiceTest, PutStartEvictsOldestWhenFull) {
  Mount("seg:1", 100 * kMiB);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(Put("k" + std::to_string(i), kMiB).ok());
    clock_.Advance(absl::Seconds(1));
  }
  clock_.Advance(absl::Seconds(30));   // leases from the puts (none) and reads have lapsed
  GetCode("k0");                       // k0 is now the most recently used, and leased
  ASSERT_TRUE(Put("new", kMiB).ok());  // full: evicts ~5% (5 MiB), oldest first
  EXPECT_EQ(GetCode("k0"), ErrorCode::OK);
  for (int i = 1; i <= 5; ++i)
    EXPECT_EQ(GetCode("k" + std::to_string(i)), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(GetCode("k6"), ErrorCode::OK);
  EXPECT_EQ(service_.Stats().evicted_objects, 5u);
}

TEST_F(MasterServiceTest, EvictionRespectsPinsAndProcessingObjects) {
  Mount("seg:1", 20 * kMiB);
  ASSERT_TRUE(Put("hard", 5 * kMiB, {.with_hard_pin = true}).ok());
  ASSERT_TRUE(Put("soft", 5 * kMiB, {.with_soft_pin = true}).ok());
  ASSERT_TRUE(Start("writing", 5 * kMiB).ok());
  ASSERT_TRUE(Put("plain", 5 * kMiB).ok());
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(service_.Evict(5 * kMiB), 5 * kMiB);
  EXPECT_EQ(GetCode("plain"), ErrorCode::OBJECT_NOT_FOUND);
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(service_.Evict(5 * kMiB), 5 * kMiB);  // soft-pinned go last, but they go
  EXPECT_EQ(GetCode("soft"), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(service_.Evict(5 * kMiB), 0u);  // hard-pinned and processing never do
  EXPECT_EQ(GetCode("hard"), ErrorCode::OK);
}

class NoSoftEvictionTest : public MasterServiceTest {
 protected:
  NoSoftEvictionTest()
      : MasterServiceTest(MasterConfig{.allow_evict_soft_pinned_objects = false}) {}
};

TEST_F(NoSoftEvictionTest, SoftPinsHoldWhileTheyLast) {
  Mount("seg:1", 10 * kMiB);
  ASSERT_TRUE(Put("soft", 5 * kMiB, {.with_soft_pin = true}).ok());
  EXPECT_EQ(service_.Evict(5 * kMiB), 0u);
  clock_.Advance(absl::Minutes(31));  // the soft pin (30 min) has run out: a plain object now
  EXPECT_EQ(service_.Evict(5 * kMiB), 5 * kMiB);
}

TEST_F(NoSoftEvictionTest, ASoftPinCanAskForItsOwnLength) {
  Mount("seg:1", 10 * kMiB);
  ASSERT_TRUE(
      Start("short", 5 * kMiB, {.with_soft_pin = true, .soft_pin_ttl = absl::Seconds(5)}).ok());
  clock_.Advance(absl::Seconds(60));  // the pin counts from PutEnd, not PutStart
  const std::string key = "short";
  ASSERT_TRUE(service_.PutEnd(kClient, {&key, 1})[0].ok());
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(service_.Evict(5 * kMiB), 0u);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(service_.Evict(5 * kMiB), 5 * kMiB);
}

class SoftPinCapTest : public MasterServiceTest {
 protected:
  SoftPinCapTest()
      : MasterServiceTest(MasterConfig{.max_kv_soft_pin_ttl = absl::Seconds(10),
                                       .allow_evict_soft_pinned_objects = false}) {}
};

// --max_kv_soft_pin_ttl: a client's longer soft pin, and the default (30 min), are cut to it.
TEST_F(SoftPinCapTest, NoSoftPinOutlastsTheMaximum) {
  Mount("seg:1", 10 * kMiB);
  ASSERT_TRUE(Put("asked", 5 * kMiB, {.with_soft_pin = true, .soft_pin_ttl = absl::Hours(1)}).ok());
  ASSERT_TRUE(Put("default", 5 * kMiB, {.with_soft_pin = true}).ok());
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(service_.Evict(10 * kMiB), 0u);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(service_.Evict(10 * kMiB), 10 * kMiB);
}

TEST_F(MasterServiceTest, UpsertReplacesAndKeepsOldBytesForLeasedReaders) {
  Mount("seg:1", 16 * kMiB);
  ASSERT_TRUE(Put("u", kMiB).ok());
  const std::string key = "u";
  absl::StatusOr<ReplicaList> before = service_.GetReplicaList({&key, 1})[0];  // a reader's lease
  ASSERT_TRUE(before.ok());
  absl::StatusOr<ReplicaLocations> started = Start("u", 2 * kMiB, {.upsert = true});
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_NE((*started)[0].address, before->replicas[0].address);
  // Until PutEnd, readers get the old value.
  EXPECT_EQ(service_.GetReplicaList({&key, 1})[0]->size, kMiB);
  // One upsert at a time.
  EXPECT_EQ(ErrorCodeOf(Start("u", kMiB, {.upsert = true}).status()),
            ErrorCode::REPLICA_IS_NOT_READY);
  ASSERT_TRUE(service_.PutEnd(kClient, {&key, 1})[0].ok());
  absl::StatusOr<ReplicaList> after = service_.GetReplicaList({&key, 1})[0];
  EXPECT_EQ(after->size, 2 * kMiB);
  EXPECT_EQ(after->replicas[0].address, (*started)[0].address);
  // The old bytes stay allocated while the reader's lease lives, and are freed after.
  EXPECT_EQ(service_.Stats().used_bytes, 3 * kMiB);
  clock_.Advance(absl::Seconds(5));
  service_.Heartbeat(kClient);
  service_.RunMaintenance();
  EXPECT_EQ(service_.Stats().used_bytes, 3 * kMiB);  // the lease (10 s) still lives
  clock_.Advance(absl::Seconds(6));
  service_.Heartbeat(kClient);
  service_.RunMaintenance();
  EXPECT_EQ(service_.Stats().used_bytes, 2 * kMiB);
  EXPECT_EQ(service_.Stats().objects, 1u);
}

TEST_F(MasterServiceTest, UpsertRevokedOrRemovedLeavesNoSpaceBehind) {
  Mount("seg:1", 16 * kMiB);
  ASSERT_TRUE(Put("r", kMiB).ok());
  const std::string key = "r";
  ASSERT_TRUE(Start("r", 3 * kMiB, {.upsert = true}).ok());
  ASSERT_TRUE(service_.PutRevoke(kClient, {&key, 1})[0].ok());
  EXPECT_EQ(service_.GetReplicaList({&key, 1})[0]->size, kMiB);  // the old value stays
  EXPECT_EQ(service_.Stats().used_bytes, kMiB);
  // Upsert of an absent key is a put; removal with an upsert in progress frees both.
  ASSERT_TRUE(Start("fresh", kMiB, {.upsert = true}).ok());
  const std::string fresh = "fresh";
  ASSERT_TRUE(service_.PutEnd(kClient, {&fresh, 1})[0].ok());
  ASSERT_TRUE(Start("fresh", 2 * kMiB, {.upsert = true}).ok());
  ASSERT_TRUE(service_.Remove({&fresh, 1}, /*force=*/true)[0].ok());
  EXPECT_EQ(ErrorCodeOf(service_.PutEnd(kClient, {&fresh, 1})[0]), ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_TRUE(service_.Remove({&key, 1}, /*force=*/true)[0].ok());
  EXPECT_EQ(service_.Stats().used_bytes, 0u);
}

TEST_F(NoSoftEvictionTest, UpsertSoftPinActions) {
  Mount("seg:1", 16 * kMiB);
  auto upsert = [&](const std::string& key, SoftPinAction action) {
    ASSERT_TRUE(Start(key, kMiB, {.upsert = true, .soft_pin_action = action}).ok());
    ASSERT_TRUE(service_.PutEnd(kClient, {&key, 1})[0].ok());
  };
  ASSERT_TRUE(Put("keep", kMiB, {.with_soft_pin = true}).ok());
  ASSERT_TRUE(Put("drop", kMiB, {.with_soft_pin = true}).ok());
  ASSERT_TRUE(Put("pin", kMiB).ok());
  clock_.Advance(absl::Minutes(20));
  upsert("keep", SoftPinAction::kPreserve);  // still ends 30 min after the first put
  upsert("drop", SoftPinAction::kDisable);
  upsert("pin", SoftPinAction::kEnable);  // pinned until 50 min
  EXPECT_EQ(service_.Evict(kMiB), kMiB);  // only "drop" can go
  const std::string drop = "drop", keep = "keep", pin = "pin";
  EXPECT_EQ(ErrorCodeOf(service_.GetReplicaList({&drop, 1})[0].status()),
            ErrorCode::OBJECT_NOT_FOUND);
  clock_.Advance(absl::Minutes(11));  // 31 min: "keep" has run out, "pin" has not
  EXPECT_EQ(service_.Evict(kMiB), kMiB);
  EXPECT_EQ(ErrorCodeOf(service_.GetReplicaList({&keep, 1})[0].status()),
            ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(service_.GetReplicaList({&pin, 1})[0].ok());
}

TEST_F(MasterServiceTest, WatermarkTriggersEvictionInMaintenance) {
  Mount("seg:1", 100 * kMiB);
  for (int i = 0; i < 91; ++i) ASSERT_TRUE(Put("k" + std::to_string(i), kMiB).ok());
  service_.RunMaintenance();  // 91% > 90%: evict 5%
  EXPECT_EQ(service_.Stats().used_bytes, 86 * kMiB);
  service_.RunMaintenance();  // below the watermark: nothing more
  EXPECT_EQ(service_.Stats().used_bytes, 86 * kMiB);
}

// Whatever clients send, in whatever order, once every object is gone every byte is free again.
TEST_F(MasterServiceTest, RandomRequestStormLeaksNoSpace) {
  Mount("a:1", 64 * kMiB);
  Mount("b:1", 32 * kMiB);
  std::mt19937_64 rng(99);
  auto key = [&] { return "key" + std::to_string(rng() % 300); };
  for (int step = 0; step < 30000; ++step) {
    std::string k = key();
    switch (rng() % 10) {
      case 0:
      case 1: {
        std::vector<PutItem> items;
        for (int i = 0; i < 1 + static_cast<int>(rng() % 8); ++i) {
          items.push_back({key(), rng() % 3 == 0 ? 0 : 1 + rng() % (2 * kMiB)});
        }
        service_.PutStart(kClient, items,
                          {.replica_num = static_cast<uint32_t>(rng() % 4),
                           .with_hard_pin = rng() % 5 == 0,
                           .upsert = rng() % 3 == 0,
                           .soft_pin_action = static_cast<SoftPinAction>(rng() % 3)});
        break;
      }
      case 2:
        service_.PutEnd(kClient, {&k, 1});
        break;
      case 3:
        service_.PutRevoke(kClient, {&k, 1});
        break;
      case 4:
        service_.GetReplicaList({&k, 1});
        break;
      case 5:
        service_.Remove({&k, 1}, rng() % 2 == 0);
        break;
      case 6:
        service_.ExistKey({&k, 1});
        break;
      case 7:
        // Time passes (leases lapse, puts get abandoned) while the client stays alive.
        clock_.Advance(absl::Seconds(static_cast<int64_t>(rng() % 8)));
        service_.Heartbeat(kClient);
        service_.RunMaintenance();
        break;
      case 8:
        service_.RemoveByRegex(rng() % 2 ? "key1.*" : "([bad").IgnoreError();
        break;
      default:
        service_.Evict(rng() % (8 * kMiB));
    }
  }
  {
    // The counters kept along the way agree with a walk of the table.
    MasterStats walked = service_.Stats();
    MasterService::Counts kept = service_.counts();
    EXPECT_EQ(kept.objects, walked.objects);
    EXPECT_EQ(kept.processing, walked.processing);
    EXPECT_EQ(kept.hard_pinned, walked.hard_pinned);
    EXPECT_EQ(kept.key_bytes, walked.key_bytes);
    EXPECT_GT(walked.objects, 0u);
    EXPECT_EQ(service_.ListSegments().size(), 2u);  // the client stayed alive throughout
  }
  clock_.Advance(absl::Hours(1));  // leases and abandoned puts all lapse
  service_.Heartbeat(kClient);
  service_.RunMaintenance();
  service_.RemoveAll();
  MasterStats stats = service_.Stats();
  EXPECT_EQ(stats.objects, 0u);
  EXPECT_EQ(service_.counts().objects, 0u);
  EXPECT_EQ(service_.counts().key_bytes, 0u);
  EXPECT_EQ(stats.used_bytes, 0u);
  for (const SegmentInfo& segment : service_.ListSegments()) EXPECT_EQ(segment.used, 0u);
}

}  // namespace
}  // namespace mooncake::master
