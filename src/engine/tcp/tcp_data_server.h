// The TCP data server of a transfer engine: serves READ and WRITE requests into the process's
// registered memory, and DESCRIBE (the segment descriptor, for P2P handshakes).
//
// Every connection opens with HELLO (and AUTH when the server has an auth token); see
// tcp_protocol.h. Every request's range is checked against the BufferRegistry before a byte is
// touched; a request outside registered memory, or one that is malformed, gets an error response
// and its connection is closed. Data moves between the socket and registered memory directly.
//
// Bounded resources: connections wait in one epoll set and cost no thread while idle; a small
// elastic pool of threads (at most `max_workers`) waits on that set and serves whichever
// connection has a request. A connection idle for `idle_timeout` is closed; past
// `max_connections` a new connection is answered with an error and closed. A failure to start a
// thread leaves the pool smaller, never stops the server.
//
// Thread safety: Start/Stop from one thread; everything else runs on the pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "engine/buffer_registry.h"

namespace mooncake::engine::tcp {

struct TcpDataServerOptions {
  uint64_t incarnation = 0;  // this process's; HELLOs expecting another are refused
  AuthToken auth;            // enabled: connections must pass AUTH before anything else
  absl::Duration io_timeout = absl::Seconds(10);  // for the rest of a request once it began
  absl::Duration idle_timeout = absl::Seconds(120);
  size_t max_connections = 16384;  // also kept below the process's descriptor limit
  size_t max_workers = 64;
};

class TcpDataServer {
 public:
  // `describe` returns the segment descriptor (JSON) for DESCRIBE requests; `handshake` answers
  // HANDSHAKE requests (none: they are refused with NOT_SUPPORTED).
  using HandshakeHandler = std::function<absl::StatusOr<std::string>(std::string_view request)>;
  TcpDataServer(const BufferRegistry* registry, std::function<std::string()> describe,
                TcpDataServerOptions options = {}, HandshakeHandler handshake = nullptr);
  ~TcpDataServer();  // Stop()

  // Listens on host:port; port 0 takes the first free one in [first_port, last_port], or any
  // free port when that range is empty (first_port == 0).
  absl::Status Start(const std::string& host, int port, int first_port = 0, int last_port = 0);
  void Stop();
  int port() const { return port_; }

  // Serves the requests arriving on connected socket `fd` in the calling thread, exactly as for an
  // accepted connection, until one fails or the peer stops sending; closes nothing (for tests and
  // fuzzing, e.g. over a socketpair). Needs no Start().
  void ServeSocket(int fd);

  // For tests and metrics.
  size_t connections() const;
  size_t workers() const;

 private:
  struct Connection;
  void WorkerLoop();
  // Starts one more worker if none is waiting and the pool may grow. REQUIRES: mu_ held.
  void MaybeGrowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AcceptAll();
  // Serves requests on `connection` while they keep coming; false when it must close.
  bool Serve(Connection& connection);
  // Serves one request; false when the connection must close.
  bool ServeOne(Connection& connection);
  bool Greet(Connection& connection, uint64_t request_id, uint64_t expected_incarnation);
  void Close(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseIdleLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const BufferRegistry* registry_;
  const std::function<std::string()> describe_;
  const HandshakeHandler handshake_;
  const TcpDataServerOptions options_;
  size_t max_connections_ = 0;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: readable once Stop() begins
  int port_ = 0;
  std::atomic<bool> stopping_{false};

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 2;  // 0: the stop event, 1: the listening socket
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  size_t waiting_ ABSL_GUARDED_BY(mu_) = 0;  // workers inside epoll_wait
  absl::Time next_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace mooncake::engine::tcp
