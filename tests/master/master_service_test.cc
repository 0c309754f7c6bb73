// MasterService in-process with a fake clock: a put's lifecycle, batches, removal, and that no
// sequence of requests leaks space (the other concerns: master_placement_test.cc,
// master_segments_test.cc, master_leases_test.cc).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "master/master_service_fixture.h"

namespace mooncake::master {
namespace {

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
