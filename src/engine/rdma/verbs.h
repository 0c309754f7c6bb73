// The seam between the RDMA transport and libibverbs: every verbs call the transport makes goes
// through these few interfaces. Production uses MakeIbVerbs() (rdma-core, linked statically);
// tests use SoftVerbs (soft_verbs.h), a software stand-in that behaves like a NIC, because our
// machines have no RDMA hardware.
//
// Thread safety: Device and QueuePair methods may be called from several threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mooncake::engine::rdma {

using Gid = std::array<uint8_t, 16>;

// What a peer needs to connect its queue pair to ours.
struct QpAddress {
  uint32_t qp_num = 0;
  uint16_t lid = 0;
  Gid gid{};
};

struct MemoryKeys {
  uint32_t lkey = 0;
  uint32_t rkey = 0;
};

enum class WorkOp { kRead, kWrite };  // one-sided RDMA READ / RDMA WRITE

struct WorkRequest {
  uint64_t id = 0;
  WorkOp op = WorkOp::kRead;
  uint64_t local_addr = 0;
  uint32_t lkey = 0;
  uint64_t remote_addr = 0;
  uint32_t rkey = 0;
  uint32_t length = 0;
  bool signaled = true;  // unsignaled requests complete silently unless they fail
};

struct Completion {
  uint64_t id = 0;
  bool ok = true;
  std::string error;  // when !ok: what the NIC reported
};

// A reliable-connected queue pair. Its completions arrive on its device's completion queue.
class QueuePair {
 public:
  virtual ~QueuePair() = default;
  virtual QpAddress address() const = 0;
  // Moves the queue pair to ready-to-send against `peer` (INIT, RTR, RTS).
  virtual absl::Status Connect(const QpAddress& peer) = 0;
  // Posts work requests, executed in order. After an error the queue pair is unusable: later
  // requests complete with errors (flushed) until it is replaced.
  virtual absl::Status Post(absl::Span<const WorkRequest> requests) = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual const std::string& name() const = 0;
  virtual uint16_t lid() const = 0;
  virtual Gid gid() const = 0;
  // Registers memory for local and remote access; keys are per device.
  virtual absl::StatusOr<MemoryKeys> RegisterMemory(void* addr, uint64_t length) = 0;
  virtual absl::Status DeregisterMemory(void* addr) = 0;
  virtual absl::StatusOr<std::unique_ptr<QueuePair>> CreateQueuePair() = 0;
  // Takes up to `max` completions from the device's completion queue; never blocks.
  virtual int PollCompletions(Completion* out, int max) = 0;
};

class Verbs {
 public:
  virtual ~Verbs() = default;
  // Whether verbs can be used on this host at all (e.g. its libibverbs could be loaded), and if
  // not, why. With an error, ListDevices() is empty.
  virtual absl::Status Available() { return absl::OkStatus(); }
  // Names of the devices with an active port.
  virtual std::vector<std::string> ListDevices() = 0;
  virtual absl::StatusOr<std::unique_ptr<Device>> Open(const std::string& name) = 0;
};

// libibverbs: RC queue pairs, one completion queue per device, port 1, GID index 0.
std::unique_ptr<Verbs> MakeIbVerbs();

}  // namespace mooncake::engine::rdma
