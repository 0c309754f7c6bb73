// `mooncake master --enable_ha`: real masters elected in a real etcd (Debian's etcd-server),
// every process on 127.0.0.1 ports picked by the test.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "common/error_code.h"
#include "http/client.h"
#include "http/etcd_client.h"
#include "http/json_body.h"
#include "master/ha/leader_election.h"
#include "support/etcd.h"
#include "support/raw_socket.h"
#include "support/subprocess.h"

namespace mooncake {
namespace {

using nlohmann::json;
using test::Subprocess;

class HaMasterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<test::EtcdCluster>(1);
    ASSERT_TRUE(etcd_->ok()) << "etcd did not start";
    etcd_client_ = etcd_->NewClient();
    ASSERT_TRUE(etcd_client_);
  }

  void TearDown() override {
    for (auto& [port, master] : masters_) {
      master->Signal(SIGCONT);
      master->Signal(SIGTERM);
      master->Wait(absl::Seconds(20));
    }
  }

  // Starts a master (with the original's spelling of the etcd flags if asked); its RPC port.
  int StartMaster(bool original_spelling = false) {
    std::vector<std::string> argv = {
        MOONCAKE_BINARY,  "master", "--rpc_address", "127.0.0.1",          "--port", "0",
        "--metrics-port", "0",      "--enable_ha",   "--ha_lease_ttl_sec", "2",      "--cluster_id",
        "ha_test"};
    if (original_spelling) {
      argv.insert(argv.end(),
                  {"--ha_backend_type=etcd", "--ha_backend_connstring=" + etcd_->endpoints()});
    } else {
      argv.insert(argv.end(), {"--etcd_endpoints", etcd_->endpoints()});
    }
    auto master = std::make_unique<Subprocess>(argv);
    std::optional<std::string> line = master->WaitForLine("listening", absl::Seconds(20));
    EXPECT_TRUE(line.has_value()) << "mooncake master did not start";
    if (!line) return 0;
    std::smatch m;
    EXPECT_TRUE(std::regex_search(*line, m, std::regex("rpc=[0-9.]+:([0-9]+)")));
    const int port = std::stoi(m[1]);
    EXPECT_TRUE(std::regex_search(*line, m, std::regex("metrics=[0-9.]+:([0-9]+)")));
    admin_ports_[port] = std::stoi(m[1]);
    masters_[port] = std::move(master);
    return port;
  }

  // The leader as etcd names it, once it is one of `ports` and it answers as leader.
  std::optional<master::LeaderInfo> WaitForLeader(absl::Duration timeout, uint64_t newer_than = 0) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<std::optional<master::LeaderInfo>> leader =
          master::ReadLeader(*etcd_client_, master::LeaderKey("ha_test"));
      if (leader.ok() && leader->has_value() && (*leader)->epoch > newer_than) {
        Answer answer = Ask(PortOf((*leader)->address));
        if (answer.status == 200 && answer.epoch == (*leader)->epoch) return **leader;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return std::nullopt;
  }

  static int PortOf(const std::string& address) {
    return std::stoi(address.substr(address.rfind(':') + 1));
  }

  struct Answer {
    int status = 0;
    uint64_t epoch = 0;
    ErrorCode code = ErrorCode::OK;
    std::string message;
  };
  // One ListSegments call to the master at `port`.
  static Answer Ask(int port) {
    http::HttpClientOptions options;
    options.max_attempts = 1;
    options.timeout = absl::Seconds(2);
    http::HttpClient client("127.0.0.1", port, options);
    absl::StatusOr<http::HttpResult> result =
        client.Send("POST", "/v1/ListSegments", "{}", "application/json");
    Answer answer;
    if (!result.ok()) return answer;
    answer.status = result->status;
    // The epoch header is checked through a raw response below; here the body's error, if any.
    if (result->status != 200) {
      absl::Status error = http::StatusFromErrorResponse(result->status, result->body);
      answer.code = ErrorCodeOf(error);
      answer.message = std::string(error.message());
    }
    answer.epoch = EpochHeader(port);
    return answer;
  }
  // The X-Mooncake-Epoch header of a /v1/ListSegments answer.
  static uint64_t EpochHeader(int port) {
    test::RawSocket raw(port);
    if (!raw.connected()) return 0;
    raw.Send(
        "POST /v1/ListSegments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
    const std::string response = raw.ReadResponse(absl::Seconds(2));
    std::smatch m;
    if (!std::regex_search(response, m, std::regex("X-Mooncake-Epoch: ([0-9]+)"))) return 0;
    return std::stoull(m[1]);
  }

  std::unique_ptr<test::EtcdCluster> etcd_;
  std::unique_ptr<http::EtcdClient> etcd_client_;
  std::map<int, std::unique_ptr<Subprocess>> masters_;
  std::map<int, int> admin_ports_;  // by RPC port
};

TEST_F(HaMasterTest, OneMasterLeadsAndTheOthersReferCallersToIt) {
  const int a = StartMaster();
  const int b = StartMaster(/*original_spelling=*/true);
  std::optional<master::LeaderInfo> leader = WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value()) << "no master leads";
  const int leading = PortOf(leader->address);
  ASSERT_TRUE(leading == a || leading == b);
  const int following = leading == a ? b : a;
  // The follower refuses from the start, and names the leader once its campaign has found it.
  Answer answer = Ask(following);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (answer.message.find(leader->address) == std::string::npos && absl::Now() < deadline) {
    EXPECT_EQ(answer.status, 503);
    absl::SleepFor(absl::Milliseconds(20));
    answer = Ask(following);
  }
  EXPECT_EQ(answer.status, 503);
  EXPECT_EQ(answer.code, ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  EXPECT_NE(answer.message.find(leader->address), std::string::npos) << answer.message;
  // A follower's admin port answers (health, metrics) all the same.
  http::HttpClient admin("127.0.0.1", admin_ports_[following]);
  absl::StatusOr<http::HttpResult> health = admin.Get("/health");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->status, 200);
}

TEST_F(HaMasterTest, AKilledLeaderIsReplacedWithinItsLeaseUnderAHigherEpoch) {
  StartMaster();
  StartMaster();
  std::optional<master::LeaderInfo> first = WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(first.has_value());
  const int port = PortOf(first->address);
  const absl::Time killed = absl::Now();
  masters_[port]->Signal(SIGKILL);
  masters_[port]->Wait(absl::Seconds(10));
  masters_.erase(port);
  std::optional<master::LeaderInfo> second = WaitForLeader(absl::Seconds(20), first->epoch);
  ASSERT_TRUE(second.has_value()) << "no master took over";
  const absl::Duration failover = absl::Now() - killed;
  EXPECT_NE(second->address, first->address);
  EXPECT_GT(second->epoch, first->epoch);
  // The lease (2 s) runs out, etcd notices (it checks every 500 ms), a follower campaigns.
  EXPECT_LT(failover, absl::Seconds(4));
  std::printf("failover after kill -9 of the leader: %s\n", absl::FormatDuration(failover).c_str());
}

TEST_F(HaMasterTest, AStoppedLeaderNeverAnswersAsLeaderWithItsOldEpoch) {
  StartMaster();
  StartMaster();
  std::optional<master::LeaderInfo> first = WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(first.has_value());
  const int port = PortOf(first->address);
  masters_[port]->Signal(SIGSTOP);
  std::optional<master::LeaderInfo> second = WaitForLeader(absl::Seconds(20), first->epoch);
  ASSERT_TRUE(second.has_value()) << "no master took over";
  masters_[port]->Signal(SIGCONT);
  // From its first answer on, the old leader refuses (or, if elected again, answers under a
  // newer epoch): never as leader under its old one.
  for (int i = 0; i < 50; ++i) {
    Answer answer = Ask(port);
    if (answer.status == 200) {
      EXPECT_GT(answer.epoch, first->epoch);
    } else {
      EXPECT_EQ(answer.code, ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS) << answer.message;
    }
  }
  Answer leader = Ask(PortOf(second->address));
  EXPECT_EQ(leader.status, 200);
  EXPECT_EQ(leader.epoch, second->epoch);
}

TEST_F(HaMasterTest, BadHaFlagsAreUsageErrors) {
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--enable_ha"},
        std::vector<std::string>{"--enable_ha", "--etcd_endpoints", "no-port"},
        std::vector<std::string>{"--enable_ha", "--ha_backend_type", "redis",
                                 "--ha_backend_connstring", "127.0.0.1:1"},
        std::vector<std::string>{"--enable_ha", "--etcd_endpoints", "127.0.0.1:1",
                                 "--ha_lease_ttl_sec", "0"},
        std::vector<std::string>{"--enable_ha", "--etcd_endpoints", "127.0.0.1:1", "--cluster_id",
                                 "a/b"}}) {
    std::vector<std::string> argv = {MOONCAKE_BINARY,  "master", "--port", "0",
                                     "--metrics-port", "0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    test::RunResult run = test::RunCommand(argv);
    EXPECT_EQ(run.status, 2) << flags.back();
  }
}

}  // namespace
}  // namespace mooncake
