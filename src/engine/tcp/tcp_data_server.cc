#include "engine/tcp/tcp_data_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "common/error_code.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/strings.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_protocol.h"

namespace mooncake::engine::tcp {
namespace {

constexpr uint64_t kStopEvent = 0;
constexpr uint64_t kListenEvent = 1;
constexpr char kAuthPurpose[] = "data";

// What the data servers of this process served, for its /metrics. Shared memory and RDMA
// transfers never reach a server (the peer reads or writes the segment itself): their bytes
// are counted by the clients that make them.
struct ServerMetrics {
  struct Op {
    Counter* requests;
    Counter* bytes;
    Histogram* duration;
  };
  Op read, write;
  Counter* accepted;
  Gauge* connections;
  Counter* refused_busy;
  Counter* refused_malformed;
  Counter* refused_auth;
  Counter* refused_protocol;
  Counter* refused_range;
  Counter* refused_version;
};

ServerMetrics& Metrics() {
  static ServerMetrics metrics = [] {
    MetricsRegistry& registry = MetricsRegistry::Default();
    auto op = [&](const char* name) {
      const MetricLabels labels = {{"op", name}};
      return ServerMetrics::Op{
          &registry.GetCounter("mooncake_transfer_served_requests_total",
                               "READ and WRITE requests served over TCP", labels),
          &registry.GetCounter("mooncake_transfer_served_bytes_total",
                               "Bytes read or written for TCP peers", labels),
          &registry.GetHistogram("mooncake_transfer_served_duration_seconds",
                                 "Time to serve a TCP request, from its header to its answer",
                                 labels, MetricsRegistry::LatencyBuckets())};
    };
    auto refused = [&](const char* reason) {
      return &registry.GetCounter("mooncake_transfer_refused_requests_total",
                                  "TCP requests and connections refused, by reason",
                                  {{"reason", reason}});
    };
    ServerMetrics m;
    m.read = op("read");
    m.write = op("write");
    m.accepted = &registry.GetCounter("mooncake_transfer_accepted_connections_total",
                                      "TCP connections accepted by the data servers");
    m.connections = &registry.GetGauge("mooncake_transfer_connections",
                                       "TCP connections the data servers hold open");
    m.refused_busy = refused("too_many_connections");
    m.refused_malformed = refused("malformed");
    m.refused_auth = refused("authentication");
    m.refused_protocol = refused("protocol");
    m.refused_range = refused("out_of_range");
    m.refused_version = refused("incarnation");
    return m;
  }();
  return metrics;
}

// Sends an error response carrying `status`'s code and message.
void SendError(int fd, uint64_t request_id, const absl::Status& status) {
  const std::string message(status.message());
  const auto header = EncodeResponse(
      ResponseHeader{static_cast<int32_t>(ErrorCodeOf(status)), request_id, message.size()});
  iovec iov[2] = {{const_cast<uint8_t*>(header.data()), header.size()},
                  {const_cast<char*>(message.data()), message.size()}};
  SendAll(fd, iov, 2).IgnoreError();
}

absl::Status SendPayload(int fd, uint64_t request_id, const void* data, size_t length) {
  const auto response = EncodeResponse(ResponseHeader{0, request_id, length});
  iovec iov[2] = {{const_cast<uint8_t*>(response.data()), response.size()},
                  {const_cast<void*>(data), length}};
  return SendAll(fd, iov, length == 0 ? 1 : 2);
}

absl::StatusOr<int> Listen(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty() || host == "0.0.0.0") {
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("data server address '{}' is not an IPv4 address", host));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // A backlog for thousands of clients connecting at once (the kernel caps it at somaxconn).
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 4096) != 0) {
    const int err = errno;
    close(fd);
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("cannot listen on {}:{}: {}", host, port, std::strerror(err)));
  }
  return fd;
}

// How many connections the descriptor limit leaves room for, keeping some for everything else.
size_t DescriptorBudget() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  return limit.rlim_cur > 256 ? static_cast<size_t>(limit.rlim_cur) - 128 : 64;
}

}  // namespace

struct TcpDataServer::Connection {
  int fd = -1;
  enum class Stage : uint8_t { kHello, kAuth, kReady } stage = Stage::kHello;
  bool serving = false;  // a worker has it; the idle sweep leaves it alone
  absl::Time last_active;
  AuthNonce nonce{};
};

TcpDataServer::TcpDataServer(const BufferRegistry* registry, std::function<std::string()> describe,
                             TcpDataServerOptions options, HandshakeHandler handshake)
    : registry_(registry),
      describe_(std::move(describe)),
      handshake_(std::move(handshake)),
      options_(std::move(options)) {
  Metrics();  // every series at 0 from the start
}

TcpDataServer::~TcpDataServer() { Stop(); }

absl::Status TcpDataServer::Start(const std::string& host, int port, int first_port,
                                  int last_port) {
  absl::StatusOr<int> fd = MakeError(ErrorCode::TRANSFER_FAIL, "no port tried");
  if (port != 0 || first_port == 0) {
    fd = Listen(host, port);
  } else {
    for (int p = first_port; p <= last_port; ++p) {
      fd = Listen(host, p);
      if (fd.ok()) break;
    }
    if (!fd.ok()) {
      return MakeError(ErrorCode::TRANSFER_FAIL,
                       fmt::format("no free port in {}-{} on {}", first_port, last_port, host));
    }
  }
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.sin_port);
  max_connections_ = std::min(options_.max_connections, DescriptorBudget());

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event stop{};
  stop.events = EPOLLIN;  // level-triggered: wakes every worker once set
  stop.data.u64 = kStopEvent;
  epoll_event listen{};
  listen.events = EPOLLIN | EPOLLONESHOT;
  listen.data.u64 = kListenEvent;
  if (epoll_fd_ < 0 || stop_fd_ < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &stop) != 0 ||
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &listen) != 0) {
    const int err = errno;
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("data server: cannot set up epoll: {}", std::strerror(err)));
  }
  absl::MutexLock lock(&mu_);
  MaybeGrowLocked();
  if (workers_.empty()) {
    return MakeError(ErrorCode::INTERNAL_ERROR, "data server: cannot start a thread");
  }
  return absl::OkStatus();
}

void TcpDataServer::Stop() {
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mu_);
    if (workers_.empty() || stopping_.load()) return;
    stopping_.store(true);
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    // Wakes workers blocked inside a request; descriptors are closed only after they left.
    for (auto& [id, connection] : connections_) shutdown(connection->fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (std::thread& worker : workers) worker.join();
  absl::MutexLock lock(&mu_);
  for (auto& [id, connection] : connections_) close(connection->fd);
  Metrics().connections->Add(-static_cast<int64_t>(connections_.size()));
  connections_.clear();
  close(listen_fd_);
  close(epoll_fd_);
  close(stop_fd_);
}

size_t TcpDataServer::connections() const {
  absl::MutexLock lock(&mu_);
  return connections_.size();
}

size_t TcpDataServer::workers() const {
  absl::MutexLock lock(&mu_);
  return workers_.size();
}

void TcpDataServer::MaybeGrowLocked() {
  if (waiting_ > 0 || workers_.size() >= std::max<size_t>(options_.max_workers, 1) ||
      stopping_.load()) {
    return;
  }
  try {
    workers_.emplace_back([this] { WorkerLoop(); });
  } catch (const std::system_error& e) {
    // The pool stays as it is; connections wait for a free worker.
    spdlog::warn("data server: cannot start another worker ({} running): {}", workers_.size(),
                 e.what());
  }
}

void TcpDataServer::WorkerLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      ++waiting_;
    }
    epoll_event event{};
    const int n = epoll_wait(epoll_fd_, &event, 1, 1000);
    uint64_t id = kStopEvent;
    Connection* connection = nullptr;
    {
      absl::MutexLock lock(&mu_);
      --waiting_;
      if (stopping_.load()) return;
      const absl::Time now = absl::Now();
      if (now >= next_sweep_) {
        next_sweep_ = now + std::min(absl::Seconds(1), options_.idle_timeout);
        CloseIdleLocked(now);
      }
      if (n <= 0) continue;
      id = event.data.u64;
      if (id == kStopEvent) return;
      // This worker is about to be busy: keep one waiting for the others.
      MaybeGrowLocked();
      if (id != kListenEvent) {
        auto it = connections_.find(id);
        if (it == connections_.end()) continue;  // closed since the event fired
        connection = it->second.get();
        connection->serving = true;
      }
    }
    if (id == kListenEvent) {
      AcceptAll();
      continue;
    }
    const bool keep = Serve(*connection);
    absl::MutexLock lock(&mu_);
    connection->serving = false;
    connection->last_active = absl::Now();
    if (!keep || stopping_.load()) {
      Close(id);
      continue;
    }
    epoll_event again{};
    again.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    again.data.u64 = id;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, connection->fd, &again) != 0) Close(id);
  }
}

void TcpDataServer::AcceptAll() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        spdlog::warn("data server: out of file descriptors; new connections wait");
        usleep(10000);  // let some connections close first
      }
      break;  // EAGAIN: none left; anything else: try again on the next event
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SetIoTimeout(fd, options_.io_timeout);
    absl::MutexLock lock(&mu_);
    if (connections_.size() >= max_connections_ || stopping_.load()) {
      Metrics().refused_busy->Increment();
      SendError(fd, 0,
                MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                          fmt::format("the data server holds its maximum of {} connections",
                                      max_connections_)));
      close(fd);
      continue;
    }
    const uint64_t id = next_id_++;
    auto connection = std::make_unique<Connection>();
    connection->fd = fd;
    connection->last_active = absl::Now();
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    event.data.u64 = id;
    connections_.emplace(id, std::move(connection));
    Metrics().accepted->Increment();
    Metrics().connections->Add(1);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) Close(id);
  }
  epoll_event listen{};
  listen.events = EPOLLIN | EPOLLONESHOT;
  listen.data.u64 = kListenEvent;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &listen);
}

void TcpDataServer::Close(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second->fd, nullptr);
  shutdown(it->second->fd, SHUT_RDWR);
  close(it->second->fd);
  connections_.erase(it);
  Metrics().connections->Add(-1);
}

void TcpDataServer::CloseIdleLocked(absl::Time now) {
  std::vector<uint64_t> idle;
  for (const auto& [id, connection] : connections_) {
    if (!connection->serving && now - connection->last_active >= options_.idle_timeout) {
      idle.push_back(id);
    }
  }
  for (uint64_t id : idle) Close(id);
}

void TcpDataServer::ServeSocket(int fd) {
  Connection connection;
  connection.fd = fd;
  while (ServeOne(connection)) {
  }
}

bool TcpDataServer::Serve(Connection& connection) {
  for (;;) {
    if (!ServeOne(connection)) return false;
    // Another request already waiting: serve it now rather than through the epoll set.
    char byte;
    const ssize_t n = recv(connection.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;  // the peer closed
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
}

bool TcpDataServer::Greet(Connection& connection, uint64_t request_id,
                          uint64_t expected_incarnation) {
  if (expected_incarnation != 0 && expected_incarnation != options_.incarnation) {
    Metrics().refused_version->Increment();
    SendError(connection.fd, request_id,
              MakeError(ErrorCode::INVALID_VERSION,
                        fmt::format("this data endpoint is incarnation {:016x}, not {:016x}: the "
                                    "process restarted since that view of it was taken",
                                    options_.incarnation, expected_incarnation)));
    return false;
  }
  HelloReply reply;
  reply.incarnation = options_.incarnation;
  reply.auth_required = options_.auth.enabled();
  if (reply.auth_required) {
    connection.nonce = RandomNonce();
    std::memcpy(reply.nonce.data(), connection.nonce.data(), kNonceSize);
  }
  connection.stage = reply.auth_required ? Connection::Stage::kAuth : Connection::Stage::kReady;
  const auto payload = EncodeHelloReply(reply);
  return SendPayload(connection.fd, request_id, payload.data(), payload.size()).ok();
}

bool TcpDataServer::ServeOne(Connection& connection) {
  const int fd = connection.fd;
  uint8_t raw[kRequestHeaderSize];
  if (!RecvAll(fd, raw, sizeof(raw)).ok()) return false;  // closed, truncated or too slow
  absl::StatusOr<RequestHeader> header = DecodeRequest(raw);
  if (!header.ok()) {
    Metrics().refused_malformed->Increment();
    SendError(fd, 0, header.status());
    return false;
  }
  const uint64_t id = header->request_id;
  // Nothing is answered before HELLO (and AUTH, when required) succeeded.
  if (connection.stage == Connection::Stage::kHello) {
    if (header->opcode != Opcode::kHello) {
      Metrics().refused_protocol->Increment();
      SendError(fd, id, MakeError(ErrorCode::INVALID_PARAMS, "a connection must open with HELLO"));
      return false;
    }
    return Greet(connection, id, header->remote_addr);
  }
  if (connection.stage == Connection::Stage::kAuth) {
    if (header->opcode != Opcode::kAuth) {
      Metrics().refused_auth->Increment();
      SendError(fd, id,
                MakeError(ErrorCode::ILLEGAL_CLIENT,
                          "this data endpoint requires authentication (AUTH after HELLO)"));
      return false;
    }
    uint8_t proof[kAuthProofSize];
    if (!RecvAll(fd, proof, sizeof(proof)).ok()) return false;
    if (!options_.auth.Verify(kAuthPurpose, connection.nonce, proof)) {
      Metrics().refused_auth->Increment();
      SendError(fd, id, MakeError(ErrorCode::ILLEGAL_CLIENT, "authentication failed: wrong token"));
      return false;
    }
    connection.stage = Connection::Stage::kReady;
    return SendPayload(fd, id, nullptr, 0).ok();
  }
  switch (header->opcode) {
    case Opcode::kHello:
    case Opcode::kAuth:
      Metrics().refused_protocol->Increment();
      SendError(fd, id, MakeError(ErrorCode::INVALID_PARAMS, "HELLO and AUTH come only first"));
      return false;
    case Opcode::kHandshake: {
      std::string request(header->length, '\0');
      if (!RecvAll(fd, request.data(), request.size()).ok()) return false;
      absl::StatusOr<std::string> answer =
          handshake_ ? handshake_(request)
                     : MakeError(ErrorCode::NOT_SUPPORTED, "this endpoint offers no RDMA");
      if (!answer.ok()) {
        SendError(fd, id, answer.status());
        return false;
      }
      return SendPayload(fd, id, answer->data(), answer->size()).ok();
    }
    case Opcode::kDescribe: {
      const std::string descriptor = describe_();
      return SendPayload(fd, id, descriptor.data(), descriptor.size()).ok();
    }
    case Opcode::kRead:
    case Opcode::kWrite:
      break;
  }
  const bool is_read = header->opcode == Opcode::kRead;
  if (!registry_->Contains(header->remote_addr, header->length)) {
    Metrics().refused_range->Increment();
    SendError(fd, id,
              MakeError(is_read ? ErrorCode::INVALID_READ : ErrorCode::INVALID_WRITE,
                        fmt::format("[{:#x}, +{}) is not inside a registered buffer",
                                    header->remote_addr, header->length)));
    return false;  // after a refused WRITE its data would follow: the stream is unusable
  }
  const absl::Time start = absl::Now();
  void* memory = reinterpret_cast<void*>(header->remote_addr);
  bool served = false;
  if (is_read) {
    served = SendPayload(fd, id, memory, header->length).ok();
  } else {
    served = RecvAll(fd, memory, header->length).ok() && SendPayload(fd, id, nullptr, 0).ok();
  }
  if (served) {
    const ServerMetrics::Op& op = is_read ? Metrics().read : Metrics().write;
    op.requests->Increment();
    op.bytes->Increment(header->length);
    op.duration->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  return served;
}

}  // namespace mooncake::engine::tcp
