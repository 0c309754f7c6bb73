// A real cluster: `mooncake metadata`, `mooncake master` and two `mooncake store` processes on
// 127.0.0.1, driven by a client program (store_client_check) and by this test's own client; then
// faults: a store killed while a client reads, a master restart, the metadata service stopped;
// and 8 client threads hammering two stores for 30 seconds.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/error_code.h"
#include "http/client.h"
#include "support/memory.h"
#include "support/subprocess.h"

namespace mooncake {
namespace {

using client::Client;
using client::ClientConfig;
using client::ReplicateConfig;
using client::Slice;
using test::Subprocess;

constexpr uint64_t kMiB = 1u << 20;

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name, "-", getpid());
}

// The bytes object `key` holds: derived from the key, so any reader can check them.
void FillFor(const std::string& key, char* p, size_t n) {
  test::FillRandom(p, n, std::hash<std::string>()(key));
}

using test::MappedBuffer;

class StoreClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metadata_ = std::make_unique<Subprocess>(std::vector<std::string>{
        MOONCAKE_BINARY, "metadata", "--host", "127.0.0.1", "--port", "0"});
    std::optional<std::string> line = metadata_->WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake metadata did not start";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("(http://[0-9.:]+/metadata)")));
    metadata_url_ = m[1];
    StartMaster("0");
    for (int i = 0; i < 2; ++i) StartStore(i);
  }

  void TearDown() override {
    for (auto& store : stores_) {
      if (store) {
        store->Signal(SIGTERM);
        EXPECT_EQ(store->Wait(absl::Seconds(20)), 0);
      }
    }
    if (master_) {
      master_->Signal(SIGTERM);
      EXPECT_EQ(master_->Wait(absl::Seconds(20)), 0);
    }
    if (metadata_) {
      metadata_->Signal(SIGTERM);
      EXPECT_EQ(metadata_->Wait(absl::Seconds(20)), 0);
    }
    for (const std::string& path : configs_) unlink(path.c_str());
  }

  void StartMaster(const std::string& port) {
    master_ = std::make_unique<Subprocess>(
        std::vector<std::string>{MOONCAKE_BINARY, "master", "--rpc_address", "127.0.0.1", "--port",
                                 port, "--metrics-port", "0", "--client_live_ttl_sec", "2"});
    std::optional<std::string> line = master_->WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake master did not start";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("rpc=([0-9.]+:[0-9]+)")));
    master_address_ = m[1];
  }

  void StartStore(size_t index, uint64_t segment = 256 * kMiB) {
    const std::string path = TempPath("store" + std::to_string(index) + ".json");
    std::ofstream(path) << nlohmann::json{
        {"local_hostname", "127.0.0.1"},
        {"metadata_server", metadata_url_},
        {"master_server_address", master_address_},
        {"protocol", "tcp"},
        {"global_segment_size", segment},
        {"local_buffer_size",
         0}}.dump();
    configs_.push_back(path);
    if (stores_.size() <= index) stores_.resize(index + 1);
    stores_[index] = std::make_unique<Subprocess>(
        std::vector<std::string>{MOONCAKE_BINARY, "store", "--config", path, "--http-port", "0",
                                 "--http-host", "127.0.0.1", "--listen-address", "127.0.0.1"});
    std::optional<std::string> line = stores_[index]->WaitForLine("serving", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake store did not start";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*line, m, std::regex("http=127.0.0.1:([0-9]+)")));
    if (store_http_.size() <= index) store_http_.resize(index + 1);
    store_http_[index] = std::stoi(m[1]);
  }

  std::unique_ptr<Client> MakeClient(bool shm, uint64_t local_buffer = 16 * kMiB) {
    ClientConfig config;
    config.local_hostname = "127.0.0.1";
    config.listen_address = "127.0.0.1";
    config.metadata_server = metadata_url_;
    config.master_server_address = master_address_;
    config.global_segment_size = 0;
    config.local_buffer_size = local_buffer;
    config.enable_shm = shm;
    config.heartbeat_interval = absl::Milliseconds(200);
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // Waits until the master lists `count` segments.
  bool WaitForSegments(Client& client, size_t count, absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto segments = client.ListSegments();
      if (segments.ok() && segments->size() == count) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  std::unique_ptr<Subprocess> metadata_, master_;
  std::vector<std::unique_ptr<Subprocess>> stores_;
  std::vector<std::string> configs_;
  std::vector<int> store_http_;  // the stores' /health and /metrics ports
  std::string metadata_url_, master_address_;
};

TEST_F(StoreClusterTest, ClientProgramPassesEveryCheck) {
  // Stores in other processes of this host: shared memory carries the bytes.
  test::RunResult run =
      test::RunCommand({STORE_CLIENT_CHECK, "--master", master_address_, "--metadata",
                        metadata_url_, "--expect-transport", "shm", "--stores", "2"},
                       absl::Seconds(90));
  EXPECT_EQ(run.status, 0) << run.output;
}

TEST_F(StoreClusterTest, AStoreServesHealthAndMetricsAndUnmountsOnSigterm) {
  http::HttpClient http("127.0.0.1", store_http_[1]);
  absl::StatusOr<http::HttpResult> health = http.Get("/health");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->status, 200);
  absl::StatusOr<http::HttpResult> metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("mooncake_store_segment_bytes 268435456"), std::string::npos)
      << metrics->body;

  auto client = MakeClient(/*shm=*/true);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  stores_[1]->Signal(SIGTERM);
  EXPECT_EQ(stores_[1]->Wait(absl::Seconds(20)), 0);
  stores_[1].reset();
  // Unmounted on the way out, not left for the master to time out.
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client->ListSegments();
  ASSERT_TRUE(segments.ok());
  EXPECT_EQ(segments->size(), 1u);
}

TEST_F(StoreClusterTest, AStoreKilledWhileAClientReadsNeverYieldsWrongBytes) {
  auto client = MakeClient(/*shm=*/false);  // TCP, so a dead store fails transfers
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  const size_t kObjects = 64, kSize = 64 * 1024;
  MappedBuffer src(kObjects * kSize), dst(kObjects * kSize);
  ASSERT_TRUE(client->RegisterBuffer(src.data(), src.size()).ok());
  ASSERT_TRUE(client->RegisterBuffer(dst.data(), dst.size()).ok());
  std::vector<std::string> keys;
  std::vector<Slice> in, out;
  for (size_t i = 0; i < kObjects; ++i) {
    keys.push_back((i % 2 ? "two_" : "one_") + std::to_string(i));
    FillFor(keys.back(), src.data() + i * kSize, kSize);
    in.push_back({src.data() + i * kSize, kSize});
    out.push_back({dst.data() + i * kSize, kSize});
  }
  std::vector<std::string> one, two;
  std::vector<Slice> one_in, two_in;
  for (size_t i = 0; i < kObjects; ++i) {
    (i % 2 ? two : one).push_back(keys[i]);
    (i % 2 ? two_in : one_in).push_back(in[i]);
  }
  ReplicateConfig twice;
  twice.replica_num = 2;
  for (const absl::Status& s : client->BatchPutFrom(one, one_in)) ASSERT_TRUE(s.ok()) << s;
  for (const absl::Status& s : client->BatchPutFrom(two, two_in, twice)) ASSERT_TRUE(s.ok()) << s;

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, good{0}, failed_two{0};
  std::atomic<bool> saw_not_found{false};
  std::thread reader([&] {
    while (!stop.load()) {
      for (size_t i = 0; i < kObjects; ++i) std::memset(out[i].data, 0, kSize);
      std::vector<absl::StatusOr<uint64_t>> got = client->BatchGetInto(keys, out);
      for (size_t i = 0; i < kObjects; ++i) {
        if (got[i].ok()) {
          if (*got[i] != kSize || std::memcmp(in[i].data, out[i].data, kSize) != 0) ++wrong;
          ++good;
        } else if (i % 2) {
          ++failed_two;
        } else if (ErrorCodeOf(got[i].status()) == ErrorCode::OBJECT_NOT_FOUND) {
          saw_not_found = true;
        }
      }
    }
  });
  while (good.load() < 4 * kObjects) absl::SleepFor(absl::Milliseconds(5));
  kill(stores_[0]->pid(), SIGKILL);
  EXPECT_TRUE(stores_[0]->Wait(absl::Seconds(10)).has_value());
  stores_[0].reset();
  // The master notices the dead store (client_live_ttl_sec 2) and drops its replicas.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!saw_not_found.load() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  stop = true;
  reader.join();
  EXPECT_EQ(wrong.load(), 0u);
  // Each of these has a replica on the surviving store: a failed read moved on to it.
  EXPECT_EQ(failed_two.load(), 0u);
  EXPECT_TRUE(saw_not_found.load()) << "objects on the killed store never became OBJECT_NOT_FOUND";
  // Objects with a replica on the surviving store are all still readable, byte for byte.
  std::vector<Slice> two_out;
  for (size_t i = 1; i < kObjects; i += 2) two_out.push_back(out[i]);
  std::vector<absl::StatusOr<uint64_t>> got = client->BatchGetInto(two, two_out);
  for (size_t k = 0; k < two.size(); ++k) {
    ASSERT_TRUE(got[k].ok()) << two[k] << ": " << got[k].status();
    EXPECT_EQ(std::memcmp(two_out[k].data, in[2 * k + 1].data, kSize), 0) << two[k];
  }
}

TEST_F(StoreClusterTest, StoresAndClientsRemountAfterAMasterRestart) {
  auto client = MakeClient(/*shm=*/true);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  ASSERT_TRUE(client->Put("before", "v").ok());
  const std::string port = master_address_.substr(master_address_.rfind(':') + 1);
  master_->Signal(SIGKILL);
  ASSERT_TRUE(master_->Wait(absl::Seconds(10)).has_value());
  StartMaster(port);
  EXPECT_TRUE(WaitForSegments(*client, 2)) << "the stores did not mount again";
  EXPECT_FALSE(*client->Exists("before"));  // a restarted master starts empty
  ASSERT_TRUE(client->Put("after", std::string(100000, 'a')).ok());
  EXPECT_EQ(*client->Get("after"), std::string(100000, 'a'));
}

TEST_F(StoreClusterTest, StoppingTheMetadataServiceStopsOnlyNewPeers) {
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  std::vector<std::string> keys;
  std::vector<std::string_view> values;
  const std::string value(200000, 'm');
  for (int i = 0; i < 16; ++i) {
    keys.push_back("meta_" + std::to_string(i));
    values.push_back(value);
  }
  for (const absl::Status& s : client->BatchPut(keys, values)) ASSERT_TRUE(s.ok()) << s;
  metadata_->Signal(SIGTERM);
  EXPECT_EQ(metadata_->Wait(absl::Seconds(20)), 0);
  metadata_.reset();
  // Peers this client knows keep serving it.
  for (int round = 0; round < 5; ++round) {
    for (auto& got : client->BatchGet(keys)) {
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, value);
    }
  }
  // A new peer cannot publish its segment: a clear error, at once.
  ClientConfig config;
  config.local_hostname = "127.0.0.1";
  config.metadata_server = metadata_url_;
  config.master_server_address = master_address_;
  config.global_segment_size = 0;
  absl::StatusOr<std::unique_ptr<Client>> late = Client::Create(config);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(ErrorCodeOf(late.status()), ErrorCode::RPC_FAIL) << late.status();
  EXPECT_NE(late.status().message().find("metadata"), std::string_view::npos) << late.status();
}

TEST_F(StoreClusterTest, EightThreadsOfMixedBatchesForThirtySeconds) {
  auto client = MakeClient(/*shm=*/false, 64 * kMiB);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  constexpr int kThreads = 8;
  constexpr uint64_t kSlot = 256 * 1024;  // largest value
  constexpr int kBatch = 8;
  MappedBuffer pool(kThreads * 2 * kBatch * kSlot);
  ASSERT_TRUE(client->RegisterBuffer(pool.data(), pool.size()).ok());
  std::atomic<uint64_t> wrong{0}, ops{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      char* src = pool.data() + t * 2 * kBatch * kSlot;
      char* dst = src + kBatch * kSlot;
      auto key_of = [&](int n) { return absl::StrCat("c", t, "_", n); };
      auto size_of = [&](const std::string& key) -> uint64_t {
        return 1 + std::hash<std::string>()(key) % kSlot;
      };
      while (!stop.load()) {
        std::vector<std::string> keys;
        for (int i = 0; i < kBatch; ++i) keys.push_back(key_of(random() % 64));
        std::vector<Slice> in, out;
        for (int i = 0; i < kBatch; ++i) {
          in.push_back({src + i * kSlot, size_of(keys[i])});
          out.push_back({dst + i * kSlot, kSlot});
        }
        switch (random() % 4) {
          case 0:
            for (int i = 0; i < kBatch; ++i) FillFor(keys[i], src + i * kSlot, in[i].size);
            (void)client->BatchPutFrom(keys, in);
            break;
          case 1: {
            std::vector<absl::StatusOr<uint64_t>> got = client->BatchGetInto(keys, out);
            for (int i = 0; i < kBatch; ++i) {
              if (!got[i].ok()) continue;
              std::string expect(size_of(keys[i]), '\0');
              FillFor(keys[i], expect.data(), expect.size());
              if (*got[i] != expect.size() ||
                  std::memcmp(expect.data(), out[i].data, expect.size()) != 0) {
                ++wrong;
              }
            }
            break;
          }
          case 2:
            (void)client->BatchExists(keys);
            break;
          default:
            (void)client->BatchRemove(keys, /*force=*/random() % 2 == 0);
        }
        ++ops;
      }
    });
  }
  absl::SleepFor(absl::Seconds(30));
  stop = true;
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_GT(ops.load(), 100u);
  // The master's used bytes are exactly the space of the objects that exist.
  std::vector<std::string> all;
  for (int t = 0; t < kThreads; ++t) {
    for (int n = 0; n < 64; ++n) all.push_back(absl::StrCat("c", t, "_", n));
  }
  uint64_t expected = 0;
  for (const absl::StatusOr<uint64_t>& size : client->BatchGetSize(all)) {
    if (size.ok()) expected += (*size + 63) / 64 * 64;
  }
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client->ListSegments();
  ASSERT_TRUE(segments.ok()) << segments.status();
  uint64_t used = 0;
  for (const client::SegmentInfo& s : *segments) used += s.used;
  EXPECT_EQ(used, expected);
  std::printf("%lu batch operations by %d threads in 30 s\n",
              static_cast<unsigned long>(ops.load()), kThreads);
}

}  // namespace
}  // namespace mooncake
