// Handing shared-memory descriptors to peers on the same host, and telling them when we are gone.
//
// The server listens on an abstract Unix socket. Abstract sockets belong to a network namespace,
// so only processes that share the host and the network namespace can connect: exactly those for
// which shared memory is right. On connect the server sends a greeting (the HELLO answer of the
// TCP protocol: incarnation, auth flag, nonce). With auth on, the client answers with its proof
// (HMAC of the nonce, see common/auth.h) and must run under the server's uid (or root). Then the
// client sends allocation ids (8 bytes, little-endian); the server answers each with one status
// byte (0 = found) and the allocation's descriptor attached (SCM_RIGHTS) when found.
//
// A client keeps its connection for as long as it maps the server's memory: when the server's
// process ends, the connection hangs up, which is how the client learns that the memory it maps is
// no longer anyone's segment.
//
// Bounded: at most `max_connections` clients at once (others are closed at once); all are served
// by one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "engine/shm/shared_memory.h"

namespace mooncake::engine::shm {

class ShmServer {
 public:
  ShmServer(const SharedMemory* memory, uint64_t incarnation, AuthToken auth,
            size_t max_connections = 4096)
      : memory_(memory),
        incarnation_(incarnation),
        auth_(std::move(auth)),
        max_connections_(max_connections) {}
  ~ShmServer();  // Stop()

  // Listens on a fresh abstract name; name() tells which ("@" stands for the leading NUL).
  absl::Status Start();
  void Stop();
  const std::string& name() const { return name_; }

 private:
  struct Client;
  void Serve();
  // Reads what `client` sent and answers it; false when it must be closed.
  bool Advance(Client& client);

  const SharedMemory* memory_;
  const uint64_t incarnation_;
  const AuthToken auth_;
  const size_t max_connections_;
  std::string name_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// An open session with a ShmServer.
class ShmSession {
 public:
  // Connects to `server_name` and passes its greeting. TRANSFER_FAIL when the server cannot be
  // reached (another host or network namespace) or does not answer; INVALID_VERSION when it is not
  // `incarnation`; ILLEGAL_CLIENT when it wants a token we lack or refuses ours.
  static absl::StatusOr<ShmSession> Open(const std::string& server_name, uint64_t incarnation,
                                         const AuthToken& auth, absl::Duration timeout);
  ShmSession(ShmSession&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ShmSession& operator=(ShmSession&& other) noexcept;
  ~ShmSession();

  // The descriptor of allocation `id`. OBJECT_NOT_FOUND when the server has no such allocation,
  // TRANSFER_FAIL when it does not answer.
  absl::StatusOr<int> FetchFd(uint64_t id);
  // The connection: it hangs up when the server's process ends.
  int fd() const { return fd_; }
  // Hands the connection over (the caller closes it).
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  explicit ShmSession(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace mooncake::engine::shm
