// The TCP data server of a transfer engine: serves READ and WRITE requests into the process's
// registered memory, and DESCRIBE (the segment descriptor, for P2P handshakes).
//
// Every request's range is checked against the BufferRegistry before a byte is touched; a request
// outside registered memory, or one that is malformed, gets an error response and its connection
// is closed. Data moves between the socket and registered memory directly.
//
// Thread safety: Start/Stop from one thread; connections are served on threads of their own.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/buffer_registry.h"

namespace mooncake::engine::tcp {

class TcpDataServer {
 public:
  // `describe` returns the segment descriptor (JSON) for DESCRIBE requests; `handshake` answers
  // HANDSHAKE requests (none: they are refused with NOT_SUPPORTED).
  using HandshakeHandler = std::function<absl::StatusOr<std::string>(std::string_view request)>;
  TcpDataServer(const BufferRegistry* registry, std::function<std::string()> describe,
                absl::Duration io_timeout = absl::Seconds(10),
                HandshakeHandler handshake = nullptr);
  ~TcpDataServer();  // Stop()

  // Listens on host:port; port 0 takes the first free one in [first_port, last_port], or any
  // free port when that range is empty (first_port == 0).
  absl::Status Start(const std::string& host, int port, int first_port = 0, int last_port = 0);
  void Stop();
  int port() const { return port_; }

 private:
  void AcceptLoop();
  void Serve(int fd);
  // Serves one request; false when the connection must close.
  bool ServeOne(int fd);

  const BufferRegistry* registry_;
  const std::function<std::string()> describe_;
  const HandshakeHandler handshake_;
  const absl::Duration io_timeout_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  absl::flat_hash_map<int, std::thread> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<int> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::engine::tcp
