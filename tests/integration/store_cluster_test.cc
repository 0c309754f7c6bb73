// A real cluster: `mooncake metadata`, `mooncake master` and two `mooncake store` processes on
// 127.0.0.1, driven by a client program (store_client_check) and by this test's own client; then
// faults: a store killed while a client reads, a master restart, the metadata service stopped;
// and 8 client threads hammering two stores for 30 seconds.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "common/metrics.h"
#include "http/client.h"
#include "integration/cluster_fixture.h"
#include "support/raw_socket.h"

namespace mooncake {
namespace {

const std::vector<std::string> kNoAslr = {"/usr/bin/setarch", "-R"};

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

// A store's /metrics body (empty if it does not answer).
std::string StoreMetrics(int port) {
  http::HttpClient http("127.0.0.1", port);
  absl::StatusOr<http::HttpResult> metrics = http.Get("/metrics");
  return metrics.ok() ? metrics->body : "";
}

// This process's value of `series`, 0 if absent.
double Local(const std::string& series) {
  return SeriesValue(MetricsRegistry::Default().RenderPrometheus(), series).value_or(0);
}

TEST_F(StoreClusterTest, MetricsCountWhatStoresAndClientsDid) {
  const std::string segment = store_segments_[0];
  const std::string used = "mooncake_client_segment_used_bytes{segment=\"" + segment + "\"}";
  const std::string objects = "mooncake_client_segment_objects{segment=\"" + segment + "\"}";
  // Every series is there at 0 before anything happened (rate() and absent() need them).
  const std::string fresh = StoreMetrics(store_http_[0]);
  for (const std::string& series :
       {std::string("mooncake_transfer_served_requests_total{op=\"read\"}"),
        std::string("mooncake_transfer_served_bytes_total{op=\"write\"}"),
        std::string("mooncake_transfer_refused_requests_total{reason=\"malformed\"}"),
        std::string("mooncake_transfer_connections"),
        std::string("mooncake_client_requests_total{op=\"get\"}"),
        std::string("mooncake_client_key_errors_total{op=\"put\"}"),
        std::string("mooncake_client_request_duration_seconds_count{op=\"exist\"}"), used,
        objects}) {
    EXPECT_EQ(SeriesValue(fresh, series), 0.0) << series << " in\n" << fresh;
  }
  EXPECT_EQ(SeriesValue(fresh, "mooncake_client_segment_bytes{segment=\"" + segment + "\"}"),
            256.0 * kMiB);
  EXPECT_GT(SeriesValue(fresh, "process_resident_memory_bytes").value_or(0), 0);
  EXPECT_EQ(SeriesValue(fresh, "mooncake_master_clients"), std::nullopt);  // the master's alone

  auto client = MakeClient(/*shm=*/false);  // TCP: the store's data server moves the bytes
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  constexpr size_t kObjects = 8, kSize = 64 * 1024;
  std::vector<std::string> names;
  for (size_t i = 0; i < kObjects; ++i) names.push_back("metered_" + std::to_string(i));
  KeyedValues values(names, kSize);
  ASSERT_TRUE(values.RegisterWith(*client));
  const std::vector<std::string>& keys = values.keys;
  const std::vector<Slice>& in = values.in;
  const std::vector<Slice>& out = values.out;
  ReplicateConfig there;
  there.preferred_segment = segment;
  const double puts = Local("mooncake_client_requests_total{op=\"put\"}");
  const double put_bytes = Local("mooncake_client_bytes_total{op=\"put\"}");
  const double get_keys = Local("mooncake_client_keys_total{op=\"get\"}");
  const double get_misses = Local("mooncake_client_key_misses_total{op=\"get\"}");
  const double get_bytes = Local("mooncake_client_bytes_total{op=\"get\"}");
  const double exist_misses = Local("mooncake_client_key_misses_total{op=\"exist\"}");
  const double gets_timed = Local("mooncake_client_request_duration_seconds_count{op=\"get\"}");
  for (const absl::Status& s : client->BatchPutFrom(keys, in, there)) ASSERT_TRUE(s.ok()) << s;
  std::vector<std::string> asked = keys;
  asked.push_back("metered_absent");
  std::vector<Slice> into = out;
  into.push_back(out[0]);
  std::vector<absl::StatusOr<uint64_t>> got = client->BatchGetInto(asked, into);
  for (size_t i = 0; i < kObjects; ++i) ASSERT_TRUE(got[i].ok()) << got[i].status();
  EXPECT_EQ(ErrorCodeOf(got[kObjects].status()), ErrorCode::OBJECT_NOT_FOUND);
  std::vector<absl::StatusOr<bool>> exist = client->BatchExists({keys[0], "metered_absent"});

  // The client's side, in this process.
  EXPECT_EQ(Local("mooncake_client_requests_total{op=\"put\"}") - puts, 1);
  EXPECT_EQ(Local("mooncake_client_bytes_total{op=\"put\"}") - put_bytes, kObjects * kSize);
  EXPECT_EQ(Local("mooncake_client_keys_total{op=\"get\"}") - get_keys, kObjects + 1);
  EXPECT_EQ(Local("mooncake_client_key_misses_total{op=\"get\"}") - get_misses, 1);
  EXPECT_EQ(Local("mooncake_client_bytes_total{op=\"get\"}") - get_bytes, kObjects * kSize);
  EXPECT_EQ(Local("mooncake_client_key_misses_total{op=\"exist\"}") - exist_misses, 1);
  EXPECT_EQ(Local("mooncake_client_request_duration_seconds_count{op=\"get\"}") - gets_timed, 1);

  // The store's side: its data server served the bytes both ways, and its segment holds them
  // (once the master's change to its index has reached it).
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  std::string body = StoreMetrics(store_http_[0]);
  while ((SeriesValue(body, objects) != kObjects || SeriesValue(body, used) != kObjects * kSize) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    body = StoreMetrics(store_http_[0]);
  }
  EXPECT_EQ(SeriesValue(body, objects), kObjects) << body;
  EXPECT_EQ(SeriesValue(body, used), kObjects * kSize);
  EXPECT_EQ(SeriesValue(body, "mooncake_transfer_served_bytes_total{op=\"write\"}"),
            kObjects * kSize);
  EXPECT_EQ(SeriesValue(body, "mooncake_transfer_served_bytes_total{op=\"read\"}"),
            kObjects * kSize);
  EXPECT_GE(SeriesValue(body, "mooncake_transfer_served_requests_total{op=\"read\"}").value_or(0),
            kObjects);
  EXPECT_GE(
      SeriesValue(body, "mooncake_transfer_served_duration_seconds_count{op=\"read\"}").value_or(0),
      kObjects);
  EXPECT_GE(SeriesValue(body, "mooncake_transfer_connections").value_or(0), 1);
  // The store's own client made no call.
  EXPECT_EQ(SeriesValue(body, "mooncake_client_requests_total{op=\"put\"}"), 0.0);

  // A request that is not the protocol is refused, counted, and the store goes on serving.
  {
    test::RawSocket raw(std::stoi(segment.substr(segment.find(':') + 1)));
    ASSERT_TRUE(raw.connected());
    ASSERT_TRUE(raw.Send(std::string(32, '\xff')));
    EXPECT_TRUE(raw.WaitForClose(absl::Seconds(10)));
  }
  body = StoreMetrics(store_http_[0]);
  EXPECT_EQ(SeriesValue(body, "mooncake_transfer_refused_requests_total{reason=\"malformed\"}"),
            1.0);
  got = client->BatchGetInto(keys, out);
  for (size_t i = 0; i < kObjects; ++i) ASSERT_TRUE(got[i].ok()) << got[i].status();

  // Removed: the segment is empty again.
  for (const absl::Status& s : client->BatchRemove(keys)) ASSERT_TRUE(s.ok()) << s;
  body = StoreMetrics(store_http_[0]);
  while ((SeriesValue(body, used) != 0.0 || SeriesValue(body, objects) != 0.0) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    body = StoreMetrics(store_http_[0]);
  }
  EXPECT_EQ(SeriesValue(body, used), 0.0);
  EXPECT_EQ(SeriesValue(body, objects), 0.0);

  // The master counts its clients (two stores and this one) and has its eviction counters from
  // the start.
  http::HttpClient admin("127.0.0.1", master_admin_port_);
  absl::StatusOr<http::HttpResult> master = admin.Get("/metrics");
  ASSERT_TRUE(master.ok()) << master.status();
  EXPECT_EQ(SeriesValue(master->body, "mooncake_master_clients"), 3.0) << master->body;
  EXPECT_EQ(SeriesValue(master->body, "mooncake_master_evicted_objects_total"), 0.0);
}

TEST_F(StoreClusterTest, AStoreKilledWhileAClientReadsNeverYieldsWrongBytes) {
  auto client = MakeClient(/*shm=*/false);  // TCP, so a dead store fails transfers
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  const size_t kObjects = 64, kSize = 64 * 1024;
  std::vector<std::string> names;
  for (size_t i = 0; i < kObjects; ++i)
    names.push_back((i % 2 ? "two_" : "one_") + std::to_string(i));
  KeyedValues values(names, kSize);
  ASSERT_TRUE(values.RegisterWith(*client));
  const std::vector<std::string>& keys = values.keys;
  const std::vector<Slice>& in = values.in;
  const std::vector<Slice>& out = values.out;
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

// A master's counter (0 if absent).
uint64_t MasterCounter(int admin_port, const std::string& name) {
  http::HttpClient http("127.0.0.1", admin_port);
  absl::StatusOr<http::HttpResult> metrics = http.Get("/metrics");
  if (!metrics.ok()) return 0;
  std::smatch m;
  if (!std::regex_search(metrics->body, m, std::regex("\\n" + name + " ([0-9]+)"))) return 0;
  return std::stoull(m[1]);
}

TEST_F(StoreClusterTest, AMasterRestartLosesNoObject) {
  auto client = MakeClient(/*shm=*/true);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  // Objects on either store, some with a replica on each, the last put just before the kill.
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) {
    ReplicateConfig config;
    config.replica_num = i % 2 + 1;
    keys.push_back("before_" + std::to_string(i));
    ASSERT_TRUE(client->Put(keys.back(), std::string(1000 + i, 'a' + i % 26), config).ok());
  }
  ASSERT_TRUE(client->Remove("before_7").ok());
  const std::string port = master_address_.substr(master_address_.rfind(':') + 1);
  master_->Signal(SIGKILL);
  ASSERT_TRUE(master_->Wait(absl::Seconds(10)).has_value());
  StartMaster(port);
  EXPECT_TRUE(WaitForSegments(*client, 2)) << "the stores did not mount again";
  // Both stores reported what they hold when they mounted: every object reads back intact.
  for (int i = 0; i < 40; ++i) {
    absl::StatusOr<std::string> got = client->Get(keys[i]);
    if (i == 7) {
      EXPECT_EQ(ErrorCodeOf(got.status()), ErrorCode::OBJECT_NOT_FOUND);
      continue;
    }
    ASSERT_TRUE(got.ok()) << keys[i] << ": " << got.status();
    EXPECT_EQ(*got, std::string(1000 + i, 'a' + i % 26)) << keys[i];
  }
  ASSERT_TRUE(client->Put("after", std::string(100000, 'a')).ok());
  EXPECT_EQ(*client->Get("after"), std::string(100000, 'a'));
  EXPECT_EQ(MasterCounter(master_admin_port_, "mooncake_master_restored_replicas_total"), 58u);
}

TEST_F(StoreClusterTest, StoresHeartbeatOftenEnoughForTheMastersTtl) {
  // The stores heartbeat every 2 s by default; this master declares a client dead after 1 s of
  // silence (2 s in the sanitizer builds, whose processes run several times slower). The
  // master's answers say so, and the stores heartbeat four times per TTL.
  StopStores();
  master_->Signal(SIGTERM);
  ASSERT_EQ(master_->Wait(absl::Seconds(20)), 0);
#ifdef MOONCAKE_SANITIZED
  StartMaster("0", "2");
#else
  StartMaster("0", "1");
#endif
  StartStore(0);
  StartStore(1);
  ClientConfig config = ClientConfigFor(/*shm=*/false);
  config.heartbeat_interval = absl::Seconds(2);  // the default, as the stores'
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(WaitForSegments(**client, 2));
  // (A process that spends longer than the TTL between its first call and its mount may be
  // declared dead before it mounts: counted from here on.)
  const uint64_t expired =
      MasterCounter(master_admin_port_, "mooncake_master_clients_expired_total");
  const uint64_t heartbeats = MasterCounter(master_admin_port_, "mooncake_master_heartbeats_total");
  // 24 heartbeats from two stores and a client: 2 s at four per TTL, 8 s at the default.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (MasterCounter(master_admin_port_, "mooncake_master_heartbeats_total") < heartbeats + 24 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GE(MasterCounter(master_admin_port_, "mooncake_master_heartbeats_total"), heartbeats + 24);
  EXPECT_EQ(MasterCounter(master_admin_port_, "mooncake_master_clients_expired_total"), expired);
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = (*client)->ListSegments();
  ASSERT_TRUE(segments.ok()) << segments.status();
  EXPECT_EQ(segments->size(), 2u);
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

// Finding: stores published their descriptor only at start, so after the metadata service
// restarted a new client's setup succeeded and then all its reads and puts failed. Owners now
// publish again when the service has lost their descriptor.
TEST_F(StoreClusterTest, ANewClientWorksAfterTheMetadataServiceRestarts) {
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  ASSERT_TRUE(client->Put("before_restart", std::string(300000, 'b')).ok());
  const std::string port = metadata_url_.substr(
      metadata_url_.rfind(':') + 1, metadata_url_.rfind('/') - metadata_url_.rfind(':') - 1);
  metadata_->Signal(SIGKILL);
  ASSERT_TRUE(metadata_->Wait(absl::Seconds(10)).has_value());
  metadata_ = std::make_unique<Subprocess>(WithToken(std::vector<std::string>{
      MOONCAKE_BINARY, "metadata", "--host", "127.0.0.1", "--port", port}));
  ASSERT_TRUE(metadata_->WaitForLine("listening", absl::Seconds(20)).has_value());
  // A client that starts now knows no descriptor; the stores publish theirs again within their
  // check interval (5 s).
  auto late = MakeClient(/*shm=*/false);
  ASSERT_TRUE(late);
  absl::StatusOr<std::string> got = MakeError(ErrorCode::OBJECT_NOT_FOUND, "not tried");
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    got = late->Get("before_restart");
    if (got.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, std::string(300000, 'b'));
  // The other store may publish later (each checks on its own clock): puts go to both once it has.
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = late->ListSegments();
  ASSERT_TRUE(segments.ok()) << segments.status();
  http::HttpClient metadata("127.0.0.1", std::stoi(port));
  for (const client::SegmentInfo& segment : *segments) {
    const std::string path =
        "/metadata?key=" + http::EncodeQueryValue("mooncake/segment/" + segment.name);
    absl::StatusOr<http::HttpResult> descriptor = metadata.Get(path);
    while (!(descriptor.ok() && descriptor->status == 200) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      descriptor = metadata.Get(path);
    }
    ASSERT_TRUE(descriptor.ok() && descriptor->status == 200) << segment.name << " not published";
  }
  std::vector<std::string> keys;
  std::vector<std::string_view> values;
  const std::string value(100000, 'n');
  for (int i = 0; i < 16; ++i) {
    keys.push_back("after_restart_" + std::to_string(i));
    values.push_back(value);
  }
  for (const absl::Status& s : late->BatchPut(keys, values)) EXPECT_TRUE(s.ok()) << s;
  for (const auto& g : late->BatchGet(keys)) {
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(*g, value);
  }
}

// Finding: every object batch_is_exist or a read touched was leased for 10 s, so with readers
// running and memory full, 0 of the 100 newest puts survived (100 of 100 without readers). Here
// two readers probe every old object and read a hot few, as SGLang does, while new objects are put
// into a full store; as many of the newest survive as without readers.
TEST_F(StoreClusterTest, TheNewestPutsSurviveEvictionUnderReadLoad) {
  StopStores();
  StartStore(0, 64 * kMiB);
  auto writer = MakeClient(/*shm=*/true, 64 * kMiB);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(WaitForSegments(*writer, 1));
  const std::string value(512 * 1024, 'v');
  auto put_all = [&](const std::string& prefix, int count) {
    std::vector<std::string> keys;
    for (int i = 0; i < count; ++i) keys.push_back(prefix + std::to_string(i));
    std::vector<std::string> acknowledged;
    for (int i = 0; i < count; i += 10) {
      std::vector<std::string> batch(keys.begin() + i, keys.begin() + std::min(count, i + 10));
      std::vector<std::string_view> values(batch.size(), value);
      std::vector<absl::Status> put = writer->BatchPut(batch, values);
      for (size_t k = 0; k < batch.size(); ++k) {
        if (put[k].ok()) acknowledged.push_back(batch[k]);
      }
    }
    return acknowledged;
  };
  auto survivors = [&](const std::vector<std::string>& keys) {
    size_t alive = 0;
    for (const absl::StatusOr<bool>& e : writer->BatchExists(keys)) alive += e.ok() && *e;
    return alive;
  };
  // Without readers, then with two of them.
  size_t without = 0, with = 0, acknowledged_without = 0;
  for (bool readers : {false, true}) {
    ASSERT_TRUE(writer->RemoveAll().ok());
    const std::vector<std::string> old = put_all("old_", 100);  // 50 MiB of 64
    ASSERT_EQ(old.size(), 100u);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0};
    std::vector<std::thread> threads;
    std::vector<std::unique_ptr<Client>> clients;
    if (readers) {
      for (int r = 0; r < 2; ++r) {
        clients.push_back(MakeClient(/*shm=*/true, 16 * kMiB));
        ASSERT_TRUE(clients.back());
        Client* reader = clients.back().get();
        threads.emplace_back([&, reader] {
          const std::vector<std::string> hot(old.begin(), old.begin() + 10);
          while (!stop.load()) {
            (void)reader->BatchExists(old);
            for (const auto& got : reader->BatchGet(hot)) reads += got.ok();
          }
        });
      }
      while (reads.load() < 100) absl::SleepFor(absl::Milliseconds(5));
    }
    const std::vector<std::string> newest = put_all("new_", 50);  // 25 MiB more: evictions
    stop = true;
    for (std::thread& t : threads) t.join();
    (readers ? with : without) = survivors(newest);
    if (!readers) acknowledged_without = newest.size();
    std::printf("%s readers: %zu of the 50 newest puts survive (%zu acknowledged)\n",
                readers ? "with" : "without", readers ? with : without, newest.size());
  }
  EXPECT_GE(acknowledged_without, 45u);  // a put that eviction could not make room for fails
  EXPECT_EQ(without, acknowledged_without);
  EXPECT_GE(with * 10, without * 8);  // within 20%
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

// Finding: a client that mapped a store's memory kept writing into it after the store was killed
// and a new one came up under the same name, and read other objects' bytes when the new store's
// memory landed at the same address. Both stores run with address-space randomisation off, so the
// new segment is where the old one was; the client keeps its session, and nothing it reads may be
// another object's bytes, and every put it is told succeeded must be readable by a fresh client.
TEST_F(StoreClusterTest, AStoreRestartedUnderItsNameAtTheSameAddressNeverMixesBytes) {
  StopStores();
  const int port = test::PortOutsideEngineRange();
  ASSERT_NE(port, 0);
  StartStore(0, 64 * kMiB, "127.0.0.1:" + std::to_string(port), kNoAslr);
  auto client = MakeClient(/*shm=*/true);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 1));
  absl::StatusOr<std::vector<client::SegmentInfo>> before = client->ListSegments();
  ASSERT_TRUE(before.ok() && before->size() == 1);
  const client::SegmentInfo old_segment = (*before)[0];

  constexpr size_t kObjects = 32, kSize = 64 * 1024;
  MappedBuffer src(2 * kObjects * kSize), dst(2 * kObjects * kSize);
  ASSERT_TRUE(client->RegisterBuffer(src.data(), src.size()).ok());
  ASSERT_TRUE(client->RegisterBuffer(dst.data(), dst.size()).ok());
  auto batch = [&](const std::string& prefix, size_t first) {
    std::vector<std::string> keys;
    std::vector<Slice> in, out;
    for (size_t i = 0; i < kObjects; ++i) {
      keys.push_back(prefix + std::to_string(i));
      char* p = src.data() + (first + i) * kSize;
      FillFor(keys.back(), p, kSize);
      in.push_back({p, kSize});
      out.push_back({dst.data() + (first + i) * kSize, kSize});
    }
    return std::make_tuple(keys, in, out);
  };
  auto [old_keys, old_in, old_out] = batch("old_", 0);
  for (const absl::Status& s : client->BatchPutFrom(old_keys, old_in)) ASSERT_TRUE(s.ok()) << s;
  for (const auto& got : client->BatchGetInto(old_keys, old_out)) ASSERT_TRUE(got.ok());

  kill(stores_[0]->pid(), SIGKILL);
  ASSERT_TRUE(stores_[0]->Wait(absl::Seconds(10)).has_value());
  StartStore(0, 64 * kMiB, old_segment.name, kNoAslr);
  // Wait for the new process to have taken the name over at the master.
  std::optional<client::SegmentInfo> new_segment;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!new_segment && absl::Now() < deadline) {
    absl::StatusOr<std::vector<client::SegmentInfo>> now = client->ListSegments();
    if (now.ok() && now->size() == 1 && (*now)[0].client_id != old_segment.client_id) {
      new_segment = (*now)[0];
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(new_segment) << "the restarted store did not mount its segment";
  EXPECT_EQ(new_segment->name, old_segment.name);
  std::printf("segment base before %#lx, after %#lx (%s)\n",
              static_cast<unsigned long>(old_segment.base),
              static_cast<unsigned long>(new_segment->base),
              old_segment.base == new_segment->base ? "the same address" : "moved");

  auto [new_keys, new_in, new_out] = batch("new_", kObjects);
  std::vector<absl::Status> put = client->BatchPutFrom(new_keys, new_in);
  size_t acknowledged = 0;
  for (const absl::Status& s : put) acknowledged += s.ok();
  // Every byte this client reads is its object's own: old objects are gone (their store died),
  // new ones are whole.
  for (auto* keys_out : {&old_out, &new_out}) {
    for (Slice& slice : *keys_out) std::memset(slice.data, 0, kSize);
  }
  std::vector<absl::StatusOr<uint64_t>> old_got = client->BatchGetInto(old_keys, old_out);
  std::vector<absl::StatusOr<uint64_t>> new_got = client->BatchGetInto(new_keys, new_out);
  for (size_t i = 0; i < kObjects; ++i) {
    EXPECT_FALSE(old_got[i].ok()) << old_keys[i] << " outlived its store";
    if (new_got[i].ok()) {
      EXPECT_EQ(std::memcmp(new_in[i].data, new_out[i].data, kSize), 0) << new_keys[i];
    }
    EXPECT_EQ(new_got[i].ok(), put[i].ok()) << new_keys[i];
  }
  // A client that never saw the old store reads what was acknowledged, byte for byte.
  auto fresh = MakeClient(/*shm=*/false);
  ASSERT_TRUE(fresh);
  MappedBuffer check(kObjects * kSize);
  ASSERT_TRUE(fresh->RegisterBuffer(check.data(), check.size()).ok());
  std::vector<Slice> check_out;
  for (size_t i = 0; i < kObjects; ++i) check_out.push_back({check.data() + i * kSize, kSize});
  std::vector<absl::StatusOr<uint64_t>> checked = fresh->BatchGetInto(new_keys, check_out);
  for (size_t i = 0; i < kObjects; ++i) {
    if (!put[i].ok()) continue;
    ASSERT_TRUE(checked[i].ok()) << new_keys[i] << ": " << checked[i].status();
    EXPECT_EQ(std::memcmp(new_in[i].data, check_out[i].data, kSize), 0) << new_keys[i];
  }
  // The restarted store serves this client again: its puts are not refused for good.
  EXPECT_EQ(acknowledged, kObjects);
}

// Finding: after kill -9 of one of two stores, and before the master's liveness timeout, puts
// the master placed on the dead store were acknowledged (through shared memory, into memory no
// process served) and lost. An acknowledged put must be readable.
TEST_F(StoreClusterTest, PutsPlacedOnAKilledStoreAreRefusedNeverLost) {
  auto client = MakeClient(/*shm=*/true);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 2));
  ASSERT_TRUE(client->Put("warm", std::string(4096, 'w')).ok());  // both stores mapped
  constexpr size_t kObjects = 64, kSize = 16 * 1024;
  std::vector<std::string> names;
  for (size_t i = 0; i < kObjects; ++i) names.push_back("dead_" + std::to_string(i));
  KeyedValues values(names, kSize);
  ASSERT_TRUE(values.RegisterWith(*client));
  const std::vector<std::string>& keys = values.keys;
  const std::vector<Slice>& in = values.in;
  kill(stores_[1]->pid(), SIGKILL);
  ASSERT_TRUE(stores_[1]->Wait(absl::Seconds(10)).has_value());
  stores_[1].reset();
  // Well inside the master's liveness TTL (2 s): it still places replicas on the dead store.
  std::vector<absl::Status> put;
  for (size_t i = 0; i < kObjects; i += 8) {
    std::vector<std::string> k(keys.begin() + i, keys.begin() + i + 8);
    std::vector<Slice> v(in.begin() + i, in.begin() + i + 8);
    for (absl::Status& s : client->BatchPutFrom(k, v)) put.push_back(std::move(s));
  }
  size_t acknowledged = 0;
  for (const absl::Status& s : put) acknowledged += s.ok();
  ASSERT_TRUE(WaitForSegments(*client, 1)) << "the master never noticed the dead store";
  auto fresh = MakeClient(/*shm=*/false);
  ASSERT_TRUE(fresh);
  std::vector<absl::StatusOr<std::string>> got = fresh->BatchGet(keys);
  size_t readable = 0;
  for (size_t i = 0; i < kObjects; ++i) {
    if (!put[i].ok()) continue;
    ASSERT_TRUE(got[i].ok()) << keys[i] << " was acknowledged and lost: " << got[i].status();
    std::string expect(kSize, '\0');
    FillFor(keys[i], expect.data(), kSize);
    EXPECT_EQ(*got[i], expect) << keys[i];
    ++readable;
  }
  EXPECT_EQ(readable, acknowledged);
  std::printf("%zu of %zu puts acknowledged while one store was dead; all readable\n", acknowledged,
              kObjects);
}

}  // namespace
}  // namespace mooncake
