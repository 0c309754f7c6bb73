// The latency floor of this machine's loopback: a blocking request/response ping-pong between two
// processes, no mooncake code involved. By default with the sizes of a 4 KiB READ (32-byte
// request, 24-byte header + 4096 bytes back; scripts/bench-transfer.sh); scripts/bench-control.sh
// passes those of a control-plane batch call.
//   loopback_pingpong [ROUNDS [REQUEST_BYTES RESPONSE_BYTES]]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

bool RecvExactly(int fd, char* p, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = recv(fd, p + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 40000;
  const size_t kRequest = argc > 3 ? std::strtoul(argv[2], nullptr, 10) : 32;
  const size_t kResponse = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 24 + 4096;
  if (rounds <= 0 || kRequest == 0 || kResponse == 0) {
    std::fprintf(stderr, "usage: loopback_pingpong [ROUNDS [REQUEST_BYTES RESPONSE_BYTES]]\n");
    return 2;
  }
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("listen");
    return 1;
  }
  const int one = 1;
  const pid_t server = fork();
  if (server == 0) {
    int fd = accept(listener, nullptr, nullptr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::vector<char> request(kRequest), response(kResponse);
    while (RecvExactly(fd, request.data(), kRequest)) send(fd, response.data(), kResponse, 0);
    _exit(0);
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("connect");
    return 1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::vector<char> request(kRequest), response(kResponse);
  std::vector<double> micros;
  micros.reserve(rounds);
  for (int i = 0; i < rounds; ++i) {
    const auto begin = std::chrono::steady_clock::now();
    send(fd, request.data(), kRequest, 0);
    if (!RecvExactly(fd, response.data(), kResponse)) return 1;
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin)
            .count());
  }
  close(fd);
  waitpid(server, nullptr, 0);
  std::sort(micros.begin(), micros.end());
  std::printf(
      "{\"bench\": \"loopback_pingpong\", \"request_bytes\": %zu, \"response_bytes\": %zu, "
      "\"p50_us\": %.1f, \"p99_us\": %.1f}\n",
      kRequest, kResponse, micros[micros.size() / 2], micros[micros.size() * 99 / 100]);
  return 0;
}
