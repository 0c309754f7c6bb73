// The RDMA transport's logic, driven through the verbs seam by SoftVerbs: a software stand-in for
// RDMA NICs (these machines have none). It checks keys and bounds, runs work requests in order and
// can inject NIC errors, like hardware would.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/error_code.h"
#include "engine/transfer_engine.h"
#include "support/soft_verbs.h"

namespace mooncake::engine {
namespace {

class RdmaTransportTest : public ::testing::Test {
 protected:
  std::unique_ptr<TransferEngine> Make(std::vector<std::string> nics,
                                       std::string device_name = "") {
    EngineConfig config;
    config.local_hostname = "127.0.0.1";
    config.listen_address = "127.0.0.1";
    config.first_port = 0;
    config.protocol = "rdma";
    config.device_name = std::move(device_name);
    config.enable_shm = false;  // same process: RDMA, not shared memory, is under test
    config.rdma.slice_size = 64 << 10;
    config.rdma.signal_every = 4;
    config.verbs = std::make_shared<test::SoftVerbs>(fabric_, std::move(nics));
    auto engine = TransferEngine::Create(config);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  void SetUp() override {
    target_ = Make({"soft_b0"});
    initiator_ = Make({"soft_a0", "soft_a1"});
    ASSERT_TRUE(target_ && initiator_);
    ASSERT_TRUE(target_->RegisterMemory(remote_.data(), remote_.size()).ok());
    ASSERT_TRUE(initiator_->RegisterMemory(local_.data(), local_.size()).ok());
    auto segment = initiator_->OpenSegment(target_->segment_name());
    ASSERT_TRUE(segment.ok()) << segment.status();
    segment_ = *segment;
  }

  absl::Status One(TransferOp op, size_t local_offset, size_t remote_offset, size_t length) {
    return initiator_
        ->Submit({{op, local_.data() + local_offset, segment_,
                   reinterpret_cast<uint64_t>(remote_.data()) + remote_offset, length}})
        ->Wait()[0];
  }

  std::shared_ptr<test::SoftFabric> fabric_ = std::make_shared<test::SoftFabric>();
  std::vector<uint8_t> remote_ = std::vector<uint8_t>(4 << 20);
  std::vector<uint8_t> local_ = std::vector<uint8_t>(4 << 20);
  std::unique_ptr<TransferEngine> target_, initiator_;
  SegmentId segment_ = 0;
};

TEST_F(RdmaTransportTest, ReadsAndWritesStripedOverTheNics) {
  EXPECT_EQ(initiator_->TransportFor(segment_), "rdma");
  std::mt19937_64 rng(3);
  for (int i = 0; i < 40; ++i) {
    const size_t length = 1 + rng() % (1 << 20);
    const size_t l = rng() % (local_.size() - length), r = rng() % (remote_.size() - length);
    for (size_t k = 0; k < length; ++k) local_[l + k] = static_cast<uint8_t>(rng());
    ASSERT_TRUE(One(TransferOp::kWrite, l, r, length).ok());
    ASSERT_EQ(std::memcmp(remote_.data() + r, local_.data() + l, length), 0) << i;
    std::memset(local_.data() + l, 0, length);
    ASSERT_TRUE(One(TransferOp::kRead, l, r, length).ok());
    ASSERT_EQ(std::memcmp(remote_.data() + r, local_.data() + l, length), 0) << i;
  }
  // Both NICs carried slices.
  EXPECT_GT(fabric_->Executed("soft_a0"), 0u);
  EXPECT_GT(fabric_->Executed("soft_a1"), 0u);
}

TEST_F(RdmaTransportTest, BatchesWithManySlicesComplete) {
  std::vector<TransferRequest> batch;
  for (int i = 0; i < 32; ++i) {
    batch.push_back({TransferOp::kWrite, local_.data() + i * 65536, segment_,
                     reinterpret_cast<uint64_t>(remote_.data()) + i * 65536, 65536});
  }
  std::memset(local_.data(), 0x3c, 32 * 65536);
  for (const absl::Status& s : initiator_->Submit(batch)->Wait()) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(std::memcmp(remote_.data(), local_.data(), 32 * 65536), 0);
}

TEST_F(RdmaTransportTest, NicErrorIsRetriedOnAnotherNicAndTheQueuePairReplaced) {
  fabric_->FailNext("soft_a0", 1);
  std::memset(local_.data(), 0x5a, 1 << 20);
  ASSERT_TRUE(One(TransferOp::kWrite, 0, 0, 1 << 20).ok());  // 16 slices, one fails and is retried
  EXPECT_EQ(fabric_->PendingFailures("soft_a0"), 0);         // the failure did happen
  EXPECT_EQ(std::memcmp(remote_.data(), local_.data(), 1 << 20), 0);
  // Later transfers work on both NICs again (the failed queue pair was replaced).
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(One(TransferOp::kRead, 0, 0, 1 << 20).ok());
}

TEST_F(RdmaTransportTest, PersistentFailureFailsTheRequestWithAMessage) {
  fabric_->FailNext("soft_a0", 1000);
  fabric_->FailNext("soft_a1", 1000);
  absl::Status status = One(TransferOp::kWrite, 0, 0, 4096);
  EXPECT_EQ(ErrorCodeOf(status), ErrorCode::TRANSFER_FAIL);
  EXPECT_NE(std::string(status.message()).find("retry counter exceeded"), std::string::npos)
      << status;
}

TEST_F(RdmaTransportTest, StaleRemoteKeysAreRefusedByTheNic) {
  // The target re-registers its memory: its keys change, the initiator's cached ones do not.
  std::memset(remote_.data(), 0xee, 4096);
  ASSERT_TRUE(target_->UnregisterMemory(remote_.data()).ok());
  ASSERT_TRUE(target_->RegisterMemory(remote_.data(), remote_.size()).ok());
  absl::Status stale = One(TransferOp::kWrite, 0, 0, 4096);
  EXPECT_EQ(ErrorCodeOf(stale), ErrorCode::TRANSFER_FAIL);
  EXPECT_NE(std::string(stale.message()).find("remote access error"), std::string::npos) << stale;
  EXPECT_EQ(remote_[0], 0xee);  // nothing was written
  // After a refresh the new keys work.
  initiator_->RefreshSegment(target_->segment_name());
  auto segment = initiator_->OpenSegment(target_->segment_name());
  ASSERT_TRUE(segment.ok());
  segment_ = *segment;
  EXPECT_TRUE(One(TransferOp::kWrite, 0, 0, 4096).ok());
}

TEST_F(RdmaTransportTest, RangesOutsideTheTargetsBuffersNeverReachTheNic) {
  // Not inside any RDMA-registered buffer of the target: the request goes to the data server,
  // which refuses it; no NIC moved a byte.
  const uint64_t executed = fabric_->Executed("soft_a0") + fabric_->Executed("soft_a1");
  absl::Status outside = One(TransferOp::kWrite, 0, remote_.size() - 8, 16);
  EXPECT_EQ(ErrorCodeOf(outside), ErrorCode::TRANSFER_FAIL);
  EXPECT_EQ(fabric_->Executed("soft_a0") + fabric_->Executed("soft_a1"), executed);
}

// The NIC reads and writes only registered memory: a request whose local range is declared the
// caller's own (unregistered) fails before any NIC sees it, and the engine says so in advance.
TEST_F(RdmaTransportTest, UnregisteredLocalMemoryIsRefusedBeforeTheNic) {
  EXPECT_TRUE(initiator_->LocalNeedsRegistration());
  const uint64_t executed = fabric_->Executed("soft_a0") + fabric_->Executed("soft_a1");
  std::vector<uint8_t> own(4096);
  TransferRequest read{TransferOp::kRead, own.data(), segment_,
                       reinterpret_cast<uint64_t>(remote_.data()), own.size()};
  read.local_unregistered = true;
  absl::Status refused = initiator_->Submit({read})->Wait()[0];
  EXPECT_EQ(ErrorCodeOf(refused), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(std::string(refused.message()).find("RDMA"), std::string::npos) << refused;
  EXPECT_EQ(fabric_->Executed("soft_a0") + fabric_->Executed("soft_a1"), executed);
}

TEST_F(RdmaTransportTest, DeviceSelection) {
  auto only_a1 = Make({"soft_a0", "soft_a1"}, "soft_a1");
  ASSERT_TRUE(only_a1);
  EngineConfig bad;
  bad.local_hostname = "127.0.0.1";
  bad.first_port = 0;
  bad.protocol = "rdma";
  bad.device_name = "mlx5_9";
  bad.verbs = std::make_shared<test::SoftVerbs>(fabric_, std::vector<std::string>{"soft_c0"});
  auto refused = TransferEngine::Create(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(std::string(refused.status().message()).find("found: soft_c0"), std::string::npos)
      << refused.status();
  bad.device_name = "";
  bad.verbs = std::make_shared<test::SoftVerbs>(fabric_, std::vector<std::string>{});
  EXPECT_NE(std::string(TransferEngine::Create(bad).status().message()).find("found: none"),
            std::string::npos);
}

// Verbs that cannot be had at all (the Python extension on a host without rdma-core's
// libibverbs): the engine is refused with the reason, not with "no device".
TEST_F(RdmaTransportTest, AHostWithoutVerbsIsToldWhy) {
  class Unavailable : public test::SoftVerbs {
   public:
    using SoftVerbs::SoftVerbs;
    absl::Status Available() override {
      return MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "libibverbs.so.1 is missing");
    }
  };
  EngineConfig config;
  config.local_hostname = "127.0.0.1";
  config.first_port = 0;
  config.protocol = "rdma";
  config.verbs = std::make_shared<Unavailable>(fabric_, std::vector<std::string>{"soft_c0"});
  auto refused = TransferEngine::Create(config);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(ErrorCodeOf(refused.status()), ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  EXPECT_NE(
      std::string(refused.status().message()).find("protocol rdma: libibverbs.so.1 is missing"),
      std::string::npos)
      << refused.status();
}

}  // namespace
}  // namespace mooncake::engine
