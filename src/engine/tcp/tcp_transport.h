// The initiator side of the TCP transport: moves slices of transfers to and from peers' data
// servers over a small pool of connections per peer.
//
// Each peer gets up to `connections_per_peer` worker threads that take slices from the peer's queue
// and run each on an idle pooled connection, so one large request streams over several connections
// at once.
// A slice that fails (connection lost, peer refuses, timeout) fails its request with
// TRANSFER_FAIL and the message; the connection is dropped and re-made for the next slice.
//
// Thread safety: Submit may be called from any thread.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "engine/transfer.h"

namespace mooncake::engine::tcp {

struct TcpTransportOptions {
  size_t connections_per_peer = 4;
  uint64_t slice_size = 1u << 20;  // bytes; larger requests are split
  absl::Duration connect_timeout = absl::Seconds(3);
  absl::Duration io_timeout = absl::Seconds(10);  // one send or receive
  // How long a lone small request (<= 64 KiB, run in the caller's thread) polls for its answer
  // before sleeping: saves a thread wakeup on the latency path. 0 never spins.
  absl::Duration spin = absl::Microseconds(100);
  AuthToken auth;  // answers a server's AUTH challenge
};

struct Slice {
  TransferOp op;
  uint64_t local;
  uint64_t remote;
  uint64_t length;
  std::shared_ptr<TransferBatch> batch;
  size_t index;              // of the request within the batch
  uint64_t incarnation = 0;  // the peer's, as the request's view of it says (0: any)
};

// A connection to a data server that has passed HELLO (and AUTH when the server asks for it).
struct DataConnection {
  int fd = -1;
  uint64_t incarnation = 0;  // the server's
};
// Connects to the data server at `endpoint` and opens the session. TRANSFER_FAIL when it cannot be
// reached; INVALID_VERSION when it is not `expected_incarnation` (0: any); ILLEGAL_CLIENT when it
// requires a token this side does not have, or refuses ours.
absl::StatusOr<DataConnection> OpenDataConnection(const std::string& endpoint,
                                                  uint64_t expected_incarnation,
                                                  const TcpTransportOptions& options);

// One request of `opcode` (DESCRIBE or HANDSHAKE, with `payload`) to the data server at `endpoint`
// on a connection of its own; returns the response's payload. TRANSFER_FAIL when the peer cannot be
// reached or does not answer in time; the peer's own code when it refuses.
absl::StatusOr<std::string> CallPeer(const std::string& endpoint, uint8_t opcode,
                                     std::string_view payload, const TcpTransportOptions& options,
                                     uint64_t expected_incarnation = 0);

class TcpTransport {
 public:
  // `on_failure(endpoint)` is called (from a transport thread) when a slice to `endpoint` fails.
  explicit TcpTransport(TcpTransportOptions options,
                        std::function<void(const std::string&)> on_failure = nullptr);
  ~TcpTransport();  // stops every connection; queued slices fail

  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // Splits the request into slices, registers them with the batch, and queues them for `endpoint`
  // ("host:port" of the peer's data server). With `may_run_inline`, a request that is one slice
  // runs in the calling thread before Submit returns (the latency path for lone small requests).
  // Only a server of `incarnation` (0: any) is used: one that restarted fails the request.
  // REQUIRES: the local range is registered memory.
  void Submit(const std::string& endpoint, uint64_t incarnation, TransferOp op, uint64_t local,
              uint64_t remote, uint64_t length, const std::shared_ptr<TransferBatch>& batch,
              size_t index, bool may_run_inline = false);

  const TcpTransportOptions& options() const { return options_; }

 private:
  class Peer;
  Peer& PeerFor(const std::string& endpoint);

  const TcpTransportOptions options_;
  const std::function<void(const std::string&)> on_failure_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::engine::tcp
