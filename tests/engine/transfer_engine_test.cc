// Two transfer engines in one process, talking over real TCP on 127.0.0.1 (and one memcpy path).
#include "engine/transfer_engine.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <thread>

#include "common/error_code.h"
#include "engine/shm/shm_channel.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_protocol.h"
#include "http/metadata_service.h"
#include "support/etcd.h"
#include "support/raw_socket.h"

namespace mooncake::engine {
namespace {

EngineConfig LoopbackConfig(std::string metadata = "P2PHANDSHAKE") {
  EngineConfig config;
  config.local_hostname = "127.0.0.1";
  config.metadata_server = std::move(metadata);
  config.listen_address = "127.0.0.1";
  config.first_port = 0;  // any free port
  config.tcp.slice_size = 64 << 10;
  config.tcp.io_timeout = absl::Seconds(2);
  config.data_server.io_timeout = absl::Seconds(2);
  return config;
}

std::unique_ptr<TransferEngine> MakeEngine(EngineConfig config = LoopbackConfig()) {
  auto engine = TransferEngine::Create(std::move(config));
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? *std::move(engine) : nullptr;
}

// A buffer with an inaccessible page on each side: touching a byte outside it kills the process.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t size) : size_(size) {
    const size_t page = sysconf(_SC_PAGESIZE);
    span_ = ((size + page - 1) / page + 2) * page;
    base_ =
        static_cast<uint8_t*>(mmap(nullptr, span_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    data_ = base_ + page;
    mprotect(data_, span_ - 2 * page, PROT_READ | PROT_WRITE);
    // Ends flush against the upper guard page, so an overrun of even one byte faults.
    data_ = base_ + span_ - page - size;
  }
  ~GuardedBuffer() { munmap(base_, span_); }
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* base_;
  uint8_t* data_;
  size_t span_;
  size_t size_;
};

void Fill(uint8_t* p, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(rng());
}

class TransferEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = MakeEngine();
    initiator_ = MakeEngine();
    ASSERT_TRUE(target_ && initiator_);
    ASSERT_TRUE(target_->RegisterMemory(remote_.data(), remote_.size()).ok());
    ASSERT_TRUE(initiator_->RegisterMemory(local_.data(), local_.size()).ok());
    auto segment = initiator_->OpenSegment(target_->segment_name());
    ASSERT_TRUE(segment.ok()) << segment.status();
    segment_ = *segment;
  }

  absl::Status One(TransferOp op, void* local, uint64_t remote, uint64_t length) {
    auto batch = initiator_->Submit({TransferRequest{op, local, segment_, remote, length}});
    return batch->Wait()[0];
  }
  uint64_t Remote(size_t offset) { return reinterpret_cast<uint64_t>(remote_.data()) + offset; }

  GuardedBuffer remote_{8 << 20};
  GuardedBuffer local_{8 << 20};
  std::unique_ptr<TransferEngine> target_;
  std::unique_ptr<TransferEngine> initiator_;
  SegmentId segment_ = 0;
};

TEST_F(TransferEngineTest, SegmentIsNamedByItsDataEndpoint) {
  EXPECT_EQ(target_->segment_name().rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE(target_->segment_name(), initiator_->segment_name());
}

TEST_F(TransferEngineTest, WriteThenReadBackRandomSizesAndAlignments) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 60; ++i) {
    const size_t length = 1 + rng() % (i % 3 == 0 ? (3 << 20) : 5000);
    const size_t local_off = rng() % (local_.size() - length);
    const size_t remote_off = rng() % (remote_.size() - length);
    Fill(local_.data() + local_off, length, i);
    ASSERT_TRUE(
        One(TransferOp::kWrite, local_.data() + local_off, Remote(remote_off), length).ok());
    ASSERT_EQ(std::memcmp(remote_.data() + remote_off, local_.data() + local_off, length), 0) << i;
    std::memset(local_.data() + local_off, 0, length);
    ASSERT_TRUE(One(TransferOp::kRead, local_.data() + local_off, Remote(remote_off), length).ok());
    ASSERT_EQ(std::memcmp(remote_.data() + remote_off, local_.data() + local_off, length), 0) << i;
  }
}

TEST_F(TransferEngineTest, BatchesReportPerRequest) {
  Fill(local_.data(), 1 << 20, 7);
  std::vector<TransferRequest> requests;
  for (int i = 0; i < 16; ++i) {
    requests.push_back(
        {TransferOp::kWrite, local_.data() + i * 65536, segment_, Remote(i * 65536), 65536});
  }
  requests.push_back(
      {TransferOp::kWrite, local_.data(), segment_, Remote(remote_.size() - 10), 20});
  std::vector<uint8_t> unregistered(100);
  requests.push_back({TransferOp::kRead, unregistered.data(), segment_, Remote(0), 100});
  requests.push_back({TransferOp::kRead, local_.data(), 999, Remote(0), 100});
  auto statuses = initiator_->Submit(requests)->Wait();
  ASSERT_EQ(statuses.size(), 19u);
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(statuses[i].ok()) << statuses[i];
  EXPECT_EQ(ErrorCodeOf(statuses[16]), ErrorCode::TRANSFER_FAIL);  // straddles the buffer's end
  EXPECT_NE(std::string(statuses[16].message()).find("not inside a registered buffer"),
            std::string::npos)
      << statuses[16];
  EXPECT_EQ(ErrorCodeOf(statuses[17]), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(statuses[18]), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(std::memcmp(remote_.data(), local_.data(), 1 << 20), 0);
  // The refused request closed one connection; the engine goes on working.
  EXPECT_TRUE(One(TransferOp::kRead, local_.data(), Remote(0), 4096).ok());
}

TEST_F(TransferEngineTest, OwnSegmentIsAMemcpy) {
  auto self = initiator_->OpenSegment(initiator_->segment_name());
  ASSERT_TRUE(self.ok());
  Fill(local_.data(), 4096, 3);
  auto statuses = initiator_
                      ->Submit({{TransferOp::kWrite, local_.data(), *self,
                                 reinterpret_cast<uint64_t>(local_.data()) + 8192, 4096}})
                      ->Wait();
  ASSERT_TRUE(statuses[0].ok());
  EXPECT_EQ(std::memcmp(local_.data(), local_.data() + 8192, 4096), 0);
  auto outside = initiator_
                     ->Submit({{TransferOp::kWrite, local_.data(), *self,
                                reinterpret_cast<uint64_t>(remote_.data()), 4096}})
                     ->Wait();
  EXPECT_EQ(ErrorCodeOf(outside[0]), ErrorCode::TRANSFER_FAIL);
}

// A copying get reads a value straight into memory the caller owns (not registered): TCP, the
// own segment's memcpy and shared memory take it when the request says so, and still check the
// target's range; without the flag the same memory is refused.
TEST_F(TransferEngineTest, LocalMemoryDeclaredTheCallersOwnNeedsNoRegistration) {
  EXPECT_FALSE(initiator_->LocalNeedsRegistration());
  Fill(remote_.data(), 300000, 21);
  std::vector<uint8_t> own(300000);
  TransferRequest read{TransferOp::kRead, own.data(), segment_, Remote(0), own.size()};
  EXPECT_EQ(ErrorCodeOf(initiator_->Submit({read})->Wait()[0]), ErrorCode::INVALID_PARAMS);
  read.local_unregistered = true;
  ASSERT_TRUE(initiator_->Submit({read})->Wait()[0].ok());
  EXPECT_EQ(std::memcmp(own.data(), remote_.data(), own.size()), 0);

  Fill(own.data(), own.size(), 22);
  TransferRequest write{TransferOp::kWrite, own.data(), segment_, Remote(4096), own.size()};
  write.local_unregistered = true;
  ASSERT_TRUE(initiator_->Submit({write})->Wait()[0].ok());
  EXPECT_EQ(std::memcmp(own.data(), remote_.data() + 4096, own.size()), 0);

  // The target's side is checked as always: past its buffer's end, nothing is written.
  remote_.data()[remote_.size() - 1] = 0x77;
  TransferRequest outside{TransferOp::kWrite, own.data(), segment_, Remote(remote_.size() - 10),
                          20};
  outside.local_unregistered = true;
  EXPECT_EQ(ErrorCodeOf(initiator_->Submit({outside})->Wait()[0]), ErrorCode::TRANSFER_FAIL);
  EXPECT_EQ(remote_.data()[remote_.size() - 1], 0x77);

  // The own segment: a memcpy, the registered side still checked.
  auto self = initiator_->OpenSegment(initiator_->segment_name());
  ASSERT_TRUE(self.ok());
  Fill(local_.data(), 4096, 23);
  TransferRequest mine{TransferOp::kRead, own.data(), *self,
                       reinterpret_cast<uint64_t>(local_.data()), 4096};
  mine.local_unregistered = true;
  ASSERT_TRUE(initiator_->Submit({mine})->Wait()[0].ok());
  EXPECT_EQ(std::memcmp(own.data(), local_.data(), 4096), 0);
  mine.remote_addr = reinterpret_cast<uint64_t>(remote_.data());  // not ours
  EXPECT_EQ(ErrorCodeOf(initiator_->Submit({mine})->Wait()[0]), ErrorCode::TRANSFER_FAIL);
}

TEST_F(TransferEngineTest, PeerThatGoesAwayFailsTheTransfer) {
  const std::string name = target_->segment_name();
  ASSERT_TRUE(One(TransferOp::kRead, local_.data(), Remote(0), 4096).ok());
  target_.reset();
  absl::Status gone = One(TransferOp::kRead, local_.data(), Remote(0), 4096);
  EXPECT_EQ(ErrorCodeOf(gone), ErrorCode::TRANSFER_FAIL);
  EXPECT_NE(std::string(gone.message()).find(name.substr(0, name.find(':'))), std::string::npos);
  EXPECT_EQ(ErrorCodeOf(initiator_->OpenSegment("127.0.0.1:1").status()), ErrorCode::TRANSFER_FAIL);
}

TEST_F(TransferEngineTest, PeerThatNeverAnswersTimesOut) {
  // A listener that accepts and never replies stands in for a hung peer.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string endpoint = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  EXPECT_EQ(ErrorCodeOf(initiator_->OpenSegment(endpoint).status()), ErrorCode::TRANSFER_FAIL);
  close(fd);
}

TEST(TransferEngineConfigTest, BadConfigsAreClearErrors) {
  EngineConfig rdma = LoopbackConfig();
  rdma.protocol = "rdma";
  auto no_device = TransferEngine::Create(rdma);
  ASSERT_FALSE(no_device.ok());
  EXPECT_NE(std::string(no_device.status().message()).find("found: none"), std::string::npos);
  EngineConfig unknown = LoopbackConfig();
  unknown.protocol = "carrier-pigeon";
  EXPECT_EQ(ErrorCodeOf(TransferEngine::Create(unknown).status()), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(TransferEngine::Create(LoopbackConfig("etcd-ish://x")).status()),
            ErrorCode::INVALID_PARAMS);
  EngineConfig bad_host = LoopbackConfig();
  bad_host.local_hostname = "127.0.0.1:notaport";
  EXPECT_EQ(ErrorCodeOf(TransferEngine::Create(bad_host).status()), ErrorCode::INVALID_PARAMS);
}

// Opens `target`'s segment from `initiator` (through whatever metadata both use), writes `local`
// into `remote` there, and checks the bytes arrived.
void WriteAndCompare(TransferEngine& initiator, TransferEngine& target, std::vector<uint8_t>& local,
                     const std::vector<uint8_t>& remote) {
  auto segment = initiator.OpenSegment(target.segment_name());
  ASSERT_TRUE(segment.ok()) << segment.status();
  auto statuses = initiator
                      .Submit({{TransferOp::kWrite, local.data(), *segment,
                                reinterpret_cast<uint64_t>(remote.data()), local.size()}})
                      ->Wait();
  ASSERT_TRUE(statuses[0].ok()) << statuses[0];
  EXPECT_EQ(remote, local);
}

TEST(TransferEngineMetadataTest, DescriptorsTravelThroughTheMetadataService) {
  http::MetadataServer metadata(http::HttpServerOptions{.name = "md", .host = "127.0.0.1"}, {});
  ASSERT_TRUE(metadata.Start().ok());
  const std::string url = "http://127.0.0.1:" + std::to_string(metadata.port()) + "/metadata";
  auto target = MakeEngine(LoopbackConfig(url));
  auto initiator = MakeEngine(LoopbackConfig(url));
  std::vector<uint8_t> remote(1 << 16), local(1 << 16, 0x5a);
  ASSERT_TRUE(target->RegisterMemory(remote.data(), remote.size()).ok());
  ASSERT_TRUE(initiator->RegisterMemory(local.data(), local.size()).ok());
  ASSERT_TRUE(metadata.store().Get(SegmentKey(target->segment_name())).ok());
  WriteAndCompare(*initiator, *target, local, remote);
  EXPECT_EQ(ErrorCodeOf(initiator->OpenSegment("127.0.0.1:9").status()),
            ErrorCode::SEGMENT_NOT_FOUND);
  const std::string name = target->segment_name();
  target.reset();  // a stopped engine takes its descriptor away
  EXPECT_FALSE(metadata.store().Get(SegmentKey(name)).ok());
}

// With metadata_server etcd://, descriptors live in etcd under a lease of their engine: no
// metadata service at all. Malformed, foreign or missing values are clear errors; a descriptor
// etcd lost (deleted, or its lease revoked) is published again by its engine.
TEST(TransferEngineMetadataTest, DescriptorsTravelThroughEtcd) {
  test::EtcdCluster etcd;
  ASSERT_TRUE(etcd.ok());
  std::unique_ptr<http::EtcdClient> kv = etcd.NewClient();
  ASSERT_NE(kv, nullptr);
  EngineConfig config = LoopbackConfig("etcd://" + etcd.endpoints());
  config.republish_interval = absl::Milliseconds(200);
  auto target = MakeEngine(config);
  auto initiator = MakeEngine(config);
  ASSERT_NE(target, nullptr);
  ASSERT_NE(initiator, nullptr);
  std::vector<uint8_t> remote(1 << 16), local(1 << 16, 0x3c);
  ASSERT_TRUE(target->RegisterMemory(remote.data(), remote.size()).ok());
  ASSERT_TRUE(initiator->RegisterMemory(local.data(), local.size()).ok());
  const std::string key = SegmentKey(target->segment_name());
  auto held = kv->Get(key);
  ASSERT_TRUE(held.ok() && held->has_value()) << held.status();
  EXPECT_NE((*held)->lease, 0) << "a descriptor in etcd lives under its engine's lease";

  WriteAndCompare(*initiator, *target, local, remote);

  // Missing, malformed and foreign values.
  EXPECT_EQ(ErrorCodeOf(initiator->OpenSegment("127.0.0.1:9").status()),
            ErrorCode::SEGMENT_NOT_FOUND);
  for (const std::string& junk : {std::string("not json"), std::string("{\"name\": 7}"),
                                  std::string("\xff\x00\x01"), std::string(70000, '[')}) {
    ASSERT_TRUE(kv->Put(SegmentKey("127.0.0.1:10"), junk).ok());
    auto opened = initiator->OpenSegment("127.0.0.1:10");
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(ErrorCodeOf(opened.status()), ErrorCode::INVALID_PARAMS);
    EXPECT_NE(std::string(opened.status().message()).find("malformed"), std::string::npos)
        << opened.status();
  }
  ASSERT_TRUE(kv->Put(SegmentKey("127.0.0.1:11"), (*held)->value).ok());
  auto foreign = initiator->OpenSegment("127.0.0.1:11");
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(std::string(foreign.status().message()).find("holds the descriptor of segment"),
            std::string::npos)
      << foreign.status();

  // Lost descriptors come back: deleted by hand, then with their lease revoked.
  auto republished = [&](int64_t old_lease) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      auto now = kv->Get(key);
      if (now.ok() && now->has_value() && (*now)->lease != 0 &&
          (old_lease == 0 || (*now)->lease != old_lease)) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  };
  ASSERT_TRUE(kv->Delete(key).ok());
  EXPECT_TRUE(republished(0));
  held = kv->Get(key);
  ASSERT_TRUE(held.ok() && held->has_value());
  ASSERT_TRUE(kv->LeaseRevoke((*held)->lease).ok());
  EXPECT_TRUE(republished((*held)->lease)) << "a revoked lease is replaced";
  initiator->RefreshSegment(target->segment_name());
  EXPECT_TRUE(initiator->OpenSegment(target->segment_name()).ok());

  target.reset();  // a stopped engine takes its descriptor away
  held = kv->Get(key);
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(held->has_value());
}

// Hand-made frames against a target whose only buffer is fenced by guard pages: the server must
// refuse each bad one (an error reply or a closed connection), keep serving, and never touch a
// byte outside the buffer (a touch would fault and kill this test).
TEST_F(TransferEngineTest, DataServerRejectsHostileFrames) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(tcp::SplitHostPort(target_->segment_name(), &host, &port).ok());
  const uint64_t start = Remote(0);
  const uint64_t end = start + remote_.size();
  std::memset(remote_.data(), 0xab, remote_.size());
  // What the server answers before it closes (or, for a connection it keeps, within `wait`).
  auto send_frame = [&](const std::string& bytes, absl::Duration wait = absl::Seconds(5)) {
    test::RawSocket raw(port);
    EXPECT_TRUE(raw.connected());
    raw.Send(bytes);
    return raw.ReadUntilClose(wait);
  };
  auto frame = [](tcp::RequestHeader h) {
    auto bytes = tcp::EncodeRequest(h);
    return std::string(bytes.begin(), bytes.end());
  };
  // Every connection opens with HELLO; the hostile frame follows it.
  const std::string hello = frame({tcp::Opcode::kHello, 1, 0, 0});
  const size_t hello_reply = tcp::kResponseHeaderSize + tcp::kHelloReplySize;
  auto status_of = [](std::string_view reply) -> int32_t {
    if (reply.size() < tcp::kResponseHeaderSize) return 1;  // closed without a reply
    auto header = tcp::DecodeResponse(reinterpret_cast<const uint8_t*>(reply.data()));
    return header.ok() ? header->status : 2;
  };
  auto after_hello = [&](const std::string& bytes,
                         absl::Duration wait = absl::Seconds(5)) -> int32_t {
    const std::string reply = send_frame(hello + bytes, wait);
    if (reply.size() < hello_reply || status_of(reply) != 0) return 3;  // HELLO itself failed
    return status_of(std::string_view(reply).substr(hello_reply));
  };
  const std::vector<std::pair<std::string, std::string>> hostile = {
      {"read past the end", frame({tcp::Opcode::kRead, 1, end - 10, 20})},
      {"read before the start", frame({tcp::Opcode::kRead, 1, start - 1, 2})},
      {"read far away", frame({tcp::Opcode::kRead, 1, 0x1000, 16})},
      {"write past the end", frame({tcp::Opcode::kWrite, 1, end - 1, 2}) + "xy"},
      {"write straddling",
       frame({tcp::Opcode::kWrite, 1, start - 4096, 8192}) + std::string(8192, 'x')},
      {"length overflow", frame({tcp::Opcode::kRead, 1, start, UINT64_MAX})},
      {"wrapping range", frame({tcp::Opcode::kWrite, 1, UINT64_MAX - 8, 16})},
      {"zero length", frame({tcp::Opcode::kRead, 1, start, 0})},
      {"unknown opcode",
       [&] {
         auto f = frame({tcp::Opcode::kRead, 1, start, 8});
         f[4] = 77;
         return f;
       }()},
      {"bad magic", std::string(32, 'G')},
  };
  for (const auto& [what, bytes] : hostile) {
    const int32_t status = after_hello(bytes);
    EXPECT_NE(status, 0) << what;
    EXPECT_NE(status, 3) << what;
  }
  // The session rules: nothing before HELLO, HELLO for another incarnation, AUTH where none is
  // asked for, a second HELLO.
  EXPECT_EQ(status_of(send_frame(frame({tcp::Opcode::kRead, 1, start, 8}))),
            static_cast<int32_t>(ErrorCode::INVALID_PARAMS));
  EXPECT_EQ(status_of(send_frame(frame({tcp::Opcode::kDescribe, 1, 0, 0}))),
            static_cast<int32_t>(ErrorCode::INVALID_PARAMS));
  EXPECT_EQ(status_of(send_frame(frame({tcp::Opcode::kHello, 1, target_->incarnation() + 1, 0}))),
            static_cast<int32_t>(ErrorCode::INVALID_VERSION));
  EXPECT_NE(after_hello(frame({tcp::Opcode::kAuth, 1, 0, 32}) + std::string(32, 'a')), 0);
  EXPECT_NE(after_hello(hello), 0);
  // HELLO for the right incarnation, then a valid READ: answered.
  EXPECT_EQ(status_of(send_frame(frame({tcp::Opcode::kHello, 1, target_->incarnation(), 0}),
                                 absl::Milliseconds(300))),
            0);
  EXPECT_EQ(after_hello(frame({tcp::Opcode::kRead, 1, start, 8}), absl::Milliseconds(300)), 0);
  // Truncated header, and a WRITE whose data stops half way: the connection just closes.
  EXPECT_EQ(send_frame(hello + frame({tcp::Opcode::kRead, 1, start, 8}).substr(0, 20)).size(),
            hello_reply);
  EXPECT_EQ(send_frame(hello + frame({tcp::Opcode::kWrite, 1, start, 1000}) + std::string(10, 'z'))
                .size(),
            hello_reply);
  // Nothing outside the one half-written range changed, and the server still serves.
  EXPECT_EQ(remote_.data()[remote_.size() - 1], 0xab);
  EXPECT_EQ(remote_.data()[5000], 0xab);
  Fill(local_.data(), 4096, 9);
  ASSERT_TRUE(One(TransferOp::kWrite, local_.data(), Remote(4096), 4096).ok());
  EXPECT_EQ(std::memcmp(remote_.data() + 4096, local_.data(), 4096), 0);
}

// Two engines in one process share the host and the network namespace, so memory the target
// allocated as shared is reached through shared memory, not TCP.
TEST(SharedMemoryTransportTest, SameHostPeersCopyThroughSharedMemory) {
  auto target = MakeEngine();
  auto initiator = MakeEngine();
  auto shared = target->AllocateSharedMemory(4 << 20);
  ASSERT_TRUE(shared.ok()) << shared.status();
  auto* remote = static_cast<uint8_t*>(*shared);
  ASSERT_TRUE(target->RegisterMemory(remote, 4 << 20).ok());
  std::vector<uint8_t> local(1 << 20);
  ASSERT_TRUE(initiator->RegisterMemory(local.data(), local.size()).ok());
  auto segment = initiator->OpenSegment(target->segment_name());
  ASSERT_TRUE(segment.ok()) << segment.status();
  EXPECT_EQ(initiator->TransportFor(*segment), "shm");

  const uint64_t base = reinterpret_cast<uint64_t>(remote);
  std::mt19937_64 rng(11);
  for (int i = 0; i < 50; ++i) {
    const size_t length = 1 + rng() % local.size();
    const size_t offset = rng() % ((4 << 20) - length);
    Fill(local.data(), length, i);
    auto wrote =
        initiator->Submit({{TransferOp::kWrite, local.data(), *segment, base + offset, length}})
            ->Wait();
    ASSERT_TRUE(wrote[0].ok()) << wrote[0];
    ASSERT_EQ(std::memcmp(remote + offset, local.data(), length), 0);
    std::memset(local.data(), 0, length);
    auto read =
        initiator->Submit({{TransferOp::kRead, local.data(), *segment, base + offset, length}})
            ->Wait();
    ASSERT_TRUE(read[0].ok());
    ASSERT_EQ(std::memcmp(remote + offset, local.data(), length), 0);
  }
  // Into memory the caller owns, declared so: copied as well.
  std::vector<uint8_t> own(100000);
  TransferRequest into_own{TransferOp::kRead, own.data(), *segment, base + 777, own.size()};
  into_own.local_unregistered = true;
  ASSERT_TRUE(initiator->Submit({into_own})->Wait()[0].ok());
  EXPECT_EQ(std::memcmp(own.data(), remote + 777, own.size()), 0);

  // Past the end of the shared buffer: refused without a byte copied.
  remote[(4 << 20) - 1] = 0x77;
  auto outside =
      initiator->Submit({{TransferOp::kWrite, local.data(), *segment, base + (4 << 20) - 10, 20}})
          ->Wait();
  EXPECT_EQ(ErrorCodeOf(outside[0]), ErrorCode::TRANSFER_FAIL);
  EXPECT_EQ(remote[(4 << 20) - 1], 0x77);

  // Memory freed while registered is refused; unregistered first, it goes.
  EXPECT_EQ(ErrorCodeOf(target->FreeSharedMemory(remote)), ErrorCode::INVALID_PARAMS);
  ASSERT_TRUE(target->UnregisterMemory(remote).ok());
  EXPECT_TRUE(target->FreeSharedMemory(remote).ok());
}

TEST(SharedMemoryTransportTest, DisabledShmOrPlainMemoryUsesTcp) {
  auto target = MakeEngine();
  EngineConfig no_shm = LoopbackConfig();
  no_shm.enable_shm = false;
  auto initiator = MakeEngine(no_shm);
  auto shared = target->AllocateSharedMemory(1 << 20);
  ASSERT_TRUE(shared.ok());
  ASSERT_TRUE(target->RegisterMemory(*shared, 1 << 20).ok());
  auto segment = initiator->OpenSegment(target->segment_name());
  ASSERT_TRUE(segment.ok());
  EXPECT_EQ(initiator->TransportFor(*segment), "tcp");

  auto other = MakeEngine();
  std::vector<uint8_t> plain(1 << 16);
  ASSERT_TRUE(other->RegisterMemory(plain.data(), plain.size()).ok());
  auto with_shm = MakeEngine();
  auto plain_segment = with_shm->OpenSegment(other->segment_name());
  ASSERT_TRUE(plain_segment.ok());
  EXPECT_EQ(with_shm->TransportFor(*plain_segment), "tcp");  // not shared memory: nothing to map
}

// A peer that misbehaves in the middle of a slice: it answers a READ with a header announcing the
// data, sends half of it and hangs up (or, with `silent`, sends nothing at all). It is published
// through a real metadata service under a descriptor of its own.
class BrokenPeer {
 public:
  explicit BrokenPeer(bool silent) : silent_(silent) {
    fd_ = test::ListenOnLoopback(&port_);
    EXPECT_GE(fd_, 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~BrokenPeer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  static constexpr uint64_t kIncarnation = 77;

 private:
  void Serve() {
    int c = accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    uint8_t raw[tcp::kRequestHeaderSize];
    // It opens the session properly, then misbehaves.
    if (tcp::RecvAll(c, raw, sizeof(raw)).ok()) {
      const auto hello = tcp::EncodeHelloReply(tcp::HelloReply{kIncarnation});
      const auto header = tcp::EncodeResponse(tcp::ResponseHeader{0, 0, hello.size()});
      tcp::SendAll(c, header.data(), header.size()).IgnoreError();
      tcp::SendAll(c, hello.data(), hello.size()).IgnoreError();
    }
    if (tcp::RecvAll(c, raw, sizeof(raw)).ok() && !silent_) {
      auto header = tcp::DecodeRequest(raw);
      auto response =
          tcp::EncodeResponse(tcp::ResponseHeader{0, header->request_id, header->length});
      std::string half(header->length / 2, 'h');
      tcp::SendAll(c, response.data(), response.size()).IgnoreError();
      tcp::SendAll(c, half.data(), half.size()).IgnoreError();
    }
    if (silent_) {
      pollfd pfd{fd_, POLLIN, 0};  // hold the connection until the test ends
      poll(&pfd, 1, 10000);
    }
    close(c);
  }
  bool silent_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(TransferEngineFaultTest, PeerThatHangsUpMidSliceOrNeverAnswers) {
  http::MetadataServer metadata(http::HttpServerOptions{.name = "md", .host = "127.0.0.1"}, {});
  ASSERT_TRUE(metadata.Start().ok());
  const std::string url = "http://127.0.0.1:" + std::to_string(metadata.port()) + "/metadata";
  for (bool silent : {false, true}) {
    BrokenPeer peer(silent);
    const std::string name = "127.0.0.1:" + std::to_string(peer.port());
    SegmentDescriptor fake{name,
                           BrokenPeer::kIncarnation,
                           "elsewhere",
                           "",
                           "127.0.0.1",
                           peer.port(),
                           {BufferInfo{0x100000, 1 << 20, "cpu:0"}},
                           {}};
    ASSERT_TRUE(metadata.store().Put(SegmentKey(name), EncodeDescriptor(fake)).ok());
    EngineConfig config = LoopbackConfig(url);
    config.tcp.io_timeout = absl::Milliseconds(500);
    auto engine = MakeEngine(config);
    GuardedBuffer local(64 << 10);
    std::memset(local.data(), 0x11, local.size());
    ASSERT_TRUE(engine->RegisterMemory(local.data(), local.size()).ok());
    auto segment = engine->OpenSegment(name);
    ASSERT_TRUE(segment.ok()) << segment.status();
    // Half of the second 32 KiB of the buffer is read; the bytes outside it stay as they were.
    auto statuses =
        engine->Submit({{TransferOp::kRead, local.data() + 32768, *segment, 0x100000, 16384}})
            ->Wait();
    EXPECT_EQ(ErrorCodeOf(statuses[0]), ErrorCode::TRANSFER_FAIL) << silent;
    EXPECT_EQ(local.data()[32767], 0x11);
    EXPECT_EQ(local.data()[32768 + 16384], 0x11);
  }
}

TEST(TransferEngineRestartTest, APeerThatRestartsIsPickedUpByTheNextRequest) {
  auto first = MakeEngine();
  const std::string name = first->segment_name();
  std::vector<uint8_t> old_buffer(1 << 16, 1);
  ASSERT_TRUE(first->RegisterMemory(old_buffer.data(), old_buffer.size()).ok());
  auto initiator = MakeEngine();
  std::vector<uint8_t> local(1 << 16, 7);
  ASSERT_TRUE(initiator->RegisterMemory(local.data(), local.size()).ok());
  auto segment = initiator->OpenSegment(name);
  ASSERT_TRUE(segment.ok());
  auto write = [&](uint64_t remote) {
    return initiator->Submit({{TransferOp::kWrite, local.data(), *segment, remote, 4096}})
        ->Wait()[0];
  };
  ASSERT_TRUE(write(reinterpret_cast<uint64_t>(old_buffer.data())).ok());

  // The peer restarts on the same endpoint, with its memory somewhere else.
  first.reset();
  EngineConfig same_port = LoopbackConfig();
  same_port.local_hostname = name;
  auto second = MakeEngine(same_port);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->segment_name(), name);
  std::vector<uint8_t> new_buffer(1 << 16, 2);
  ASSERT_TRUE(second->RegisterMemory(new_buffer.data(), new_buffer.size()).ok());

  // The old address is gone: refused. The failure marks the segment stale; the next request,
  // with the same segment id, finds the new buffer.
  EXPECT_EQ(ErrorCodeOf(write(reinterpret_cast<uint64_t>(old_buffer.data()))),
            ErrorCode::TRANSFER_FAIL);
  EXPECT_TRUE(write(reinterpret_cast<uint64_t>(new_buffer.data())).ok());
  EXPECT_EQ(new_buffer[0], 7);
  auto described = initiator->DescribeSegment(*segment);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->buffers.front().addr, reinterpret_cast<uint64_t>(new_buffer.data()));
}

// The peer restarts under the same name with its memory at the very same address (as it may with
// address-space randomisation off): a request made for the old incarnation must not land in the
// new one's memory, while one made for the new incarnation (or for "any") does.
TEST(TransferEngineRestartTest, RequestsForAnEndedIncarnationNeverReachItsSuccessor) {
  auto first = MakeEngine();
  const std::string name = first->segment_name();
  const uint64_t old_incarnation = first->incarnation();
  std::vector<uint8_t> memory(1 << 16, 1);
  const uint64_t address = reinterpret_cast<uint64_t>(memory.data());
  ASSERT_TRUE(first->RegisterMemory(memory.data(), memory.size()).ok());
  auto initiator = MakeEngine();
  std::vector<uint8_t> local(1 << 16, 7);
  ASSERT_TRUE(initiator->RegisterMemory(local.data(), local.size()).ok());
  auto segment = initiator->OpenSegment(name);
  ASSERT_TRUE(segment.ok());
  auto write = [&](uint64_t incarnation) {
    return initiator
        ->Submit({{TransferOp::kWrite, local.data(), *segment, address, 4096, incarnation}})
        ->Wait()[0];
  };
  ASSERT_TRUE(write(old_incarnation).ok());

  first.reset();
  EngineConfig same_port = LoopbackConfig();
  same_port.local_hostname = name;
  auto second = MakeEngine(same_port);
  ASSERT_TRUE(second);
  ASSERT_NE(second->incarnation(), old_incarnation);
  std::fill(memory.begin(), memory.end(), 2);
  ASSERT_TRUE(second->RegisterMemory(memory.data(), memory.size()).ok());

  local.assign(local.size(), 9);
  EXPECT_EQ(ErrorCodeOf(write(old_incarnation)), ErrorCode::TRANSFER_FAIL);
  EXPECT_EQ(ErrorCodeOf(write(old_incarnation)), ErrorCode::TRANSFER_FAIL);  // also once re-read
  EXPECT_EQ(memory[0], 2);
  EXPECT_TRUE(write(second->incarnation()).ok());
  EXPECT_EQ(memory[0], 9);
  EXPECT_TRUE(write(0).ok());
}

// Shared memory: a peer whose process ends has its mapping released (no longer "shm"), requests
// for it fail instead of landing in memory nobody serves, and its successor under the same name
// is mapped afresh.
TEST(SharedMemoryTransportTest, AnEndedPeerIsUnmappedAndItsSuccessorMappedAfresh) {
  auto first = MakeEngine();
  const std::string name = first->segment_name();
  auto shared = first->AllocateSharedMemory(1 << 20);
  ASSERT_TRUE(shared.ok());
  ASSERT_TRUE(first->RegisterMemory(*shared, 1 << 20).ok());
  const uint64_t old_address = reinterpret_cast<uint64_t>(*shared);
  const uint64_t old_incarnation = first->incarnation();
  auto initiator = MakeEngine();
  std::vector<uint8_t> local(4096, 5);
  ASSERT_TRUE(initiator->RegisterMemory(local.data(), local.size()).ok());
  auto segment = initiator->OpenSegment(name);
  ASSERT_TRUE(segment.ok());
  ASSERT_EQ(initiator->TransportFor(*segment), "shm");
  auto write = [&](uint64_t address, uint64_t incarnation) {
    return initiator
        ->Submit({{TransferOp::kWrite, local.data(), *segment, address, 4096, incarnation}})
        ->Wait()[0];
  };
  ASSERT_TRUE(write(old_address, old_incarnation).ok());

  first.reset();
  // The initiator notices the hang-up by itself and lets the mapping go.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (initiator->TransportFor(*segment) == "shm" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_NE(initiator->TransportFor(*segment), "shm");
  EXPECT_EQ(ErrorCodeOf(write(old_address, old_incarnation)), ErrorCode::TRANSFER_FAIL);

  EngineConfig same_port = LoopbackConfig();
  same_port.local_hostname = name;
  auto second = MakeEngine(same_port);
  ASSERT_TRUE(second);
  auto fresh = second->AllocateSharedMemory(1 << 20);
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(second->RegisterMemory(*fresh, 1 << 20).ok());
  EXPECT_EQ(ErrorCodeOf(write(old_address, old_incarnation)), ErrorCode::TRANSFER_FAIL);
  local.assign(local.size(), 6);
  ASSERT_TRUE(write(reinterpret_cast<uint64_t>(*fresh), second->incarnation()).ok());
  EXPECT_EQ(initiator->TransportFor(*segment), "shm");
  EXPECT_EQ(static_cast<uint8_t*>(*fresh)[4095], 6);
}

// With an auth token, the data port and the shared-memory socket serve only peers that prove it:
// a peer without it (or with another) is refused at the first step, one with it works.
TEST(TransferEngineAuthTest, OnlyPeersWithTheTokenReachDataAndSharedMemory) {
  const AuthToken token = *AuthToken::FromString("cluster-secret");
  EngineConfig with_token = LoopbackConfig();
  with_token.auth = token;
  auto target = MakeEngine(with_token);
  auto shared = target->AllocateSharedMemory(1 << 20);
  ASSERT_TRUE(shared.ok());
  ASSERT_TRUE(target->RegisterMemory(*shared, 1 << 20).ok());
  const uint64_t remote = reinterpret_cast<uint64_t>(*shared);

  for (std::string_view other : {"", "another-secret"}) {
    EngineConfig config = LoopbackConfig();
    config.enable_shm = false;
    if (!other.empty()) config.auth = *AuthToken::FromString(other);
    auto stranger = MakeEngine(config);
    // P2P: even the descriptor is refused.
    auto segment = stranger->OpenSegment(target->segment_name());
    ASSERT_FALSE(segment.ok());
    EXPECT_EQ(ErrorCodeOf(segment.status()), ErrorCode::ILLEGAL_CLIENT) << segment.status();
  }

  auto friendly = MakeEngine(with_token);
  std::vector<uint8_t> local(4096, 3);
  ASSERT_TRUE(friendly->RegisterMemory(local.data(), local.size()).ok());
  auto segment = friendly->OpenSegment(target->segment_name());
  ASSERT_TRUE(segment.ok()) << segment.status();
  EXPECT_EQ(friendly->TransportFor(*segment), "shm");  // the shm handshake passed
  ASSERT_TRUE(friendly->Submit({{TransferOp::kWrite, local.data(), *segment, remote, 4096}})
                  ->Wait()[0]
                  .ok());
  EXPECT_EQ(static_cast<uint8_t*>(*shared)[100], 3);

  // The shared-memory socket itself: no token or a wrong one is refused before any descriptor.
  auto described = friendly->DescribeSegment(*segment);
  ASSERT_TRUE(described.ok());
  for (std::string_view other : {"", "another-secret"}) {
    AuthToken auth = other.empty() ? AuthToken() : *AuthToken::FromString(other);
    auto session = shm::ShmSession::Open(described->shm_server, described->incarnation, auth,
                                         absl::Seconds(2));
    ASSERT_FALSE(session.ok());
    EXPECT_EQ(ErrorCodeOf(session.status()), ErrorCode::ILLEGAL_CLIENT) << session.status();
  }
  auto session =
      shm::ShmSession::Open(described->shm_server, described->incarnation, token, absl::Seconds(2));
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(ErrorCodeOf(shm::ShmSession::Open(described->shm_server, described->incarnation + 1,
                                              token, absl::Seconds(2))
                            .status()),
            ErrorCode::INVALID_VERSION);

  // Over TCP too, a peer with the token transfers.
  EngineConfig tcp_only = with_token;
  tcp_only.enable_shm = false;
  auto over_tcp = MakeEngine(tcp_only);
  ASSERT_TRUE(over_tcp->RegisterMemory(local.data(), local.size()).ok());
  auto tcp_segment = over_tcp->OpenSegment(target->segment_name());
  ASSERT_TRUE(tcp_segment.ok());
  EXPECT_EQ(over_tcp->TransportFor(*tcp_segment), "tcp");
  EXPECT_TRUE(over_tcp->Submit({{TransferOp::kRead, local.data(), *tcp_segment, remote, 4096}})
                  ->Wait()[0]
                  .ok());
}

}  // namespace
}  // namespace mooncake::engine
