// MasterService: leases, eviction, soft and hard pins, upserts.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "master/master_service_fixture.h"

namespace mooncake::master {
namespace {

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

}  // namespace
}  // namespace mooncake::master
