// Owners' indexes (loss-free recovery) in MasterService: a mount that reports an index rebuilds
// its objects, the journal keeps the owner's index true, dropped space is not handed out again
// before the owner knows, and puts end only once the owners know of them.
//
// The owner here is this test's own loop over SyncIndex (what Client::IndexSyncLoop does over
// HTTP); the store binary's side is covered by the client and integration tests.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "common/error_code.h"
#include "http/spin_wait.h"
#include "master/master_service.h"

namespace mooncake::master {
namespace {

constexpr char kOwner[] = "owner-1";
constexpr char kWriter[] = "writer";
constexpr uint64_t kBase = 0x10000000;

// The owner of one segment: applies the master's changes to its index, as a store does.
class Owner {
 public:
  Owner(MasterService& service, std::string segment)
      : service_(service), segment_(std::move(segment)) {}
  ~Owner() { Stop(); }

  absl::Status Mount(uint64_t size, std::vector<IndexEntry> report = {}) {
    absl::StatusOr<uint64_t> id =
        service_.MountIndexedSegment(kOwner, segment_, kBase, size, 7, report);
    if (!id.ok()) return id.status();
    absl::MutexLock lock(&mu_);
    mount_id_ = *id;
    acked_ = 0;
    index_.clear();
    for (IndexEntry& entry : report) index_[entry.offset] = entry;
    return absl::OkStatus();
  }

  // Fetches and applies changes once (waiting up to `wait` for one).
  void SyncOnce(absl::Duration wait = absl::ZeroDuration()) {
    uint64_t mount_id = 0;
    uint64_t acked = 0;
    {
      absl::MutexLock lock(&mu_);
      mount_id = mount_id_;
      acked = acked_;
    }
    absl::StatusOr<IndexSync> sync = service_.SyncIndex(kOwner, segment_, mount_id, acked, wait);
    if (!sync.ok()) return;
    absl::MutexLock lock(&mu_);
    mount_id_ = sync->mount_id;
    for (const IndexChange& change : sync->changes) {
      if (change.seq <= acked_) continue;
      if (change.add) {
        index_[change.entry.offset] = change.entry;
      } else {
        index_.erase(change.entry.offset);
      }
      acked_ = change.seq;
    }
  }

  void Start() {
    thread_ = std::thread([this] {
      while (!stop_.load()) SyncOnce(absl::Milliseconds(20));
    });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::vector<IndexEntry> Report() {
    SyncOnce();  // acknowledges what was applied
    absl::MutexLock lock(&mu_);
    std::vector<IndexEntry> out;
    for (const auto& [offset, entry] : index_) out.push_back(entry);
    return out;
  }
  bool Holds(const std::string& key) {
    absl::MutexLock lock(&mu_);
    for (const auto& [offset, entry] : index_) {
      if (entry.key == key) return true;
    }
    return false;
  }

 private:
  MasterService& service_;
  const std::string segment_;
  absl::Mutex mu_;
  uint64_t mount_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, IndexEntry> index_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

MasterConfig Config() {
  MasterConfig config;
  config.seed = 42;
  config.index_ack_timeout = absl::Seconds(30);  // tests that want a timeout say so
  return config;
}

absl::StatusOr<ReplicaLocations> Start(MasterService& service, const std::string& key,
                                       uint64_t size, uint32_t replicas = 1) {
  PutItem item{key, size};
  ReplicateConfig config;
  config.replica_num = replicas;
  return service.PutStart(kWriter, {&item, 1}, config)[0];
}

absl::Status Put(MasterService& service, const std::string& key, uint64_t size,
                 uint32_t replicas = 1) {
  absl::StatusOr<ReplicaLocations> started = Start(service, key, size, replicas);
  if (!started.ok()) return started.status();
  return service.PutEnd(kWriter, {&key, 1})[0];
}

TEST(OwnerIndexTest, APutEndsOnlyOnceTheOwnerKnowsAndARestartRebuildsIt) {
  MetricsRegistry metrics;
  std::vector<IndexEntry> report;
  std::vector<uint64_t> addresses;
  {
    MasterService first(Config(), Clock::Real(), &metrics);
    Owner owner(first, "store:1");
    ASSERT_TRUE(owner.Mount(1 << 20).ok());
    owner.Start();
    for (int i = 0; i < 20; ++i) {
      const std::string key = "k" + std::to_string(i);
      ASSERT_TRUE(Put(first, key, 1000 + i).ok());
      EXPECT_TRUE(owner.Holds(key)) << key;  // known before PutEnd answered
      addresses.push_back(first.GetReplicaList({&key, 1})[0]->replicas[0].address);
    }
    const std::vector<std::string> removed = {"k3", "k4"};
    for (const absl::Status& s : first.Remove(removed, /*force=*/true)) ASSERT_TRUE(s.ok());
    EXPECT_FALSE(owner.Holds("k3"));
    owner.Stop();
    report = owner.Report();
  }
  ASSERT_EQ(report.size(), 18u);

  // A new master (restart or new leader): the owner's report makes the objects readable again,
  // at the same addresses, and their space is taken.
  MasterService second(Config(), Clock::Real(), &metrics);
  Owner owner(second, "store:1");
  ASSERT_TRUE(owner.Mount(1 << 20, report).ok());
  for (int i = 0; i < 20; ++i) {
    const std::string key = "k" + std::to_string(i);
    auto got = second.GetReplicaList({&key, 1})[0];
    if (i == 3 || i == 4) {
      EXPECT_EQ(ErrorCodeOf(got.status()), ErrorCode::OBJECT_NOT_FOUND);
      continue;
    }
    ASSERT_TRUE(got.ok()) << key << ": " << got.status();
    EXPECT_EQ(got->size, 1000u + i);
    EXPECT_EQ(got->replicas[0].address, addresses[i]);
    EXPECT_EQ(got->replicas[0].incarnation, 7u);
  }
  // New objects never land on restored ones.
  owner.Start();
  for (int i = 0; i < 50; ++i) {
    auto started = Start(second, "new" + std::to_string(i), 1000);
    ASSERT_TRUE(started.ok());
    const uint64_t at = (*started)[0].address;
    for (int j = 0; j < 20; ++j) {
      if (j == 3 || j == 4) continue;
      EXPECT_FALSE(at < addresses[j] + 1000 + j && addresses[j] < at + 1000) << i << " " << j;
    }
  }
}

TEST(OwnerIndexTest, DroppedSpaceIsNotReusedBeforeTheOwnerKnows) {
  MetricsRegistry metrics;
  MasterConfig config = Config();
  config.index_ack_timeout = absl::Milliseconds(50);
  MasterService service(config, Clock::Real(), &metrics);
  Owner owner(service, "store:1");
  constexpr uint64_t kObject = 64 << 10;
  ASSERT_TRUE(owner.Mount(4 * kObject).ok());
  owner.Start();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Put(service, "k" + std::to_string(i), kObject).ok());
  owner.Stop();  // the owner falls silent
  const std::string victim = "k0";
  ASSERT_TRUE(service.Remove({&victim, 1}, true)[0].ok());  // after the ack timeout
  EXPECT_TRUE(owner.Holds(victim));
  // Its range stays taken: were the master to fail now, the owner would report k0 there.
  EXPECT_EQ(ErrorCodeOf(Start(service, "next", kObject).status()), ErrorCode::NO_AVAILABLE_HANDLE);
  owner.SyncOnce();  // learns of the drop (and acknowledges what it applied with the next call)
  EXPECT_FALSE(owner.Holds(victim));
  owner.SyncOnce();
  EXPECT_TRUE(Start(service, "next", kObject).ok());
  EXPECT_GE(metrics.GetCounter("mooncake_master_index_ack_timeouts_total", "").Value(), 1u);
}

TEST(OwnerIndexTest, APutWhoseSegmentGoesWhileItEndsFails) {
  MetricsRegistry metrics;
  MasterConfig config = Config();
  config.index_ack_timeout = absl::Seconds(30);
  MasterService service(config, Clock::Real(), &metrics);
  Owner owner(service, "store:1");
  ASSERT_TRUE(owner.Mount(1 << 20).ok());  // and silent: it never acknowledges
  ASSERT_TRUE(Start(service, "k", 100).ok());
  Counter& ended =
      metrics.GetCounter("mooncake_master_key_operations_total", "", {{"op", "put_end"}});
  absl::Status put;
  std::thread end([&] {
    const std::string key = "k";
    put = service.PutEnd(kWriter, {&key, 1})[0];
  });
  while (ended.Value() == 0) absl::SleepFor(absl::Milliseconds(1));  // it waits for the owner
  // The segment goes (its owner declared dead, or a new term) and takes the object with it.
  ASSERT_TRUE(service.UnmountSegment(kOwner, "store:1").ok());
  end.join();
  EXPECT_EQ(ErrorCodeOf(put), ErrorCode::OBJECT_NOT_FOUND) << put;
  EXPECT_NE(put.message().find("lost while its put ended"), std::string_view::npos) << put;
}

// A put's wait for its owner's acknowledgement spins even while another owner's fetch of changes
// waits for work: they spin in two roles, so an idle long-poll never takes the put's slot (with
// one slot each on two CPUs, sharing one made the put sleep, and a wakeup costs 20-60 us here).
TEST(OwnerIndexTest, APutsWaitSpinsBesideAnIdleOwnersLongPoll) {
  if (http::SpinSlots() == 0) GTEST_SKIP() << "one CPU: nothing ever spins";
  MetricsRegistry metrics;
  MasterConfig config = Config();
  config.index_wait_spin = absl::Seconds(60);  // both spin until what they wait for happens
  MasterService service(config, Clock::Real(), &metrics);
  Owner idle(service, "idle:1");
  Owner busy(service, "busy:1");
  ASSERT_TRUE(idle.Mount(1 << 20).ok());
  ASSERT_TRUE(busy.Mount(1 << 20).ok());
  std::thread poll([&] { idle.SyncOnce(absl::Seconds(60)); });  // nothing changes for it

  PutItem item{"k", 100};
  ReplicateConfig on_busy;
  on_busy.preferred_segments = {"busy:1"};
  ASSERT_TRUE(service.PutStart(kWriter, {&item, 1}, on_busy)[0].ok());
  absl::Status put = absl::UnknownError("not ended");
  std::thread end([&] {
    const std::string key = "k";
    put = service.PutEnd(kWriter, {&key, 1})[0];
  });
  // Both spin at once.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while ((http::SpinningNow(http::SpinRole::kLongPoll) == 0 ||
          http::SpinningNow(http::SpinRole::kWaiter) == 0) &&
         absl::Now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(http::SpinningNow(http::SpinRole::kLongPoll), 1);
  EXPECT_EQ(http::SpinningNow(http::SpinRole::kWaiter), 1);

  busy.SyncOnce();  // learns of k
  busy.SyncOnce();  // and acknowledges it
  end.join();
  EXPECT_TRUE(put.ok()) << put;
  EXPECT_TRUE(busy.Holds("k"));
  ASSERT_TRUE(service.UnmountSegment(kOwner, "idle:1").ok());  // ends the long-poll
  poll.join();
  EXPECT_EQ(http::SpinningNow(http::SpinRole::kLongPoll), 0);
  EXPECT_EQ(http::SpinningNow(http::SpinRole::kWaiter), 0);
}

TEST(OwnerIndexTest, ReplicasOfOnePutMergeAndTheNewestPutWins) {
  MetricsRegistry metrics;
  std::vector<IndexEntry> report_a;
  std::vector<IndexEntry> report_b;
  {
    MasterService first(Config(), Clock::Real(), &metrics);
    Owner a(first, "a:1");
    Owner b(first, "b:1");
    ASSERT_TRUE(a.Mount(1 << 20).ok());
    ASSERT_TRUE(b.Mount(1 << 20).ok());
    a.Start();
    b.Start();
    ASSERT_TRUE(Put(first, "both", 100, /*replicas=*/2).ok());
    a.Stop();
    b.Stop();
    report_a = a.Report();
    report_b = b.Report();
  }
  ASSERT_EQ(report_a.size(), 1u);
  ASSERT_EQ(report_b.size(), 1u);
  EXPECT_EQ(report_a[0].put_id, report_b[0].put_id);

  MasterService second(Config(), Clock::Real(), &metrics);
  Owner a(second, "a:1");
  Owner b(second, "b:1");
  // b also reports an older value of a key that a holds newer: a's value wins.
  IndexEntry stale = report_a[0];
  stale.key = "contested";
  stale.offset = 4096;
  stale.put_id = report_a[0].put_id - 1;
  IndexEntry fresh = report_a[0];
  fresh.key = "contested";
  fresh.offset = 8192;
  fresh.size = 7;
  report_a.push_back(fresh);
  report_b.push_back(stale);
  ASSERT_TRUE(b.Mount(1 << 20, report_b).ok());
  ASSERT_TRUE(a.Mount(1 << 20, report_a).ok());
  const std::vector<std::string> keys = {"both", "contested"};
  auto got = second.GetReplicaList(keys);
  ASSERT_TRUE(got[0].ok());
  EXPECT_EQ(got[0]->replicas.size(), 2u);
  ASSERT_TRUE(got[1].ok());
  EXPECT_EQ(got[1]->size, 7u);
  ASSERT_EQ(got[1]->replicas.size(), 1u);
  EXPECT_EQ(got[1]->replicas[0].segment, "a:1");
  // b is told to drop its stale copy.
  b.SyncOnce();
  std::vector<IndexEntry> now_b = b.Report();
  ASSERT_EQ(now_b.size(), 1u);
  EXPECT_EQ(now_b[0].key, "both");
}

TEST(OwnerIndexTest, MalformedReportsAreRefusedWithTheReason) {
  MetricsRegistry metrics;
  MasterService service(Config(), Clock::Real(), &metrics);
  const auto mount = [&service](std::vector<IndexEntry> report) {
    return service.MountIndexedSegment(kOwner, "s:1", kBase, 1 << 20, 1, report).status();
  };
  EXPECT_EQ(ErrorCodeOf(mount({{"a", 0, 100, 1}, {"b", 64, 10, 1}})), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(mount({{"a", 3, 100, 1}})), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(mount({{"a", 0, 0, 1}})), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(mount({{"a", (1 << 20) - 64, 128, 1}})), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(mount({{"a", UINT64_MAX - 63, 64, 1}})), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(mount({{"", 0, 64, 1}})), ErrorCode::INVALID_PARAMS);
  absl::Status overlap = mount({{"a", 0, 100, 1}, {"b", 64, 10, 1}});
  EXPECT_NE(overlap.message().find("overlaps"), std::string_view::npos) << overlap;
  EXPECT_TRUE(service.ListSegments().empty());  // nothing was mounted
  // Syncing a segment that is not mounted (with an index, by this client) is SEGMENT_NOT_FOUND.
  EXPECT_EQ(ErrorCodeOf(service.SyncIndex(kOwner, "s:1", 0, 0, absl::ZeroDuration()).status()),
            ErrorCode::SEGMENT_NOT_FOUND);
  ASSERT_TRUE(service.MountSegment(kOwner, "plain:1", kBase, 1 << 20).ok());
  EXPECT_EQ(ErrorCodeOf(service.SyncIndex(kOwner, "plain:1", 0, 0, absl::ZeroDuration()).status()),
            ErrorCode::SEGMENT_NOT_FOUND);
  // A good report after the bad ones mounts.
  EXPECT_TRUE(mount({{"a", 0, 100, 1}, {"b", 128, 10, 1}}).ok());
  EXPECT_EQ(service.ListSegments().size(), 2u);
}

// An index in parts: staged parts and the mount's own part are restored together; a mount that
// counts other staged parts than the master holds (a restart lost them, or the owner started
// anew) is refused without mounting, so the owner stages again; quiet stagings are dropped.
TEST(OwnerIndexTest, AnIndexInPartsIsRestoredWholeOrNotAtAll) {
  MetricsRegistry metrics;
  FakeClock clock;
  MasterService service(Config(), &clock, &metrics);
  const auto entry = [](int i) {
    return IndexEntry{"part-" + std::to_string(i), static_cast<uint64_t>(i) * 128, 100,
                      static_cast<uint64_t>(i + 1)};
  };
  const auto part = [&entry](int from, int to) {
    std::vector<IndexEntry> out;
    for (int i = from; i < to; ++i) out.push_back(entry(i));
    return out;
  };
  const auto mount = [&service](std::vector<IndexEntry> last, uint64_t staged) {
    return service.MountIndexedSegment(kOwner, "s:1", kBase, 1 << 20, 1, std::move(last), staged)
        .status();
  };
  ASSERT_EQ(*service.StageSegmentIndex(kOwner, "s:1", true, part(0, 10)), 10u);
  ASSERT_EQ(*service.StageSegmentIndex(kOwner, "s:1", false, part(10, 20)), 20u);
  // A mount counting a different number is refused, and nothing is mounted.
  EXPECT_EQ(ErrorCodeOf(mount(part(20, 30), 19)), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(service.ListSegments().empty());
  // Starting anew drops what was staged.
  ASSERT_EQ(*service.StageSegmentIndex(kOwner, "s:1", true, part(0, 5)), 5u);
  ASSERT_EQ(*service.StageSegmentIndex(kOwner, "s:1", false, part(5, 20)), 20u);
  // A bad key in a part is refused with the reason, like in a one-part report.
  EXPECT_EQ(
      ErrorCodeOf(service.StageSegmentIndex(kOwner, "s:1", false, {{"", 4096, 10, 1}}).status()),
      ErrorCode::INVALID_PARAMS);
  ASSERT_TRUE(mount(part(20, 30), 20).ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) keys.push_back(entry(i).key);
  std::vector<absl::StatusOr<ReplicaList>> replicas = service.GetReplicaList(keys);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(replicas[i].ok()) << keys[i] << ": " << replicas[i].status();
    EXPECT_EQ(replicas[i]->replicas[0].address, kBase + entry(i).offset);
  }
  // The staging was used up: a second mount counting it is refused.
  ASSERT_TRUE(service.UnmountSegment(kOwner, "s:1").ok());
  EXPECT_EQ(ErrorCodeOf(mount({}, 20)), ErrorCode::OBJECT_NOT_FOUND);
  // Overlaps across parts are found at the mount.
  ASSERT_TRUE(service.StageSegmentIndex(kOwner, "s:1", true, part(0, 3)).ok());
  absl::Status overlap = mount({{"over", 128, 10, 99}}, 3);
  EXPECT_NE(overlap.message().find("overlaps"), std::string_view::npos) << overlap;
  EXPECT_TRUE(service.ListSegments().empty());
  // A staging nobody added to for a while is dropped at the next staging of anyone.
  ASSERT_TRUE(service.StageSegmentIndex(kOwner, "s:1", true, part(0, 3)).ok());
  clock.Advance(IndexStaging::kIdle + absl::Seconds(1));
  ASSERT_TRUE(service.StageSegmentIndex("other", "s:2", true, part(0, 1)).ok());
  EXPECT_EQ(ErrorCodeOf(mount({}, 3)), ErrorCode::OBJECT_NOT_FOUND);
}

}  // namespace
}  // namespace mooncake::master
