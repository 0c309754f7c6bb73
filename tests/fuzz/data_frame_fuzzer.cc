// libFuzzer target: raw bytes as one connection to a transfer engine's TCP data server, served by
// the real per-connection code over a socketpair. The server's only registered buffer sits at a
// fixed address between two inaccessible pages, so seeds can aim requests at it and any touch
// outside it crashes the run. With an auth token on, nothing but HELLO and AUTH must be answered.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/auth.h"
#include "engine/buffer_registry.h"
#include "engine/tcp/tcp_data_server.h"
#include "engine/tcp/tcp_protocol.h"

namespace {

constexpr uint64_t kBufferAddress = 0x500000000000;  // seeds aim here (clear of ASan's shadow)
constexpr uint64_t kBufferSize = 1 << 20;
constexpr uint64_t kPage = 4096;

struct Target {
  Target() {
    void* span = mmap(reinterpret_cast<void*>(kBufferAddress - kPage), kBufferSize + 2 * kPage,
                      PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (span == MAP_FAILED ||
        mprotect(reinterpret_cast<void*>(kBufferAddress), kBufferSize, PROT_READ | PROT_WRITE)) {
      std::perror("data_frame_fuzzer: cannot map the guarded buffer");
      std::abort();
    }
    if (!registry.Register(kBufferAddress, kBufferSize, "cpu:0").ok()) std::abort();
    mooncake::engine::tcp::TcpDataServerOptions options;
    options.incarnation = 42;
    open = std::make_unique<mooncake::engine::tcp::TcpDataServer>(
        &registry, [] { return std::string("{\"name\":\"fuzz\"}"); }, options);
    options.auth = *mooncake::AuthToken::FromString("fuzz-token");
    authenticated = std::make_unique<mooncake::engine::tcp::TcpDataServer>(
        &registry, [] { return std::string("{}"); }, options);
  }
  mooncake::engine::BufferRegistry registry;
  std::unique_ptr<mooncake::engine::tcp::TcpDataServer> open, authenticated;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Target* target = new Target();
  if (size == 0) return 0;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  // The peer's side: send everything, then read (and drop) whatever comes back.
  std::thread peer([&] {
    size_t sent = 1;  // the first byte picks the server
    while (sent < size) {
      const ssize_t n = send(fds[0], data + sent, size - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    shutdown(fds[0], SHUT_WR);
    char sink[65536];
    while (read(fds[0], sink, sizeof(sink)) > 0) {
    }
  });
  (data[0] & 1 ? target->authenticated : target->open)->ServeSocket(fds[1]);
  shutdown(fds[1], SHUT_RDWR);
  peer.join();
  close(fds[0]);
  close(fds[1]);
  return 0;
}
