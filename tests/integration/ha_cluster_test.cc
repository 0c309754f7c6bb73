// Stores and clients of masters elected in etcd: `master_server_address` is
// etcd://<endpoints>/<cluster_id>, and they follow the leader when it dies. Real etcd, real
// `mooncake master --enable_ha` processes, real stores, on 127.0.0.1. Segment descriptors live in
// the same etcd (metadata_server etcd://<endpoints>).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "http/etcd_client.h"
#include "http/etcd_leader.h"
#include "integration/cluster_fixture.h"
#include "support/etcd.h"

namespace mooncake {
namespace {

class HaClusterTest : public StoreClusterTest {
 protected:
  // One etcd for the masters' election and the segment descriptors: no metadata service.
  void StartMetadata() override {
    etcd_ = std::make_unique<test::EtcdCluster>(etcd_members_);
    ASSERT_TRUE(etcd_->ok()) << "etcd did not start";
    etcd_client_ = etcd_->NewClient();
    ASSERT_TRUE(etcd_client_);
    metadata_url_ = "etcd://" + etcd_->endpoints();
  }

  void StartMasters() override {
    for (int i = 0; i < 2; ++i) StartOneMaster();
    ASSERT_TRUE(Leader(absl::Seconds(20)).has_value()) << "no master leads";
    master_address_ = "etcd://" + etcd_->endpoints() + "/ha_cluster";
  }

  void StartOneMaster() {
    auto master = std::make_unique<Subprocess>(WithToken(std::vector<std::string>{
        MOONCAKE_BINARY, "master", "--rpc_address", "127.0.0.1", "--port", "0", "--metrics-port",
        "0", "--client_live_ttl_sec", "2", "--enable_ha", "--etcd_endpoints", etcd_->endpoints(),
        "--cluster_id", "ha_cluster"}));
    std::optional<std::string> line = master->WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake master did not start";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("rpc=[0-9.]+:([0-9]+)")));
    masters_[std::stoi(m[1])] = std::move(master);
  }

  void TearDown() override {
    StoreClusterTest::TearDown();
    for (auto& [port, master] : masters_) {
      master->Signal(SIGTERM);
      EXPECT_EQ(master->Wait(absl::Seconds(20)), 0);
    }
  }

  // Puts until the put is acknowledged. A put that meets a failover fails cleanly, by design, and
  // under a sanitizer on a loaded machine a leader may lose its lease without being killed (seen
  // under ThreadSanitizer: a leader starved of CPU for its 2 s lease). OBJECT_ALREADY_EXISTS: an
  // earlier attempt was acknowledged after all, its answer lost; the tests read the bytes back.
  static absl::Status PutAcknowledged(Client& client, const std::string& key,
                                      const std::string& value,
                                      const ReplicateConfig& config = {}) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (;;) {
      absl::Status put = client.Put(key, value, config);
      if (put.ok() || ErrorCodeOf(put) == ErrorCode::OBJECT_ALREADY_EXISTS) return absl::OkStatus();
      if (absl::Now() > deadline) return put;
      std::printf("put %s met a failover, putting again: %s\n", key.c_str(),
                  put.ToString().c_str());
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  // The leader etcd names, newer than `after`.
  std::optional<http::LeaderInfo> Leader(absl::Duration timeout, uint64_t after = 0) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<std::optional<http::LeaderInfo>> leader =
          http::ReadLeader(*etcd_client_, http::LeaderKey("ha_cluster"));
      if (leader.ok() && leader->has_value() && (*leader)->epoch > after) return **leader;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return std::nullopt;
  }

  // Kills the leader with SIGKILL; returns its epoch and the time of the kill.
  std::pair<uint64_t, absl::Time> KillLeader() {
    std::optional<http::LeaderInfo> leader = Leader(absl::Seconds(5));
    EXPECT_TRUE(leader.has_value()) << "no master leads";
    if (!leader.has_value()) return {0, absl::Now()};
    const int port = std::stoi(leader->address.substr(leader->address.rfind(':') + 1));
    const absl::Time killed = absl::Now();
    masters_[port]->Signal(SIGKILL);
    masters_[port]->Wait(absl::Seconds(10));
    masters_.erase(port);
    return {leader->epoch, killed};
  }

  int etcd_members_ = 1;
  std::unique_ptr<test::EtcdCluster> etcd_;
  std::unique_ptr<http::EtcdClient> etcd_client_;
  std::map<int, std::unique_ptr<Subprocess>> masters_;
};

TEST_F(HaClusterTest, ClientsAndStoresFollowTheLeaderWhenItIsKilled) {
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  const std::string value(100000, 'h');
  ASSERT_TRUE(PutAcknowledged(*client, "before", value).ok());
  EXPECT_EQ(*client->Get("before"), value);

  std::optional<http::LeaderInfo> first = Leader(absl::Seconds(5));
  ASSERT_TRUE(first.has_value());
  const absl::Time killed = KillLeader().second;

  // The client's next call that succeeds is answered by the new leader.
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client->ListSegments();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!segments.ok() && absl::Now() < deadline) segments = client->ListSegments();
  ASSERT_TRUE(segments.ok()) << segments.status();
  std::printf("from kill -9 of the leader to the client's next successful call: %s\n",
              absl::FormatDuration(absl::Now() - killed).c_str());
  std::optional<http::LeaderInfo> second = Leader(absl::Seconds(1), first->epoch);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->address, first->address);
  // The stores saw the new epoch and mounted their segments there, with what they hold.
  ASSERT_TRUE(WaitForSegments(*client, 2));
  EXPECT_EQ(*client->Get("before"), value);
  std::vector<std::string> keys;
  std::vector<std::string_view> values;
  for (int i = 0; i < 16; ++i) {
    keys.push_back("after_" + std::to_string(i));
    values.push_back(value);
  }
  for (const absl::Status& s : client->BatchPut(keys, values)) EXPECT_TRUE(s.ok()) << s;
  for (const auto& got : client->BatchGet(keys)) {
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, value);
  }
  // A new client finds the new leader in etcd.
  auto late = MakeClient(/*shm=*/true);
  ASSERT_TRUE(late);
  EXPECT_EQ(*late->Get("after_3"), value);
}

TEST_F(HaClusterTest, EightThreadsCheckEveryByteAcrossAKilledLeader) {
  auto client = MakeClient(/*shm=*/false, 64 * kMiB);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  constexpr int kThreads = 8;
  struct Done {
    std::string key;
    size_t size;
    absl::Time at;  // when its put returned OK
  };
  std::vector<std::vector<Done>> done(kThreads);
  std::vector<absl::Time> last_ok(kThreads, absl::InfinitePast());
  absl::Mutex mu;  // guards last_ok
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, reads{0}, failed_calls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; !stop.load(); ++i) {
        const std::string key = "t" + std::to_string(t) + "_" + std::to_string(i);
        const size_t size = 1000 + rng() % (64 * 1024);
        bool ok = client->Put(key, test::BytesFor(key, size)).ok();
        if (ok) done[t].push_back(Done{key, size, absl::Now()});
        if (!done[t].empty()) {
          const Done& old = done[t][rng() % done[t].size()];
          absl::StatusOr<std::string> got = client->Get(old.key);
          if (got.ok()) {
            ++reads;
            if (*got != test::BytesFor(old.key, old.size)) ++wrong;
          }
          ok = ok && got.ok();
        }
        if (ok) {
          absl::MutexLock lock(&mu);
          last_ok[t] = absl::Now();
        } else {
          ++failed_calls;
        }
      }
    });
  }
  const auto all_ok_since = [&](absl::Time since) {
    absl::MutexLock lock(&mu);
    return std::all_of(last_ok.begin(), last_ok.end(), [since](absl::Time t) { return t > since; });
  };
  // Load first, then the kill.
  const absl::Time started = absl::Now();
  while (!all_ok_since(started) || reads.load() < 200) absl::SleepFor(absl::Milliseconds(5));
  const absl::Time killed = KillLeader().second;
  const absl::Time deadline = killed + absl::Seconds(30);
  while (!all_ok_since(killed) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  absl::Duration slowest;
  {
    absl::MutexLock lock(&mu);
    for (absl::Time t : last_ok) slowest = std::max(slowest, t - killed);
  }
  // Some more load through the new leader.
  const uint64_t reads_then = reads.load();
  while (reads.load() < reads_then + 200 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(all_ok_since(killed)) << "a thread never succeeded after the kill";
  std::printf(
      "from kill -9 of the leader to every thread's next put and get: %s; %llu reads, "
      "%llu failed calls, %llu wrong\n",
      absl::FormatDuration(slowest).c_str(), static_cast<unsigned long long>(reads.load()),
      static_cast<unsigned long long>(failed_calls.load()),
      static_cast<unsigned long long>(wrong.load()));
  EXPECT_EQ(wrong.load(), 0u);
  // A bound against hangs, not a measurement (failover_bench measures): a call once waited its
  // whole rpc_timeout (10 s) for a leader newer than the one another thread had just found.
  EXPECT_LT(slowest, absl::Seconds(8));
  // Every object whose put returned OK, before the kill or after, reads back intact.
  size_t before = 0, after = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (const Done& d : done[t]) {
      absl::StatusOr<std::string> got = client->Get(d.key);
      ASSERT_TRUE(got.ok()) << d.key << " (put " << (d.at < killed ? "before" : "after")
                            << " the kill): " << got.status();
      EXPECT_TRUE(*got == test::BytesFor(d.key, d.size)) << d.key;
      (d.at < killed ? before : after) += 1;
    }
  }
  std::printf("%zu objects put before the kill and %zu after: all read back intact\n", before,
              after);
  EXPECT_GT(before, 0u);
  EXPECT_GT(after, 0u);
}

TEST_F(HaClusterTest, EveryMasterKilledThenOneStartedLosesNothing) {
  auto client = MakeClient(/*shm=*/true);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i) {
    ReplicateConfig config;
    config.replica_num = i % 3 == 0 ? 2 : 1;
    keys.push_back("all_" + std::to_string(i));
    ASSERT_TRUE(
        PutAcknowledged(*client, keys.back(), test::BytesFor(keys.back(), 3000 + i), config).ok());
  }
  ClientConfig impatient_config = ClientConfigFor(/*shm=*/false);
  impatient_config.rpc_timeout = absl::Milliseconds(500);
  absl::StatusOr<std::unique_ptr<Client>> impatient = Client::Create(impatient_config);
  ASSERT_TRUE(impatient.ok()) << impatient.status();
  std::optional<http::LeaderInfo> first = Leader(absl::Seconds(5));
  ASSERT_TRUE(first.has_value());
  for (auto& [port, master] : masters_) master->Signal(SIGKILL);
  for (auto& [port, master] : masters_) master->Wait(absl::Seconds(10));
  masters_.clear();
  // No master at all: calls fail cleanly (after waiting their timeout for a leader).
  absl::StatusOr<std::string> none = (*impatient)->Get(keys[0]);
  EXPECT_FALSE(none.ok());
  std::printf("with no master: %s\n", none.status().ToString().c_str());
  StartOneMaster();
  ASSERT_TRUE(Leader(absl::Seconds(20), first->epoch).has_value()) << "the new master never led";
  ASSERT_TRUE(WaitForSegments(*client, 2)) << "the stores did not mount at the new master";
  for (int i = 0; i < 64; ++i) {
    absl::StatusOr<std::string> got = client->Get(keys[i]);
    ASSERT_TRUE(got.ok()) << keys[i] << ": " << got.status();
    EXPECT_TRUE(*got == test::BytesFor(keys[i], 3000 + i)) << keys[i];
  }
}

// Waits until `read` succeeds (true) or `timeout` passes (false).
bool ReadsWithin(Client& client, const std::string& key, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (client.Get(key).ok()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

TEST_F(HaClusterTest, EtcdDownStopsTheLeaderAndEtcdBackRestoresService) {
  ClientConfig config = ClientConfigFor(/*shm=*/false);
  config.rpc_timeout = absl::Milliseconds(500);
  absl::StatusOr<std::unique_ptr<Client>> made = Client::Create(config);
  ASSERT_TRUE(made.ok()) << made.status();
  Client& client = **made;
  ASSERT_TRUE(WaitForSegments(client, 2));
  const std::string value = test::BytesFor("outage", 50000);
  ASSERT_TRUE(PutAcknowledged(client, "outage", value).ok());
  // etcd stops answering (SIGSTOP of its only member): the leader cannot renew its lease, so it
  // stops serving before the lease can have expired; calls get a clean error.
  const absl::Time stopped = absl::Now();
  etcd_->Stop(0);
  absl::Status failed;
  absl::Time asked;  // when the first call that failed was made
  while (absl::Now() < stopped + absl::Seconds(10)) {
    asked = absl::Now();
    failed = client.Get("outage").status();
    if (!failed.ok()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration served_for = asked - stopped;
  ASSERT_FALSE(failed.ok()) << "the leader kept serving without etcd";
  std::printf("etcd stopped: the leader stopped serving after %s: %s\n",
              absl::FormatDuration(served_for).c_str(), failed.ToString().c_str());
  EXPECT_LT(served_for, absl::Seconds(2) + absl::Milliseconds(500));  // its lease TTL, and a poll
  // etcd back: a leader serves again, and the object is still there.
  etcd_->Continue(0);
  EXPECT_TRUE(ReadsWithin(client, "outage", absl::Seconds(30))) << "service never came back";
  EXPECT_EQ(*client.Get("outage"), value);
  ASSERT_TRUE(PutAcknowledged(client, "after_outage", value).ok());
}

class HaThreeEtcdMembersTest : public HaClusterTest {
 protected:
  HaThreeEtcdMembersTest() { etcd_members_ = 3; }
};

TEST_F(HaThreeEtcdMembersTest, OneEtcdMemberKilledChangesNothingForClients) {
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  const std::string value = test::BytesFor("member", 20000);
  ASSERT_TRUE(PutAcknowledged(*client, "member", value).ok());
  // The first member (whose endpoint every master and client tries first) dies; the other two
  // keep a quorum, and the masters' etcd clients move on to them.
  std::optional<http::LeaderInfo> before = Leader(absl::Seconds(5));
  ASSERT_TRUE(before.has_value());
  etcd_->Kill(0);
  for (int i = 0; i < 20; ++i) {
    const std::string key = "member_" + std::to_string(i);
    absl::Status put = client->Put(key, test::BytesFor(key, 20000));
    if (!put.ok()) {
      // A put may fail only in a failover: the leader kept its lease through etcd's own election
      // unless the machine starved both (seen with three such tests at once on 2 cores: the
      // leader's renewals went unanswered for its whole lease, and it led again under a new
      // epoch). Without a new epoch a failed put is this test's failure.
      ASSERT_TRUE(Leader(absl::Seconds(5), before->epoch).has_value())
          << key << " failed with no failover: " << put;
      std::printf("%s met a failover after the member's kill: %s\n", key.c_str(),
                  put.ToString().c_str());
      ASSERT_TRUE(PutAcknowledged(*client, key, test::BytesFor(key, 20000)).ok()) << key;
    }
    EXPECT_EQ(*client->Get(key), test::BytesFor(key, 20000));
  }
  EXPECT_EQ(*client->Get("member"), value);
  // Elections still work with two members: kill the leader.
  ASSERT_NE(KillLeader().first, 0u);
  // Each store's objects are misses until that store has mounted again at the new leader; the
  // two stores remount one after the other (a run once read member_7, on the second, in the
  // millisecond between), so each key is waited for, and then must hold its own bytes.
  EXPECT_TRUE(ReadsWithin(*client, "member", absl::Seconds(30)));
  ASSERT_TRUE(ReadsWithin(*client, "member_7", absl::Seconds(30)));
  absl::StatusOr<std::string> after = client->Get("member_7");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, test::BytesFor("member_7", 20000));
}

TEST_F(HaClusterTest, AnEtcdAddressWithoutALeaderOrEtcdIsAClearError) {
  ClientConfig config = ClientConfigFor(/*shm=*/false);
  config.rpc_timeout = absl::Seconds(1);
  config.master_server_address = "etcd://" + etcd_->endpoints() + "/no_such_cluster";
  absl::StatusOr<std::unique_ptr<Client>> none = Client::Create(config);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no master leads"), std::string::npos) << none.status();
  config.master_server_address = "etcd://127.0.0.1:" + std::to_string(test::FreeLoopbackPort());
  absl::StatusOr<std::unique_ptr<Client>> unreachable = Client::Create(config);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(ErrorCodeOf(unreachable.status()), ErrorCode::ETCD_OPERATION_ERROR)
      << unreachable.status();
  for (const char* bad : {"etcd://", "etcd://h:1/a/b", "etcd://no-port"}) {
    config.master_server_address = bad;
    absl::StatusOr<std::unique_ptr<Client>> refused = Client::Create(config);
    EXPECT_EQ(ErrorCodeOf(refused.status()), ErrorCode::INVALID_PARAMS) << bad;
  }
}

}  // namespace
}  // namespace mooncake
