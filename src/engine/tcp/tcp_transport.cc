#include "engine/tcp/tcp_transport.h"

#include <unistd.h>

#include <algorithm>

#include "common/error_code.h"
#include "common/strings.h"
#include "engine/tcp/socket_io.h"
#include "engine/tcp/tcp_protocol.h"

namespace mooncake::engine::tcp {

class TcpTransport::Peer {
 public:
  Peer(std::string endpoint, const TcpTransportOptions& options)
      : endpoint_(std::move(endpoint)), options_(options) {}

  ~Peer() {
    std::deque<Slice> left;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      left.swap(queue_);
    }
    for (std::thread& worker : workers_) worker.join();
    for (Slice& slice : left) {
      slice.batch->CompleteSlice(slice.index,
                                 MakeError(ErrorCode::TRANSFER_FAIL, "transfer engine stopped"));
    }
  }

  void Enqueue(std::vector<Slice> slices) {
    absl::MutexLock lock(&mu_);
    for (Slice& slice : slices) queue_.push_back(std::move(slice));
    // One more connection while there is more queued work than connections, up to the limit.
    while (workers_.size() < options_.connections_per_peer && workers_.size() < queue_.size()) {
      workers_.emplace_back([this] { Work(); });
    }
  }

 private:
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  void Work() {
    int fd = -1;
    for (;;) {
      Slice slice;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Peer::HasWorkLocked));
        if (stopping_) break;
        slice = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status status = Run(fd, slice);
      if (!status.ok() && fd >= 0) {
        close(fd);  // the stream's state is unknown after a failure
        fd = -1;
      }
      slice.batch->CompleteSlice(slice.index, status);
    }
    if (fd >= 0) close(fd);
  }

  absl::Status Run(int& fd, const Slice& slice) {
    const bool reused = fd >= 0;
    absl::Status status = RunOnce(fd, slice);
    if (!status.ok() && reused && fd >= 0 && ErrorCodeOf(status) == ErrorCode::TRANSFER_FAIL) {
      // The peer may have restarted since the connection was made: one more try on a new one
      // (a slice is idempotent: the same bytes to the same place).
      close(fd);
      fd = -1;
      status = RunOnce(fd, slice);
    }
    return status;
  }

  absl::Status RunOnce(int& fd, const Slice& slice) {
    if (fd < 0) {
      std::string host;
      int port = 0;
      if (absl::Status s = SplitHostPort(endpoint_, &host, &port); !s.ok()) return s;
      absl::StatusOr<int> connected = ConnectTo(host, port, options_.connect_timeout);
      if (!connected.ok()) return connected.status();
      fd = *connected;
      SetIoTimeout(fd, options_.io_timeout);
    }
    absl::Status status = Exchange(fd, slice);
    if (status.ok()) return status;
    // A peer that refuses a request answers with its own code (INVALID_READ, ...); either way the
    // request failed as a transfer, and the message says why.
    const bool refused = ErrorCodeOf(status) != ErrorCode::TRANSFER_FAIL;
    return MakeError(ErrorCode::TRANSFER_FAIL,
                     fmt::format("{}{}: {}", endpoint_, refused ? " refused the request" : "",
                                 status.message()));
  }

  // One request and its response on `fd`.
  absl::Status Exchange(int fd, const Slice& slice) {
    const uint64_t id = next_id_.fetch_add(1);
    const bool write = slice.op == TransferOp::kWrite;
    const auto header = EncodeRequest(
        RequestHeader{write ? Opcode::kWrite : Opcode::kRead, id, slice.remote, slice.length});
    iovec iov[2] = {{const_cast<uint8_t*>(header.data()), header.size()},
                    {reinterpret_cast<void*>(slice.local), slice.length}};
    if (absl::Status sent = SendAll(fd, iov, write ? 2 : 1); !sent.ok()) return sent;
    uint8_t raw[kResponseHeaderSize];
    if (absl::Status got = RecvAll(fd, raw, sizeof(raw)); !got.ok()) return got;
    absl::StatusOr<ResponseHeader> response = DecodeResponse(raw);
    if (!response.ok())
      return MakeError(ErrorCode::TRANSFER_FAIL, AsStd(response.status().message()));
    if (response->request_id != id && response->status == 0) {
      return MakeError(ErrorCode::TRANSFER_FAIL, "response to another request");
    }
    if (response->status != 0) {
      std::string message(std::min<uint64_t>(response->length, kMaxResponseMetadata), '\0');
      RecvAll(fd, message.data(), message.size()).IgnoreError();
      const auto code = IsKnownErrorCode(response->status)
                            ? static_cast<ErrorCode>(response->status)
                            : ErrorCode::TRANSFER_FAIL;
      return MakeError(code == ErrorCode::OK ? ErrorCode::TRANSFER_FAIL : code, message);
    }
    const uint64_t expected = write ? 0 : slice.length;
    if (response->length != expected) {
      return MakeError(
          ErrorCode::TRANSFER_FAIL,
          fmt::format("response carries {} bytes, expected {}", response->length, expected));
    }
    if (!write) return RecvAll(fd, reinterpret_cast<void*>(slice.local), slice.length);
    return absl::OkStatus();
  }

  const std::string endpoint_;
  const TcpTransportOptions& options_;
  std::atomic<uint64_t> next_id_{1};
  absl::Mutex mu_;
  std::deque<Slice> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;  // started under mu_, joined in the destructor
};

TcpTransport::TcpTransport(TcpTransportOptions options) : options_(options) {}

TcpTransport::~TcpTransport() {
  absl::MutexLock lock(&mu_);
  peers_.clear();
}

TcpTransport::Peer& TcpTransport::PeerFor(const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Peer>& peer = peers_[endpoint];
  if (!peer) peer = std::make_unique<Peer>(endpoint, options_);
  return *peer;
}

void TcpTransport::Submit(const std::string& endpoint, TransferOp op, uint64_t local,
                          uint64_t remote, uint64_t length,
                          const std::shared_ptr<TransferBatch>& batch, size_t index) {
  const uint64_t slice_size = std::max<uint64_t>(options_.slice_size, 4096);
  std::vector<Slice> slices;
  for (uint64_t offset = 0; offset < length; offset += slice_size) {
    const uint64_t n = std::min(slice_size, length - offset);
    slices.push_back(Slice{op, local + offset, remote + offset, n, batch, index});
  }
  batch->AddSlices(index, slices.size());
  PeerFor(endpoint).Enqueue(std::move(slices));
}

}  // namespace mooncake::engine::tcp
