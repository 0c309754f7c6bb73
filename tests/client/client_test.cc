// The client library against an in-process master: every operation, its error codes, and the data
// byte for byte. (Real processes are exercised by tests/integration/store_cluster_test.cc.)
#include "client/client.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/error_code.h"
#include "gtest/gtest.h"
#include "master/master_server.h"
#include "support/memory.h"
#include "support/soft_verbs.h"

namespace mooncake::client {
namespace {

constexpr uint64_t kMiB = 1u << 20;

using test::MappedBuffer;

void Fill(char* p, size_t n, uint32_t seed) { test::FillRandom(p, n, seed); }

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  Fill(s.data(), n, seed);
  return s;
}

// Bytes used in segment `name`, as the master reports it.
uint64_t UsedOf(Client& client, const std::string& name) {
  absl::StatusOr<std::vector<SegmentInfo>> segments = client.ListSegments();
  EXPECT_TRUE(segments.ok()) << segments.status();
  if (!segments.ok()) return 0;
  for (const SegmentInfo& s : *segments) {
    if (s.name == name) return s.used;
  }
  ADD_FAILURE() << "no segment " << name;
  return 0;
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { StartMaster(0); }

  void StartMaster(int port) {
    master::MasterServerOptions options;
    options.rpc_address = "127.0.0.1";
    options.rpc_port = port;
    options.enable_metric_reporting = false;
    options.config.default_kv_lease_ttl = lease_;
    master_ = std::make_unique<master::MasterServer>(options);
    ASSERT_TRUE(master_->Start().ok());
    master_port_ = master_->rpc_port();
  }

  ClientConfig Config(uint64_t segment, uint64_t local_buffer) {
    ClientConfig config;
    config.local_hostname = "127.0.0.1";
    config.master_server_address = "127.0.0.1:" + std::to_string(master_port_);
    config.global_segment_size = segment;
    config.local_buffer_size = local_buffer;
    config.listen_address = "127.0.0.1";
    config.heartbeat_interval = heartbeat_;
    return config;
  }

  std::unique_ptr<Client> Make(uint64_t segment, uint64_t local_buffer, bool shm = true) {
    ClientConfig config = Config(segment, local_buffer);
    config.enable_shm = shm;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  absl::Duration lease_ = absl::Seconds(10);
  absl::Duration heartbeat_ = absl::Milliseconds(50);  // of the clients made next
  std::unique_ptr<master::MasterServer> master_;
  int master_port_ = 0;
};

TEST_F(ClientTest, CopyingPutAndGetRoundTrip) {
  auto store = Make(64 * kMiB, 0);
  auto client = Make(0, 16 * kMiB);
  for (size_t size : {size_t{1}, size_t{63}, size_t{4096}, size_t{100000}, size_t{3 * kMiB}}) {
    const std::string key = "k" + std::to_string(size);
    const std::string value = Pattern(size, static_cast<uint32_t>(size));
    ASSERT_TRUE(client->Put(key, value).ok());
    absl::StatusOr<std::string> got = client->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, value) << size;
    EXPECT_EQ(*client->GetSize(key), size);
    EXPECT_TRUE(*client->Exists(key));
  }
}

TEST_F(ClientTest, ZeroCopyBatchesAtUnalignedAddressesOverTwoStores) {
  auto store_a = Make(64 * kMiB, 0, /*shm=*/false);
  auto store_b = Make(64 * kMiB, 0, /*shm=*/false);
  auto client = Make(0, 0, /*shm=*/false);
  MappedBuffer src(48 * kMiB), dst(48 * kMiB);
  ASSERT_TRUE(client->RegisterBuffer(src.data(), src.size()).ok());
  ASSERT_TRUE(client->RegisterBuffer(dst.data(), dst.size()).ok());
  std::mt19937 random(7);
  std::vector<std::string> keys;
  std::vector<Slice> in, out;
  size_t offset = 3;
  while (keys.size() < 40) {
    const size_t size = 1 + random() % (random() % 4 == 0 ? 4 * kMiB : 8192);
    if (offset + size + 64 > src.size()) break;
    keys.push_back("z" + std::to_string(keys.size()));
    Fill(src.data() + offset, size, static_cast<uint32_t>(keys.size()));
    in.push_back({src.data() + offset, size});
    out.push_back({dst.data() + offset + 1, size});
    offset += size + 1 + random() % 61;
  }
  for (const absl::Status& s : client->BatchPutFrom(keys, in)) ASSERT_TRUE(s.ok()) << s;
  std::vector<absl::StatusOr<uint64_t>> got = client->BatchGetInto(keys, out);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    ASSERT_EQ(*got[i], in[i].size);
    ASSERT_EQ(std::memcmp(in[i].data, out[i].data, in[i].size), 0) << keys[i];
  }
  // Both stores hold some of it: placement spreads objects.
  auto segments = client->ListSegments();
  ASSERT_TRUE(segments.ok());
  ASSERT_EQ(segments->size(), 2u);
  for (const SegmentInfo& s : *segments) EXPECT_GT(s.used, 0u) << s.name;
}

TEST_F(ClientTest, PartsAreConcatenatedAndScattered) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  MappedBuffer pool(1 * kMiB);
  ASSERT_TRUE(client->RegisterBuffer(pool.data(), pool.size()).ok());
  Fill(pool.data(), 3000, 1);
  std::vector<std::vector<Slice>> parts = {{{pool.data(), 1000}, {pool.data() + 1000, 2000}}};
  std::vector<std::string> keys = {"parts"};
  ASSERT_TRUE(client->BatchPutParts(keys, parts)[0].ok());
  std::vector<std::vector<Slice>> back = {{{pool.data() + 4000, 10}, {pool.data() + 8000, 2990}}};
  auto got = client->BatchGetIntoParts(keys, back);
  ASSERT_TRUE(got[0].ok()) << got[0].status();
  EXPECT_EQ(*got[0], 3000u);
  EXPECT_EQ(std::memcmp(pool.data(), pool.data() + 4000, 10), 0);
  EXPECT_EQ(std::memcmp(pool.data() + 10, pool.data() + 8000, 2990), 0);

  std::vector<std::string_view> pieces = {"ab", "", "cde"};
  ASSERT_TRUE(client->PutParts("joined", pieces).ok());
  EXPECT_EQ(*client->Get("joined"), "abcde");
}

TEST_F(ClientTest, ExistingKeyIsSuccessAndKeepsItsValue) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  ASSERT_TRUE(client->Put("same", "first").ok());
  EXPECT_TRUE(client->Put("same", "second!").ok());
  EXPECT_EQ(*client->Get("same"), "first");
  std::vector<std::string> keys = {"same", "other"};
  std::vector<std::string_view> values = {"x", "y"};
  for (const absl::Status& s : client->BatchPut(keys, values)) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(*client->Get("same"), "first");
  EXPECT_EQ(*client->Get("other"), "y");
}

TEST_F(ClientTest, UpsertReplacesTheValue) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  ASSERT_TRUE(client->Put("up", "first").ok());
  ASSERT_TRUE(client->Upsert("up", "the second value").ok());
  EXPECT_EQ(*client->Get("up"), "the second value");
  ASSERT_TRUE(client->Upsert("new", "inserted").ok());  // absent: inserted
  EXPECT_EQ(*client->Get("new"), "inserted");
  MappedBuffer pool(1 * kMiB);
  ASSERT_TRUE(client->RegisterBuffer(pool.data(), pool.size()).ok());
  Fill(pool.data(), 5000, 3);
  std::vector<std::string> keys = {"up"};
  std::vector<Slice> values = {{pool.data(), 5000}};
  ASSERT_TRUE(client->BatchUpsertFrom(keys, values)[0].ok());
  EXPECT_EQ(*client->Get("up"), std::string(pool.data(), 5000));
  // Space of replaced values is given back once no lease holds it (ours lapse in 10 s, so the
  // replaced values are still counted now: 5 + 16 bytes rounded, plus the live ones).
  EXPECT_GT(UsedOf(*client, store->segment_name()), 5000u);
}

TEST_F(ClientTest, ErrorsCarryTheirCodes) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  EXPECT_EQ(ErrorCodeOf(client->Get("absent").status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(client->GetSize("absent").status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_FALSE(*client->Exists("absent"));
  EXPECT_EQ(ErrorCodeOf(client->Remove("absent")), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(client->Put("", "v")), ErrorCode::INVALID_KEY);
  EXPECT_EQ(ErrorCodeOf(client->Put(std::string(4097, 'k'), "v")), ErrorCode::INVALID_KEY);
  EXPECT_TRUE(client->Put(std::string(4096, 'k'), "v").ok());
  EXPECT_EQ(ErrorCodeOf(client->Put("empty", "")), ErrorCode::INVALID_PARAMS);
  // No segment has room.
  MappedBuffer pool(32 * kMiB);
  ASSERT_TRUE(client->RegisterBuffer(pool.data(), pool.size()).ok());
  EXPECT_EQ(ErrorCodeOf(client->PutFrom("huge", {pool.data(), 20 * kMiB})),
            ErrorCode::NO_AVAILABLE_HANDLE);

  ASSERT_TRUE(client->Put("small", "0123456789").ok());
  EXPECT_EQ(ErrorCodeOf(client->GetInto("small", {pool.data(), 9}).status()),
            ErrorCode::BUFFER_OVERFLOW);
  char unregistered[64];
  EXPECT_EQ(ErrorCodeOf(client->GetInto("small", {unregistered, sizeof(unregistered)}).status()),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(client->PutFrom("u", {unregistered, sizeof(unregistered)})),
            ErrorCode::INVALID_PARAMS);
  // Straddling the end of a registered buffer is not inside it.
  EXPECT_EQ(ErrorCodeOf(client->PutFrom("u", {pool.data() + pool.size() - 10, 20})),
            ErrorCode::INVALID_PARAMS);
  EXPECT_FALSE(*client->Exists("u"));
  std::vector<std::string> keys = {"a", "b"};
  std::vector<Slice> one = {{pool.data(), 1}};
  for (const absl::Status& s : client->BatchPutFrom(keys, one)) {
    EXPECT_EQ(ErrorCodeOf(s), ErrorCode::INVALID_PARAMS);
  }
}

TEST_F(ClientTest, LeasedObjectsResistRemovalUntilForced) {
  lease_ = absl::Milliseconds(300);
  master_.reset();
  StartMaster(0);
  auto store = Make(16 * kMiB, 0);
  // A reader whose heartbeat, which would carry its releases too, comes only every 2.5 s (a
  // quarter of the master's client TTL), so that its releases go with the calls below.
  heartbeat_ = absl::Hours(1);
  auto client = Make(0, 1 * kMiB);
  // `client` reads; its lease is released with its next call to the master. Until then another
  // client cannot remove the object, except by force.
  ASSERT_TRUE(client->Put("leased", "v").ok());
  ASSERT_TRUE(client->Get("leased").ok());
  EXPECT_EQ(ErrorCodeOf(store->Remove("leased")), ErrorCode::OBJECT_HAS_LEASE);
  (void)client->Exists("anything");  // a later call: once it returns, the release is in
  EXPECT_TRUE(store->Remove("leased").ok());

  ASSERT_TRUE(client->Put("forced", "v").ok());
  ASSERT_TRUE(client->Get("forced").ok());
  EXPECT_EQ(ErrorCodeOf(store->Remove("forced")), ErrorCode::OBJECT_HAS_LEASE);
  EXPECT_TRUE(store->Remove("forced", /*force=*/true).ok());
  EXPECT_FALSE(*store->Exists("forced"));

  // A reader that never calls again: removal succeeds once the lease has run out.
  ASSERT_TRUE(client->Put("later", "v").ok());
  ASSERT_TRUE(client->Get("later").ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::Status removed;
  do {
    removed = store->Remove("later");
  } while (!removed.ok() && absl::Now() < deadline &&
           (absl::SleepFor(absl::Milliseconds(20)), true));
  EXPECT_TRUE(removed.ok()) << removed;
}

TEST_F(ClientTest, AReadFinishedAfterTheLeaseIsDiscarded) {
  lease_ = absl::Milliseconds(1);
  master_.reset();
  StartMaster(0);
  auto store = Make(64 * kMiB, 0, /*shm=*/false);
  auto client = Make(0, 0, /*shm=*/false);
  MappedBuffer pool(64 * kMiB);
  ASSERT_TRUE(client->RegisterBuffer(pool.data(), pool.size()).ok());
  // 32 MiB over TCP takes several milliseconds: longer than the lease.
  ASSERT_TRUE(client->PutFrom("slow", {pool.data(), 32 * kMiB}).ok());
  EXPECT_EQ(ErrorCodeOf(client->GetInto("slow", {pool.data() + 32 * kMiB, 32 * kMiB}).status()),
            ErrorCode::LEASE_EXPIRED);
}

TEST_F(ClientTest, AFailedWriteRevokesThePut) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  // A segment whose owner does not answer (nothing listens on port 1).
  ASSERT_TRUE(master_->service().MountSegment("ghost", "127.0.0.1:1", 1 << 20, 16 * kMiB).ok());
  ReplicateConfig there;
  there.preferred_segment = "127.0.0.1:1";
  absl::Status put = client->Put("lost", std::string(5000, 'l'), there);
  EXPECT_FALSE(put.ok());
  EXPECT_FALSE(*client->Exists("lost"));
  EXPECT_EQ(UsedOf(*client, "127.0.0.1:1"), 0u);  // its space was given back at once
  // Two replicas, one of them unreachable: the whole put is revoked, nothing half-written stays.
  ReplicateConfig both;
  both.replica_num = 2;
  both.preferred_segment = "127.0.0.1:1";
  EXPECT_FALSE(client->Put("half", std::string(5000, 'h'), both).ok());
  EXPECT_FALSE(*client->Exists("half"));
  EXPECT_EQ(UsedOf(*client, store->segment_name()), 0u);
}

TEST_F(ClientTest, RemoveByRegexAndRemoveAllCount) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  for (const char* key : {"p_1_k", "p_1_v", "p_2_k", "q"}) ASSERT_TRUE(client->Put(key, "v").ok());
  EXPECT_EQ(*client->RemoveByRegex("^p_.*_k$"), 2u);
  EXPECT_EQ(ErrorCodeOf(client->RemoveByRegex("(").status()), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(*client->RemoveAll(), 2u);
  EXPECT_FALSE(*client->Exists("q"));
}

// Copying puts need a local buffer (SPEC.md §5: with local_buffer_size 0 they fail and store
// nothing); without RDMA they write each value from where it is, so a value may be larger than
// the buffer. Copying gets read into the value's memory and need none.
TEST_F(ClientTest, CopyingPutsNeedALocalBufferButNotItsSize) {
  for (bool shm : {false, true}) {
    auto store = Make(16 * kMiB, 0, shm);
    auto bare = Make(0, 0, shm);
    auto small = Make(0, 1 * kMiB, shm);
    const std::string key = absl::StrCat("k", shm), big = absl::StrCat("big", shm);
    const std::string value = Pattern(3 * kMiB, 7);
    EXPECT_EQ(ErrorCodeOf(bare->Put(key, "v")), ErrorCode::INVALID_PARAMS);
    EXPECT_FALSE(*bare->Exists(key));
    ASSERT_TRUE(small->Put(big, value).ok());  // three times its local buffer
    EXPECT_TRUE(*bare->Get(big) == value);
    // A batch of two values, one inside the other's bytes: each stored as given.
    std::vector<std::string> keys = {key + "a", key + "b"};
    std::vector<std::string_view> values = {value, std::string_view(value).substr(5, 1000)};
    for (const absl::Status& s : small->BatchPut(keys, values)) ASSERT_TRUE(s.ok()) << s;
    EXPECT_TRUE(*bare->Get(keys[0]) == value);
    EXPECT_TRUE(*bare->Get(keys[1]) == value.substr(5, 1000));
  }
}

// Copying gets read each value straight into the memory the caller hands out for it, over TCP and
// through shared memory, with no local buffer; a key without memory fails alone, a missing key is
// never given any, and every lease is given back.
TEST_F(ClientTest, CopyingGetsReadIntoTheCallersMemory) {
  for (bool shm : {false, true}) {
    auto store = Make(64 * kMiB, 0, shm);
    auto writer = Make(0, 16 * kMiB, shm);
    auto reader = Make(0, 0, shm);
    std::vector<std::string> keys, values;
    for (uint32_t i = 0; i < 12; ++i) {
      keys.push_back(absl::StrCat("own", shm, "_", i));
      values.push_back(Pattern(1 + i * 77777, i));
      ASSERT_TRUE(writer->Put(keys.back(), values.back()).ok());
    }
    keys.insert(keys.begin() + 5, "absent");
    values.insert(values.begin() + 5, "");
    std::vector<std::string> got(keys.size());
    std::vector<int> asked(keys.size(), 0);
    std::vector<absl::Status> read =
        reader->BatchGetWith(keys, [&](size_t i, uint64_t size) -> char* {
          ++asked[i];
          if (i == 3) return nullptr;
          got[i].assign(size, '\0');
          return got[i].data();
        });
    ASSERT_EQ(read.size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i == 5) {
        EXPECT_EQ(ErrorCodeOf(read[i]), ErrorCode::OBJECT_NOT_FOUND);
        EXPECT_EQ(asked[i], 0);
      } else if (i == 3) {
        EXPECT_EQ(ErrorCodeOf(read[i]), ErrorCode::BUFFER_OVERFLOW);
        EXPECT_EQ(asked[i], 1);
      } else {
        ASSERT_TRUE(read[i].ok()) << i << ": " << read[i];
        EXPECT_EQ(asked[i], 1);
        EXPECT_TRUE(got[i] == values[i]) << "key " << i << " shm " << shm;
      }
    }
    // The copying forms agree.
    absl::StatusOr<std::string> one = reader->Get(keys[7]);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_TRUE(*one == values[7]);
    (void)reader->Exists("anything");  // a later call: once it returns, the releases are in
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i == 5) continue;
      EXPECT_TRUE(writer->Remove(keys[i]).ok()) << "leased still: " << i;
    }
  }
}

// A copying get racing upserts and removes of its keys returns a whole value of one version or an
// error, never a mix of two versions or another object's bytes.
TEST_F(ClientTest, CopyingGetsRacingUpsertsAndRemovesReturnWholeValues) {
  // Room for every version written (a replaced value's space waits for its readers' leases).
  auto store = Make(128 * kMiB, 0, /*shm=*/false);
  auto writer = Make(0, 16 * kMiB, /*shm=*/false);
  auto reader = Make(0, 0, /*shm=*/false);
  constexpr size_t kKeys = 8, kSize = 256 << 10;
  // Version v of key k: its first 4 bytes say v, the rest is a pattern of (k, v).
  auto value_of = [](size_t k, uint32_t v) {
    std::string value = Pattern(kSize, static_cast<uint32_t>(k * 100000 + v));
    std::memcpy(value.data(), &v, sizeof(v));
    return value;
  };
  std::vector<std::string> keys;
  for (size_t k = 0; k < kKeys; ++k) {
    keys.push_back(absl::StrCat("race_", k));
    ASSERT_TRUE(writer->Put(keys[k], value_of(k, 0)).ok());
  }
  std::atomic<bool> done{false};
  std::thread writes([&] {
    for (uint32_t v = 1; v <= 40; ++v) {
      for (size_t k = 0; k < kKeys; ++k) {
        if ((v + k) % 7 == 0) {
          (void)writer->Remove(keys[k]);  // refused while a reader holds the lease
        } else {
          absl::Status upserted = writer->Upsert(keys[k], value_of(k, v));
          EXPECT_TRUE(upserted.ok()) << upserted;
        }
      }
    }
    done = true;
  });
  size_t whole = 0;
  while (!done) {
    std::vector<absl::StatusOr<std::string>> got = reader->BatchGet(keys);
    for (size_t k = 0; k < kKeys; ++k) {
      if (!got[k].ok()) {
        // Removed, or removed and being put again.
        const ErrorCode code = ErrorCodeOf(got[k].status());
        EXPECT_TRUE(code == ErrorCode::OBJECT_NOT_FOUND || code == ErrorCode::REPLICA_IS_NOT_READY)
            << got[k].status();
        continue;
      }
      ASSERT_EQ(got[k]->size(), kSize);
      uint32_t v = 0;
      std::memcpy(&v, got[k]->data(), sizeof(v));
      ASSERT_LE(v, 40u);
      ASSERT_TRUE(*got[k] == value_of(k, v)) << "key " << k << " version " << v;
      ++whole;
    }
  }
  writes.join();
  EXPECT_GT(whole, 0u);
}

// Where RDMA is in use the NIC reads only registered memory: copying gets go through the local
// buffer (SoftVerbs stands in for the NICs these machines lack), and without one they fail
// clearly.
TEST_F(ClientTest, CopyingGetsOverRdmaAreStagedThroughTheLocalBuffer) {
  auto fabric = std::make_shared<test::SoftFabric>();
  auto rdma = [&](uint64_t segment, uint64_t local, const std::string& nic) {
    ClientConfig config = Config(segment, local);
    config.protocol = "rdma";
    config.device_name = nic;
    config.enable_shm = false;  // one process: RDMA, not shared memory, is under test
    config.verbs = std::make_shared<test::SoftVerbs>(fabric, std::vector<std::string>{nic});
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  };
  auto store = rdma(64 * kMiB, 0, "soft_s0");
  auto client = rdma(0, 2 * kMiB, "soft_c0");
  auto bare = rdma(0, 0, "soft_b0");
  ASSERT_TRUE(store && client && bare);
  std::vector<std::string> keys, values;
  for (uint32_t i = 0; i < 6; ++i) {
    keys.push_back(absl::StrCat("staged_", i));
    values.push_back(Pattern(700000 + i, i));
    ASSERT_TRUE(client->Put(keys.back(), values.back()).ok());
  }
  const uint64_t executed = fabric->Executed("soft_c0");
  std::vector<absl::StatusOr<std::string>> got = client->BatchGet(keys);  // three rounds of two
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    EXPECT_TRUE(*got[i] == values[i]) << i;
  }
  EXPECT_GT(fabric->Executed("soft_c0"), executed);
  absl::Status refused = bare->Get(keys[0]).status();
  EXPECT_EQ(ErrorCodeOf(refused), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(std::string(refused.message()).find("local_buffer_size"), std::string::npos);
  refused = bare->Put("bare", "v");
  EXPECT_EQ(ErrorCodeOf(refused), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(std::string(refused.message()).find("local_buffer_size"), std::string::npos);
  // Larger than the local buffer: refused before anything is stored.
  EXPECT_EQ(ErrorCodeOf(client->Put("big", std::string(3 * kMiB, 'b'))),
            ErrorCode::BUFFER_OVERFLOW);
  EXPECT_FALSE(*client->Exists("big"));
  (void)client->Exists("anything");  // a later call: once it returns, the releases are in
  (void)bare->Exists("anything");
  for (const std::string& key : keys) EXPECT_TRUE(store->Remove(key).ok()) << key;
}

// Pages of `size` bytes at `base` that are resident (mincore).
size_t ResidentPages(uint64_t base, uint64_t size) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((size + page - 1) / page);
  if (mincore(reinterpret_cast<void*>(base), size, in.data()) != 0) return 0;
  size_t resident = 0;
  for (unsigned char c : in) resident += c & 1;
  return resident;
}

// A store that prefaults its segment has every page resident soon after it starts, while the
// objects written meanwhile keep their bytes; one that does not touches only what it is given.
TEST_F(ClientTest, APrefaultedSegmentIsResidentAndKeepsWhatIsWritten) {
  ClientConfig config = Config(96 * kMiB, 0);
  config.prefault_segment = true;
  absl::StatusOr<std::unique_ptr<Client>> store = Client::Create(config);
  ASSERT_TRUE(store.ok()) << store.status();
  auto lazy = Make(96 * kMiB, 0);
  auto writer = Make(0, 16 * kMiB);
  ReplicateConfig there;
  there.preferred_segment = (*store)->segment_name();
  std::vector<std::string> values;
  for (uint32_t i = 0; i < 16; ++i) {
    values.push_back(Pattern(kMiB + i, i));
    ASSERT_TRUE(writer->Put(absl::StrCat("pf", i), values.back(), there).ok());
  }
  absl::StatusOr<std::vector<SegmentInfo>> segments = writer->ListSegments();
  ASSERT_TRUE(segments.ok()) << segments.status();
  uint64_t store_base = 0, lazy_base = 0;
  for (const SegmentInfo& s : *segments) {
    if (s.name == (*store)->segment_name()) store_base = s.base;
    if (s.name == lazy->segment_name()) lazy_base = s.base;
  }
  ASSERT_NE(store_base, 0u);
  ASSERT_NE(lazy_base, 0u);
  const size_t pages = 96 * kMiB / static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (ResidentPages(store_base, 96 * kMiB) < pages && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(ResidentPages(store_base, 96 * kMiB), pages);
  EXPECT_LT(ResidentPages(lazy_base, 96 * kMiB), pages / 2);
  for (uint32_t i = 0; i < values.size(); ++i) {
    absl::StatusOr<std::string> got = writer->Get(absl::StrCat("pf", i));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(*got == values[i]) << i;
  }
  EXPECT_TRUE((*store)->Close().ok());
}

TEST_F(ClientTest, AClientThatIsItsOwnStore) {
  auto client = Make(16 * kMiB, 1 * kMiB);
  ASSERT_TRUE(client->Put("self", "contained").ok());
  EXPECT_EQ(*client->Get("self"), "contained");
}

TEST_F(ClientTest, ReplicasLandOnDistinctSegments) {
  auto store_a = Make(16 * kMiB, 0);
  auto store_b = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  ReplicateConfig two;
  two.replica_num = 2;
  ASSERT_TRUE(client->Put("twice", std::string(1000, 't'), two).ok());
  EXPECT_GE(UsedOf(*client, store_a->segment_name()), 1000u);
  EXPECT_GE(UsedOf(*client, store_b->segment_name()), 1000u);
  // A preferred segment is honoured.
  ReplicateConfig there;
  there.preferred_segment = store_b->segment_name();
  const uint64_t before = UsedOf(*client, store_b->segment_name());
  ASSERT_TRUE(client->Put("there", std::string(5000, 'x'), there).ok());
  EXPECT_GE(UsedOf(*client, store_b->segment_name()), before + 5000);
}

TEST_F(ClientTest, CloseUnmountsAndIsIdempotent) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  ASSERT_EQ(client->ListSegments()->size(), 1u);
  EXPECT_TRUE(store->Close().ok());
  EXPECT_TRUE(store->Close().ok());
  EXPECT_EQ(client->ListSegments()->size(), 0u);
  EXPECT_EQ(ErrorCodeOf(store->Put("k", "v")), ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  EXPECT_EQ(ErrorCodeOf(client->Put("k", "v")), ErrorCode::NO_AVAILABLE_HANDLE);
}

TEST_F(ClientTest, ObjectsSurviveAMasterRestart) {
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  ASSERT_TRUE(client->Put("kept", "v").ok());
  ASSERT_TRUE(client->Put("removed", "x").ok());
  ASSERT_TRUE(client->Remove("removed").ok());
  ASSERT_TRUE(client->Put("replaced", "old").ok());
  ASSERT_TRUE(client->Upsert("replaced", "new value").ok());
  // The last put's answer came after the store knew of it: nothing put is lost.
  ASSERT_TRUE(client->Put("last", std::string(4096, 'z')).ok());
  const int port = master_port_;
  master_.reset();
  StartMaster(port);
  // The store mounts again with the index of what it holds; the new master rebuilds from it.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    auto segments = client->ListSegments();
    if (segments.ok() && segments->size() == 1) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(client->ListSegments()->size(), 1u);
  EXPECT_EQ(*client->Get("kept"), "v");
  EXPECT_EQ(*client->Get("replaced"), "new value");
  EXPECT_EQ(*client->Get("last"), std::string(4096, 'z'));
  EXPECT_FALSE(*client->Exists("removed"));
  // Space is accounted for: the restored objects are not overwritten by new puts.
  ASSERT_TRUE(client->Put("after", "w").ok());
  EXPECT_EQ(*client->Get("after"), "w");
  EXPECT_EQ(*client->Get("kept"), "v");
}

// An index larger than one request may carry (here 60,000 keys of 100 bytes: 6 MB of keys, in
// parts of at most 2 MiB of keys) is reported in parts, and every object comes back.
TEST_F(ClientTest, AnIndexLargerThanOneRequestSurvivesAMasterRestart) {
  constexpr int kObjects = 60000;
  auto store = Make(16 * kMiB, 0);
  auto client = Make(0, 1 * kMiB);
  const auto key = [](int i) {
    std::string k = "large-index-" + std::to_string(i) + "-";
    k.resize(100, 'k');
    return k;
  };
  const auto value = [](int i) { return "value of object " + std::to_string(i); };
  std::vector<std::string> keys;
  std::vector<std::string> values;
  for (int i = 0; i < kObjects; ++i) {
    keys.push_back(key(i));
    values.push_back(value(i));
  }
  constexpr size_t kBatch = 1000;
  for (size_t first = 0; first < keys.size(); first += kBatch) {
    std::vector<std::string_view> batch(values.begin() + first, values.begin() + first + kBatch);
    std::vector<absl::Status> put =
        client->BatchPut(absl::MakeConstSpan(keys).subspan(first, kBatch), batch);
    for (size_t i = 0; i < put.size(); ++i) ASSERT_TRUE(put[i].ok()) << keys[first + i];
  }
  const int port = master_port_;
  master_.reset();
  StartMaster(port);
  // The segment is listed as soon as it is mounted, its objects a moment later: wait for all.
  const auto all_exist = [&] {
    for (size_t first = 0; first < keys.size(); first += kBatch) {
      for (const absl::StatusOr<bool>& exists :
           client->BatchExists(absl::MakeConstSpan(keys).subspan(first, kBatch))) {
        if (!exists.ok() || !*exists) return false;
      }
    }
    return true;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && !all_exist()) absl::SleepFor(absl::Milliseconds(50));
  for (size_t first = 0; first < keys.size(); first += kBatch) {
    std::vector<absl::StatusOr<std::string>> got =
        client->BatchGet(absl::MakeConstSpan(keys).subspan(first, kBatch));
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(got[i].ok()) << keys[first + i] << ": " << got[i].status();
      ASSERT_EQ(*got[i], values[first + i]);
    }
  }
}

TEST_F(ClientTest, UnreachableMasterFailsCreateClearly) {
  ClientConfig config = Config(0, 0);
  config.master_server_address = "127.0.0.1:1";
  config.rpc_timeout = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(ErrorCodeOf(client.status()), ErrorCode::RPC_FAIL);
  EXPECT_NE(client.status().message().find("127.0.0.1:1"), std::string_view::npos);
  config.protocol = "carrier-pigeon";
  EXPECT_EQ(ErrorCodeOf(Client::Create(config).status()), ErrorCode::INVALID_PARAMS);
}

TEST(ClientConfigTest, ReadsSpecKeysAndSizeStrings) {
  std::vector<std::string> ignored;
  auto config = ConfigFromJson(nlohmann::json::parse(R"({
      "local_hostname": "h", "metadata_server": "http://m:8080/metadata",
      "master_server_address": "m:50051", "protocol": "tcp", "device_name": "",
      "global_segment_size": "4gb", "local_buffer_size": 1024, "extra": 1})"),
                               {}, &ignored);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->global_segment_size, uint64_t{4} << 30);
  EXPECT_EQ(config->local_buffer_size, 1024u);
  EXPECT_EQ(config->master_server_address, "m:50051");
  EXPECT_EQ(ignored, std::vector<std::string>{"extra"});
  EXPECT_EQ(
      ErrorCodeOf(
          ConfigFromJson(nlohmann::json::parse(R"({"global_segment_size": "50%"})")).status()),
      ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(
      ErrorCodeOf(ConfigFromJson(nlohmann::json::parse(R"({"global_segment_size": -1})")).status()),
      ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(ConfigFromJson(nlohmann::json::parse(R"({"protocol": 3})")).status()),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(ConfigFromFile("/nonexistent/config.json").status()),
            ErrorCode::INVALID_PARAMS);
}

// A store whose local_hostname only this host can reach, in a cluster whose master is elsewhere,
// is warned about; a single-host cluster, or a reachable name, is not.
TEST(ClientConfigTest, ALoopbackHostnameWithARemoteMasterIsWarnedAbout) {
  struct Case {
    std::string local, master;
    bool warned;
  };
  for (const Case& c : std::vector<Case>{
           {"localhost", "localhost:50051", false},
           {"127.0.0.1", "127.0.0.1:50051", false},
           {"localhost:12345", "http://127.0.0.1:50051", false},
           {"localhost", "10.1.2.3:50051", true},
           {"127.0.1.1", "10.1.2.3:50051", true},
           {"[::1]:12345", "10.1.2.3:50051", true},
           {"::1", "etcd://10.1.2.3:2379,10.1.2.4:2379/prod", true},
           {"localhost", "etcd://127.0.0.1:2379/prod", false},
           {"10.1.2.5", "10.1.2.3:50051", false},
       }) {
    ClientConfig config;
    config.local_hostname = c.local;
    config.master_server_address = c.master;
    std::optional<std::string> warning = UnreachableHostnameWarning(config);
    EXPECT_EQ(warning.has_value(), c.warned) << c.local << " / " << c.master;
    if (warning) {
      EXPECT_NE(warning->find("'" + c.local + "'"), std::string::npos) << *warning;
    }
  }
}

}  // namespace
}  // namespace mooncake::client
