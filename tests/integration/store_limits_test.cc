// Resource bounds of a real store process (DESIGN.md §9). Finding: one thread per data
// connection, no cap, no idle timeout: 1,500 idle connections gave a store 1,505 threads and
// 12.8 GB of address space, and under a memory limit it died after about 400 connections.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "engine/tcp/tcp_protocol.h"
#include "integration/cluster_fixture.h"
#include "support/raw_socket.h"

namespace mooncake {
namespace {

// A field of /proc/<pid>/status ("Threads", "VmRSS" in kB, ...), or -1.
long StatusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

class StoreLimitsTest : public StoreClusterTest {
 protected:
  void SetUp() override {
    // This process holds the 10,000 client ends.
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max < 10500) GTEST_SKIP() << "the descriptor limit is below 10,500";
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    StoreClusterTest::SetUp();
  }
};

TEST_F(StoreLimitsTest, TenThousandIdleDataConnectionsUnderAMemoryLimit) {
#ifdef MOONCAKE_SANITIZED
  GTEST_SKIP() << "sanitizers reserve terabytes of address space: no address-space limit applies";
#endif
  StopStores();
  // 2 GiB of address space: a thread per connection (8 MiB of stack each) died at ~250.
  StartStore(0, 64 * kMiB, "127.0.0.1", {"/usr/bin/prlimit", "--as=2147483648", "--"});
  auto client = MakeClient(/*shm=*/false);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitForSegments(*client, 1));
  absl::StatusOr<std::vector<client::SegmentInfo>> segments = client->ListSegments();
  ASSERT_TRUE(segments.ok());
  const std::string& name = (*segments)[0].name;
  const int port = std::stoi(name.substr(name.rfind(':') + 1));
  const pid_t store = stores_[0]->pid();
  const long rss_before = StatusField(store, "VmRSS");

  std::vector<std::unique_ptr<test::RawSocket>> sockets;
  const auto hello = engine::tcp::EncodeRequest({engine::tcp::Opcode::kHello, 1, 0, 0});
  for (int i = 0; i < 10000; ++i) {
    sockets.push_back(std::make_unique<test::RawSocket>(port));
    ASSERT_TRUE(sockets.back()->connected()) << "connection " << i;
    const int fd = sockets.back()->fd();
    // Every tenth one opens a session and then idles; the others say nothing.
    if (i % 10 == 0) {
      ASSERT_EQ(send(fd, hello.data(), hello.size(), 0), ssize_t(hello.size()));
    }
  }
  // The store accepted them all (each session opened got its HELLO answer) ...
  for (size_t i = 0; i < sockets.size(); i += 10) {
    uint8_t reply[engine::tcp::kResponseHeaderSize + engine::tcp::kHelloReplySize];
    size_t got = 0;
    while (got < sizeof(reply)) {
      const ssize_t n = recv(sockets[i]->fd(), reply + got, sizeof(reply) - got, 0);
      ASSERT_GT(n, 0) << "connection " << i;
      got += static_cast<size_t>(n);
    }
  }
  const long threads = StatusField(store, "Threads");
  const long rss = StatusField(store, "VmRSS");
  const long vm = StatusField(store, "VmSize");
  std::printf(
      "store with 10,000 idle data connections: %ld threads, RSS %ld KiB (%+ld KiB), "
      "address space %ld KiB\n",
      threads, rss, rss - rss_before, vm);
  EXPECT_LT(threads, 100);
  EXPECT_LT(rss - rss_before, 256 * 1024);  // well under 26 KiB a connection
  // ... and still serves a client.
  ASSERT_TRUE(client->Put("under_load", std::string(1 << 20, 'u')).ok());
  EXPECT_EQ(*client->Get("under_load"), std::string(1 << 20, 'u'));
  EXPECT_FALSE(stores_[0]->Wait(absl::ZeroDuration()).has_value()) << "the store died";
}

}  // namespace
}  // namespace mooncake
