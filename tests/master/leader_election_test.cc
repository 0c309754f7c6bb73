// Leader election against a real etcd (Debian's etcd-server) started by the test on loopback
// ports.
#include "master/ha/leader_election.h"

#include <gtest/gtest.h>

#include <memory>

#include "common/error_code.h"
#include "support/etcd.h"

namespace mooncake::master {
namespace {

using test::EtcdCluster;

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<EtcdCluster>(1);
    ASSERT_TRUE(etcd_->ok()) << "etcd did not start";
    client_ = etcd_->NewClient();
    ASSERT_TRUE(client_);
  }

  ElectionOptions Options(const std::string& address) {
    ElectionOptions options;
    options.key = LeaderKey("test");
    options.value = address;
    options.lease_ttl = absl::Seconds(2);
    return options;
  }

  // Waits until exactly one of the elections leads; its index, or -1.
  static int WaitForOneLeader(const std::vector<LeaderElection*>& elections,
                              absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int leaders = 0, which = -1;
      for (size_t i = 0; i < elections.size(); ++i) {
        if (elections[i]->epoch() != 0) {
          ++leaders;
          which = static_cast<int>(i);
        }
      }
      EXPECT_LE(leaders, 1) << "two leaders at once";
      if (leaders == 1) return which;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return -1;
  }

  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<http::EtcdClient> client_;
};

TEST_F(LeaderElectionTest, OneLeadsAndAResignationHandsOverAtOnceWithAHigherEpoch) {
  LeaderElection a(client_.get(), Options("10.0.0.1:50051"));
  LeaderElection b(client_.get(), Options("10.0.0.2:50051"));
  a.Start();
  ASSERT_TRUE(a.WaitUntilLeader(absl::Seconds(10)));
  b.Start();
  const uint64_t first = a.epoch();
  absl::StatusOr<std::optional<LeaderInfo>> seen = ReadLeader(*client_, LeaderKey("test"));
  ASSERT_TRUE(seen.ok() && seen->has_value()) << seen.status();
  EXPECT_EQ((*seen)->address, "10.0.0.1:50051");
  EXPECT_EQ((*seen)->epoch, first);
  // b follows and knows who leads.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!b.leader().has_value() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(b.leader().has_value());
  EXPECT_EQ(b.leader()->address, "10.0.0.1:50051");
  EXPECT_EQ(b.epoch(), 0u);
  // a stops: it resigns, and b leads well before a's lease could have expired.
  const absl::Time stopped = absl::Now();
  a.Stop();
  ASSERT_EQ(WaitForOneLeader({&a, &b}, absl::Seconds(10)), 1);
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(2));
  EXPECT_GT(b.epoch(), first);
  EXPECT_EQ(a.epoch(), 0u);
}

TEST_F(LeaderElectionTest, ALeaderThatCannotReachEtcdStopsLeadingWithinItsLease) {
  LeaderElection a(client_.get(), Options("10.0.0.1:50051"));
  a.Start();
  ASSERT_TRUE(a.WaitUntilLeader(absl::Seconds(10)));
  etcd_->Stop(0);  // SIGSTOP: etcd neither answers nor expires anything
  const absl::Time stopped = absl::Now();
  while (a.epoch() != 0 && absl::Now() - stopped < absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(a.epoch(), 0u);
  EXPECT_LE(absl::Now() - stopped, absl::Seconds(2));  // the lease TTL
  etcd_->Continue(0);
  // Once etcd is back, someone leads again (here: a, with a new term).
  EXPECT_TRUE(a.WaitUntilLeader(absl::Seconds(20)));
}

TEST_F(LeaderElectionTest, APausedLeaderSeesAtOnceThatItsLeadershipRanOut) {
  std::atomic<int64_t> skew_ms{0};
  ElectionOptions options = Options("10.0.0.1:50051");
  // Stands for a SIGSTOP of the whole process: when it runs again, its clock has moved on.
  options.now = [&skew_ms] {
    return std::chrono::steady_clock::now() + std::chrono::milliseconds(skew_ms.load());
  };
  LeaderElection a(client_.get(), options);
  a.Start();
  ASSERT_TRUE(a.WaitUntilLeader(absl::Seconds(10)));
  const uint64_t first = a.epoch();
  skew_ms = 5000;
  EXPECT_EQ(a.epoch(), 0u);  // on the very next call, before its thread noticed anything
  // It notices, resigns, and leads again under a new epoch.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (a.epoch() <= first && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_GT(a.epoch(), first);
}

TEST_F(LeaderElectionTest, AForeignValueUnderTheLeaderKeyIsAClearError) {
  for (const std::string& value :
       {std::string("garbage"), std::string("host:0"), std::string("host:99999"),
        std::string("a b:1"), std::string(300, 'x') + ":1", std::string("\x01:1", 3)}) {
    ASSERT_TRUE(client_->Put(LeaderKey("test"), value).ok());
    absl::StatusOr<std::optional<LeaderInfo>> seen = ReadLeader(*client_, LeaderKey("test"));
    EXPECT_EQ(ErrorCodeOf(seen.status()), ErrorCode::ETCD_OPERATION_ERROR) << value;
    EXPECT_NE(seen.status().message().find(LeaderKey("test")), std::string::npos);
  }
  ASSERT_TRUE(client_->Delete(LeaderKey("test")).ok());
  absl::StatusOr<std::optional<LeaderInfo>> none = ReadLeader(*client_, LeaderKey("test"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

}  // namespace
}  // namespace mooncake::master
