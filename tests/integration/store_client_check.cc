// A client program run against a real cluster (metadata + master + stores, each its own process,
// perhaps each in its own network namespace): every operation of the client library, its error
// codes, and data checked byte for byte. Not a test by itself: store_cluster_test and
// scripts/netns_test.sh start the cluster and run it.
//
//   store_client_check --master H:P --metadata URL --local-hostname H [--expect-transport tcp]
//                      [--stores N]
#include <cstring>
#include <random>
#include <string>

#include "absl/time/clock.h"
#include "client/client.h"
#include "common/error_code.h"
#include "gtest/gtest.h"
#include "support/memory.h"

namespace mooncake::client {
namespace {

struct Flags {
  std::string master;
  std::string metadata = "P2PHANDSHAKE";
  std::string local_hostname = "127.0.0.1";
  std::string expect_transport;  // empty: any
  size_t stores = 2;
};
Flags flags;

constexpr uint64_t kMiB = 1u << 20;

using test::MappedBuffer;

void Fill(char* p, size_t n, uint32_t seed) { test::FillRandom(p, n, seed); }

class StoreClientCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    ClientConfig config;
    config.master_server_address = flags.master;
    config.metadata_server = flags.metadata;
    config.local_hostname = flags.local_hostname;
    config.global_segment_size = 0;
    config.local_buffer_size = 32 * kMiB;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(config);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    (void)client_->RemoveAll();
  }
  void TearDown() override {
    if (client_) {
      (void)client_->BatchRemove(client_keys_, /*force=*/true);
      EXPECT_TRUE(client_->Close().ok());
    }
  }
  std::unique_ptr<Client> client_;
  std::vector<std::string> client_keys_;
};

TEST_F(StoreClientCheck, SegmentsAreReachedByTheExpectedTransport) {
  absl::StatusOr<std::vector<SegmentInfo>> segments = client_->ListSegments();
  ASSERT_TRUE(segments.ok()) << segments.status();
  ASSERT_EQ(segments->size(), flags.stores);
  for (const SegmentInfo& segment : *segments) {
    const std::string transport = client_->TransportTo(segment.name);
    EXPECT_NE(transport, "") << segment.name;
    if (!flags.expect_transport.empty()) {
      EXPECT_EQ(transport, flags.expect_transport);
    }
  }
}

TEST_F(StoreClientCheck, EveryOperation) {
  ASSERT_TRUE(client_->HealthCheck().ok());
  ASSERT_TRUE(client_->Put("op_1_k", "value one").ok());
  std::vector<std::string_view> parts = {"val", "ue ", "two"};
  ASSERT_TRUE(client_->PutParts("op_1_v", parts).ok());
  ASSERT_TRUE(client_->Put("op_2_k", std::string(100000, 'x')).ok());
  EXPECT_EQ(*client_->Get("op_1_k"), "value one");
  EXPECT_EQ(*client_->Get("op_1_v"), "value two");
  EXPECT_EQ(*client_->GetSize("op_2_k"), 100000u);
  EXPECT_TRUE(*client_->Exists("op_1_k"));
  std::vector<std::string> keys = {"op_1_k", "nope", "op_2_k"};
  std::vector<absl::StatusOr<bool>> exist = client_->BatchExists(keys);
  EXPECT_TRUE(*exist[0]);
  EXPECT_FALSE(*exist[1]);
  EXPECT_TRUE(*exist[2]);
  std::vector<absl::StatusOr<std::string>> got = client_->BatchGet(keys);
  EXPECT_EQ(*got[0], "value one");
  EXPECT_EQ(ErrorCodeOf(got[1].status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(got[2]->size(), 100000u);
  // A second put of an existing key succeeds and leaves the value alone.
  EXPECT_TRUE(client_->Put("op_1_k", "other").ok());
  EXPECT_EQ(*client_->Get("op_1_k"), "value one");
  // The reads above are done: their leases were released with this very call.
  EXPECT_TRUE(client_->Remove("op_1_k").ok());
  EXPECT_FALSE(*client_->Exists("op_1_k"));
  ASSERT_TRUE(client_->Put("rx_1", "a").ok());
  ASSERT_TRUE(client_->Put("rx_2", "b").ok());
  ASSERT_TRUE(client_->Put("ry_1", "c").ok());
  EXPECT_EQ(*client_->RemoveByRegex("^rx_"), 2u);
  EXPECT_TRUE(*client_->Exists("ry_1"));
  EXPECT_FALSE(*client_->Exists("rx_1"));
  std::vector<std::string> rest = {"op_1_v", "op_2_k", "ry_1"};
  for (const absl::Status& s : client_->BatchRemove(rest, /*force=*/true)) EXPECT_TRUE(s.ok()) << s;
  ASSERT_TRUE(client_->Put("all_1", "a").ok());
  ASSERT_TRUE(client_->Put("all_2", "b").ok());
  EXPECT_EQ(*client_->RemoveAll(), 2u);
}

TEST_F(StoreClientCheck, ErrorCodes) {
  EXPECT_EQ(ErrorCodeOf(client_->Get("absent").status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(client_->GetSize("absent").status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(client_->Remove("absent")), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(client_->Put("", "v")), ErrorCode::INVALID_KEY);
  EXPECT_EQ(ErrorCodeOf(client_->Put(std::string(4097, 'k'), "v")), ErrorCode::INVALID_KEY);
  EXPECT_EQ(ErrorCodeOf(client_->Put("empty", "")), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(client_->RemoveByRegex("(unclosed").status()), ErrorCode::INVALID_PARAMS);
  MappedBuffer pool(1 * kMiB);
  ASSERT_TRUE(client_->RegisterBuffer(pool.data(), pool.size()).ok());
  ASSERT_TRUE(client_->Put("ten", "0123456789").ok());
  client_keys_.push_back("ten");
  EXPECT_EQ(ErrorCodeOf(client_->GetInto("ten", {pool.data(), 9}).status()),
            ErrorCode::BUFFER_OVERFLOW);
  char stack[32];
  EXPECT_EQ(ErrorCodeOf(client_->GetInto("ten", {stack, sizeof(stack)}).status()),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(client_->PutFrom("x", {pool.data() + pool.size() - 1, 2})),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(client_->PutFrom("huge", {pool.data(), pool.size()},
                                         ReplicateConfig{.replica_num = 17})),
            ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(client_->UnregisterBuffer(pool.data()).ok());
}

TEST_F(StoreClientCheck, RandomSizesByteForByte) {
  // Sizes from 1 byte to 16 MiB at unaligned addresses, some with two replicas.
  MappedBuffer src(80 * kMiB), dst(80 * kMiB);
  ASSERT_TRUE(client_->RegisterBuffer(src.data(), src.size()).ok());
  ASSERT_TRUE(client_->RegisterBuffer(dst.data(), dst.size()).ok());
  std::mt19937 random(2026);
  for (int round = 0; round < 3; ++round) {
    std::vector<std::string> keys;
    std::vector<Slice> in, out;
    size_t offset = 1 + random() % 63;
    const std::vector<size_t> anchors = {1, 2, 4095, 4096, 4097, 16 * kMiB};
    for (size_t i = 0; i < 24; ++i) {
      size_t size = i < anchors.size() && round == 0
                        ? anchors[i]
                        : 1 + random() % (i % 5 == 0 ? 6 * kMiB : 70000);
      if (offset + size + 64 > src.size()) break;
      keys.push_back("rand_" + std::to_string(round) + "_" + std::to_string(i));
      Fill(src.data() + offset, size, static_cast<uint32_t>(round * 100 + i));
      in.push_back({src.data() + offset, size});
      out.push_back({dst.data() + offset + 3, size});
      std::memset(dst.data() + offset + 3, 0, size);
      offset += size + 1 + random() % 100;
    }
    ReplicateConfig config;
    config.replica_num = round == 1 ? 2 : 1;
    std::vector<absl::Status> put = client_->BatchPutFrom(keys, in, config);
    for (size_t i = 0; i < keys.size(); ++i) ASSERT_TRUE(put[i].ok()) << keys[i] << ": " << put[i];
    std::vector<absl::StatusOr<uint64_t>> got = client_->BatchGetInto(keys, out);
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(got[i].ok()) << keys[i] << ": " << got[i].status();
      ASSERT_EQ(*got[i], in[i].size);
      ASSERT_EQ(std::memcmp(in[i].data, out[i].data, in[i].size), 0) << keys[i];
    }
    // The same through the copying path.
    std::vector<absl::StatusOr<std::string>> copies = client_->BatchGet(keys);
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(copies[i].ok()) << copies[i].status();
      ASSERT_EQ(*copies[i], std::string_view(static_cast<char*>(in[i].data), in[i].size));
    }
    for (const absl::Status& s : client_->BatchRemove(keys, /*force=*/true)) ASSERT_TRUE(s.ok());
  }
  EXPECT_TRUE(client_->UnregisterBuffer(src.data()).ok());
  EXPECT_TRUE(client_->UnregisterBuffer(dst.data()).ok());
}

}  // namespace
}  // namespace mooncake::client

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  using mooncake::client::flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i], value = argv[i + 1];
    if (name == "--master") {
      flags.master = value;
    } else if (name == "--metadata") {
      flags.metadata = value;
    } else if (name == "--local-hostname") {
      flags.local_hostname = value;
    } else if (name == "--expect-transport") {
      flags.expect_transport = value;
    } else if (name == "--stores") {
      flags.stores = std::stoul(value);
    } else {
      std::fprintf(stderr, "store_client_check: unknown flag %s\n", name.c_str());
      return 2;
    }
  }
  if (flags.master.empty()) {
    std::fprintf(stderr, "store_client_check: --master host:port is required\n");
    return 2;
  }
  return RUN_ALL_TESTS();
}
