#include "engine/tcp/tcp_transport.h"

#include <unistd.h>

#include <algorithm>

#include "common/error_code.h"
#include "common/strings.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_protocol.h"

namespace mooncake::engine::tcp {
namespace {

// Only requests this small wait for their answer by spinning; larger ones take long enough that
// sleeping costs nothing.
constexpr uint64_t kSpinMaxLength = 64u << 10;

}  // namespace

class TcpTransport::Peer {
 public:
  Peer(std::string endpoint, const TcpTransportOptions& options,
       const std::function<void(const std::string&)>& on_failure)
      : endpoint_(std::move(endpoint)), options_(options), on_failure_(on_failure) {}

  ~Peer() {
    std::deque<Slice> left;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      left.swap(queue_);
    }
    for (std::thread& worker : workers_) worker.join();
    for (const DataConnection& c : idle_) close(c.fd);
    for (Slice& slice : left) {
      slice.batch->CompleteSlice(slice.index,
                                 MakeError(ErrorCode::TRANSFER_FAIL, "transfer engine stopped"));
    }
  }

  void Enqueue(std::vector<Slice> slices) {
    absl::MutexLock lock(&mu_);
    for (Slice& slice : slices) queue_.push_back(std::move(slice));
    // One more worker while there is more queued work than workers, up to the connection limit.
    while (workers_.size() < options_.connections_per_peer && workers_.size() < queue_.size()) {
      workers_.emplace_back([this] { Work(); });
    }
  }

  // Runs one slice in the calling thread: no handoff to a worker and back.
  // The caller waits for it anyway, so a small one may spin for its answer (options.spin).
  void RunInline(const Slice& slice) { Execute(slice, /*may_spin=*/true); }

 private:
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  void Work() {
    for (;;) {
      Slice slice;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Peer::HasWorkLocked));
        if (stopping_) return;
        slice = std::move(queue_.front());
        queue_.pop_front();
      }
      Execute(slice, /*may_spin=*/false);  // workers sleep: they share the CPUs with the peer
    }
  }

  // Runs a slice on an idle connection (or a new one) and completes it.
  void Execute(const Slice& slice, bool may_spin) {
    DataConnection connection = AcquireConnection(slice.incarnation);
    const absl::Duration spin =
        may_spin && slice.length <= kSpinMaxLength ? options_.spin : absl::ZeroDuration();
    absl::Status status = Run(connection, slice, spin);
    if (status.ok()) {
      ReleaseConnection(connection);
    } else {
      if (connection.fd >= 0) close(connection.fd);  // the stream's state is unknown now
      if (on_failure_) on_failure_(endpoint_);
    }
    slice.batch->CompleteSlice(slice.index, status);
  }

  // An idle connection to the server `incarnation` names (0: any), or none (fd -1). Connections
  // to another incarnation are closed: that process is gone.
  DataConnection AcquireConnection(uint64_t incarnation) {
    absl::MutexLock lock(&mu_);
    while (!idle_.empty()) {
      const DataConnection c = idle_.back();
      idle_.pop_back();
      if (incarnation == 0 || c.incarnation == incarnation) return c;
      close(c.fd);
    }
    return DataConnection{};
  }

  void ReleaseConnection(const DataConnection& connection) {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && idle_.size() < options_.connections_per_peer) {
      idle_.push_back(connection);
    } else {
      close(connection.fd);
    }
  }

  absl::Status Run(DataConnection& connection, const Slice& slice, absl::Duration spin) {
    const bool reused = connection.fd >= 0;
    absl::Status status = RunOnce(connection, slice, spin);
    if (!status.ok() && reused && connection.fd >= 0 &&
        ErrorCodeOf(status) == ErrorCode::TRANSFER_FAIL) {
      // The server may have closed the idle connection: one more try on a new one (a slice is
      // idempotent: the same bytes to the same place). A new connection checks the incarnation.
      close(connection.fd);
      connection.fd = -1;
      status = RunOnce(connection, slice, spin);
    }
    return status;
  }

  absl::Status RunOnce(DataConnection& connection, const Slice& slice, absl::Duration spin) {
    if (connection.fd < 0) {
      absl::StatusOr<DataConnection> opened =
          OpenDataConnection(endpoint_, slice.incarnation, options_);
      if (!opened.ok()) {
        return MakeError(ErrorCode::TRANSFER_FAIL, AsStd(opened.status().message()));
      }
      connection = *opened;
    }
    const int fd = connection.fd;
    absl::Status status = Exchange(fd, slice, spin);
    if (status.ok()) return status;
    // A peer that refuses a request answers with its own code (INVALID_READ, ...); either way the
    // request failed as a transfer, and the message says why.
    const bool refused = ErrorCodeOf(status) != ErrorCode::TRANSFER_FAIL;
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("{}{}: {}", endpoint_, refused ? " refused the request" : "",
                                 status.message()));
  }

  // One request and its response on `fd`.
  absl::Status Exchange(int fd, const Slice& slice, absl::Duration spin) {
    const uint64_t id = next_id_.fetch_add(1);
    const bool write = slice.op == TransferOp::kWrite;
    const auto header = EncodeRequest(
        RequestHeader{write ? Opcode::kWrite : Opcode::kRead, id, slice.remote, slice.length});
    iovec iov[2] = {{const_cast<uint8_t*>(header.data()), header.size()},
                    {reinterpret_cast<void*>(slice.local), slice.length}};
    if (absl::Status sent = SendAll(fd, iov, write ? 2 : 1); !sent.ok()) return sent;
    // A READ's response header and data arrive in one receive, straight into place. An error
    // response is shorter (the server closes after it), so a short read is not yet a failure.
    uint8_t raw[kResponseHeaderSize];
    iovec in[2] = {{raw, sizeof(raw)}, {reinterpret_cast<void*>(slice.local), slice.length}};
    absl::StatusOr<size_t> got = RecvVector(fd, in, write ? 1 : 2, sizeof(raw), spin);
    if (!got.ok()) return got.status();
    absl::StatusOr<ResponseHeader> response = DecodeResponse(raw);
    if (!response.ok())
      return MakeError(ErrorCode::TRANSFER_FAIL, AsStd(response.status().message()));
    if (response->status != 0) {
      // The message follows the header; for a READ part of it may already sit in the local buffer.
      const size_t in_buffer = std::min<size_t>(*got - sizeof(raw), response->length);
      std::string message(reinterpret_cast<const char*>(slice.local), write ? 0 : in_buffer);
      std::string rest(std::min<uint64_t>(response->length - message.size(), kMaxResponseMetadata),
                       '\0');
      RecvAll(fd, rest.data(), rest.size()).IgnoreError();
      message += rest;
      const auto code = IsKnownErrorCode(response->status)
                            ? static_cast<ErrorCode>(response->status)
                            : ErrorCode::TRANSFER_FAIL;
      return MakeError(code == ErrorCode::OK ? ErrorCode::TRANSFER_FAIL : code, message);
    }
    if (response->request_id != id) {
      return MakeError(ErrorCode::TRANSFER_FAIL, "response to another request");
    }
    const uint64_t expected = write ? 0 : slice.length;
    if (response->length != expected || *got != sizeof(raw) + expected) {
      return MakeError(
          ErrorCode::TRANSFER_FAIL,
          fmt::format("response carries {} bytes, expected {}", response->length, expected));
    }
    return absl::OkStatus();
  }

  const std::string endpoint_;
  const TcpTransportOptions& options_;
  const std::function<void(const std::string&)>& on_failure_;
  std::atomic<uint64_t> next_id_{1};
  absl::Mutex mu_;
  std::deque<Slice> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<DataConnection> idle_ ABSL_GUARDED_BY(mu_);  // open sessions not in use
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;  // started under mu_, joined in the destructor
};

namespace {

// One control request (HELLO, AUTH, DESCRIBE, HANDSHAKE) and its answer on `fd`; returns the
// answer's payload. The peer's own code when it refuses, TRANSFER_FAIL when it does not answer.
absl::StatusOr<std::string> CallOn(int fd, const std::string& endpoint, Opcode opcode,
                                   uint64_t address, std::string_view payload) {
  const auto request = EncodeRequest(RequestHeader{opcode, 0, address, payload.size()});
  iovec iov[2] = {{const_cast<uint8_t*>(request.data()), request.size()},
                  {const_cast<char*>(payload.data()), payload.size()}};
  uint8_t raw[kResponseHeaderSize];
  absl::Status status = SendAll(fd, iov, payload.empty() ? 1 : 2);
  if (status.ok()) status = RecvAll(fd, raw, sizeof(raw));
  if (!status.ok()) {
    return MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("{}: {}", endpoint, status.message()));
  }
  absl::StatusOr<ResponseHeader> header = DecodeResponse(raw);
  if (!header.ok() || header->length > kMaxResponseMetadata) {
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("{} sent a malformed response", endpoint));
  }
  std::string body(header->length, '\0');
  if (absl::Status s = RecvAll(fd, body.data(), body.size()); !s.ok()) {
    return MakeError(ErrorCode::TRANSFER_FAIL, fmt::format("{}: {}", endpoint, s.message()));
  }
  if (header->status != 0) {
    const auto code = IsKnownErrorCode(header->status) ? static_cast<ErrorCode>(header->status)
                                                       : ErrorCode::TRANSFER_FAIL;
    return MakeError(code == ErrorCode::OK ? ErrorCode::TRANSFER_FAIL : code,
                     fmt::format("{}: {}", endpoint, body));
  }
  return body;
}

}  // namespace

absl::StatusOr<DataConnection> OpenDataConnection(const std::string& endpoint,
                                                  uint64_t expected_incarnation,
                                                  const TcpTransportOptions& options) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(endpoint, &host, &port); !s.ok()) return s;
  absl::StatusOr<int> fd = ConnectTo(host, port, options.connect_timeout);
  if (!fd.ok()) return fd.status();
  SetIoTimeout(*fd, options.io_timeout);
  auto opened = [&]() -> absl::StatusOr<DataConnection> {
    absl::StatusOr<std::string> hello =
        CallOn(*fd, endpoint, Opcode::kHello, expected_incarnation, {});
    if (!hello.ok()) return hello.status();
    if (hello->size() != kHelloReplySize) {
      return MakeError(ErrorCode::TRANSFER_FAIL,
                       fmt::format("{} answered HELLO with {} bytes", endpoint, hello->size()));
    }
    absl::StatusOr<HelloReply> reply =
        DecodeHelloReply(reinterpret_cast<const uint8_t*>(hello->data()));
    if (!reply.ok()) {
      return MakeError(ErrorCode::TRANSFER_FAIL,
                       fmt::format("{}: {}", endpoint, reply.status().message()));
    }
    if (reply->auth_required) {
      if (!options.auth.enabled()) {
        return MakeError(ErrorCode::ILLEGAL_CLIENT,
                         fmt::format("{} requires an auth token and this process has none "
                                     "(--auth-token-file, auth_token_file or MOONCAKE_AUTH_TOKEN)",
                                     endpoint));
      }
      const AuthProof proof = options.auth.Prove("data", reply->nonce);
      absl::StatusOr<std::string> auth =
          CallOn(*fd, endpoint, Opcode::kAuth, 0,
                 std::string_view(reinterpret_cast<const char*>(proof.data()), proof.size()));
      if (!auth.ok()) return auth.status();
    }
    return DataConnection{*fd, reply->incarnation};
  };
  absl::StatusOr<DataConnection> connection = opened();
  if (!connection.ok()) close(*fd);
  return connection;
}

absl::StatusOr<std::string> CallPeer(const std::string& endpoint, uint8_t opcode,
                                     std::string_view payload, const TcpTransportOptions& options,
                                     uint64_t expected_incarnation) {
  absl::StatusOr<DataConnection> connection =
      OpenDataConnection(endpoint, expected_incarnation, options);
  if (!connection.ok()) return connection.status();
  absl::StatusOr<std::string> answer =
      CallOn(connection->fd, endpoint, static_cast<Opcode>(opcode), 0, payload);
  close(connection->fd);
  return answer;
}

TcpTransport::TcpTransport(TcpTransportOptions options,
                           std::function<void(const std::string&)> on_failure)
    : options_(options), on_failure_(std::move(on_failure)) {}

TcpTransport::~TcpTransport() {
  absl::MutexLock lock(&mu_);
  peers_.clear();
}

TcpTransport::Peer& TcpTransport::PeerFor(const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Peer>& peer = peers_[endpoint];
  if (!peer) peer = std::make_unique<Peer>(endpoint, options_, on_failure_);
  return *peer;
}

void TcpTransport::Submit(const std::string& endpoint, uint64_t incarnation, TransferOp op,
                          uint64_t local, uint64_t remote, uint64_t length,
                          const std::shared_ptr<TransferBatch>& batch, size_t index,
                          bool may_run_inline) {
  const uint64_t slice_size = std::max<uint64_t>(options_.slice_size, 4096);
  std::vector<Slice> slices;
  for (uint64_t offset = 0; offset < length; offset += slice_size) {
    const uint64_t n = std::min(slice_size, length - offset);
    slices.push_back(Slice{op, local + offset, remote + offset, n, batch, index, incarnation});
  }
  batch->AddSlices(index, slices.size());
  Peer& peer = PeerFor(endpoint);
  if (may_run_inline && slices.size() == 1) {
    peer.RunInline(slices[0]);
  } else {
    peer.Enqueue(std::move(slices));
  }
}

}  // namespace mooncake::engine::tcp
