// Handing shared-memory descriptors to peers on the same host.
//
// The server listens on an abstract Unix socket. Abstract sockets belong to a network namespace,
// so only processes that share the host and the network namespace can connect: exactly those for
// which shared memory is right. A client sends an allocation id (8 bytes, little-endian); the
// server answers one status byte (0 = found) with the allocation's descriptor attached (SCM_RIGHTS)
// when found.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/shm/shared_memory.h"

namespace mooncake::engine::shm {

class ShmServer {
 public:
  explicit ShmServer(const SharedMemory* memory) : memory_(memory) {}
  ~ShmServer();  // Stop()

  // Listens on a fresh abstract name; name() tells which ("@" stands for the leading NUL).
  absl::Status Start();
  void Stop();
  const std::string& name() const { return name_; }

 private:
  void Serve();

  const SharedMemory* memory_;
  std::string name_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Connects to a ShmServer and returns the descriptor of allocation `id`. TRANSFER_FAIL when the
// server cannot be reached (another host or network namespace), OBJECT_NOT_FOUND when it has no
// such allocation.
absl::StatusOr<int> FetchSharedFd(const std::string& server_name, uint64_t id,
                                  absl::Duration timeout);

}  // namespace mooncake::engine::shm
