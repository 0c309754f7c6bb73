// Stores and clients of masters elected in etcd: `master_server_address` is
// etcd://<endpoints>/<cluster_id>, and they follow the leader when it dies. Real etcd, real
// `mooncake master --enable_ha` processes, real stores, on 127.0.0.1.
#include <signal.h>

#include <map>

#include "http/etcd_client.h"
#include "http/etcd_leader.h"
#include "integration/cluster_fixture.h"
#include "support/etcd.h"

namespace mooncake {
namespace {

class HaClusterTest : public StoreClusterTest {
 protected:
  void StartMasters() override {
    etcd_ = std::make_unique<test::EtcdCluster>(1);
    ASSERT_TRUE(etcd_->ok()) << "etcd did not start";
    etcd_client_ = etcd_->NewClient();
    ASSERT_TRUE(etcd_client_);
    for (int i = 0; i < 2; ++i) {
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
    ASSERT_TRUE(Leader(absl::Seconds(20)).has_value()) << "no master leads";
    master_address_ = "etcd://" + etcd_->endpoints() + "/ha_cluster";
  }

  void TearDown() override {
    StoreClusterTest::TearDown();
    for (auto& [port, master] : masters_) {
      master->Signal(SIGTERM);
      EXPECT_EQ(master->Wait(absl::Seconds(20)), 0);
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

  std::unique_ptr<test::EtcdCluster> etcd_;
  std::unique_ptr<http::EtcdClient> etcd_client_;
  std::map<int, std::unique_ptr<Subprocess>> masters_;
};

TEST_F(HaClusterTest, ClientsAndStoresFollowTheLeaderWhenItIsKilled) {
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  const std::string value(100000, 'h');
  ASSERT_TRUE(client->Put("before", value).ok());
  EXPECT_EQ(*client->Get("before"), value);

  std::optional<http::LeaderInfo> first = Leader(absl::Seconds(5));
  ASSERT_TRUE(first.has_value());
  const int port = std::stoi(first->address.substr(first->address.rfind(':') + 1));
  const absl::Time killed = absl::Now();
  masters_[port]->Signal(SIGKILL);
  masters_[port]->Wait(absl::Seconds(10));
  masters_.erase(port);

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
  // The stores saw the new epoch and mounted their segments there.
  ASSERT_TRUE(WaitForSegments(*client, 2));
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
