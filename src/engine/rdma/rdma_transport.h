// The RDMA transport: one-sided RDMA READ/WRITE over reliable-connected queue pairs, through the
// verbs seam (verbs.h).
//
// - Every registered buffer is a memory region on every NIC in use; the descriptor publishes each
//   NIC (name, LID, GID) and, per buffer, its remote key on each NIC.
// - Requests are split into slices (`slice_size`) striped over the local NICs; NIC i talks to the
//   peer's NIC i modulo its NIC count, over one queue pair per (peer, NIC), connected by a
//   handshake through the peer's data endpoint (HANDSHAKE).
// - Selective signaling: only every `signal_every`-th slice posted to a queue pair, and the last of
//   each post, asks for a completion. Completions on an RC queue pair arrive in order, so a
//   signaled completion also completes the unsignaled slices before it.
// - A slice that fails is tried once more on another NIC (or on a new queue pair of the same NIC
//   when there is one); a queue pair that reported an error is replaced before its next use.
//
// Thread safety: all methods are thread-safe. One thread polls the completion queues.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/rdma/verbs.h"
#include "engine/segment_descriptor.h"
#include "engine/transfer.h"

namespace mooncake::engine::rdma {

struct RdmaOptions {
  uint64_t slice_size = 1u << 20;
  size_t signal_every = 16;
  int max_attempts = 2;  // per slice
};

class RdmaTransport {
 public:
  // Sends a handshake (JSON) to a peer's data endpoint and returns its answer.
  using HandshakeCall =
      std::function<absl::StatusOr<std::string>(const std::string& endpoint, const std::string&)>;

  // Opens the NICs named in `device_names` (comma-separated), or every active one when empty.
  // INVALID_PARAMS naming what was found when none can be used.
  // `on_failure(segment)` is called when a request to `segment` fails for good.
  static absl::StatusOr<std::unique_ptr<RdmaTransport>> Create(
      Verbs* verbs, const std::string& device_names, HandshakeCall handshake, RdmaOptions options,
      std::function<void(const std::string&)> on_failure = nullptr);
  ~RdmaTransport();

  std::vector<RdmaNic> nics() const;

  // Registers [addr, addr + length) on every NIC; on failure nothing stays registered.
  absl::Status Register(void* addr, uint64_t length);
  absl::Status Deregister(void* addr);
  // The remote keys of the buffer starting at `addr`, one per NIC (empty if not registered).
  std::vector<uint32_t> RemoteKeys(uint64_t addr) const;

  // The peer side of a handshake: connects a queue pair of ours to the peer's and answers with it.
  absl::StatusOr<std::string> AcceptHandshake(std::string_view request);

  // True if `target` offers RDMA and one of its buffers with remote keys holds the remote range.
  bool CanReach(const SegmentDescriptor& target, uint64_t remote, uint64_t length) const;

  // Queues the request as slices over the NICs. REQUIRES: the local range is registered here and
  // CanReach(target, remote, length).
  void Submit(const std::shared_ptr<const SegmentDescriptor>& target, TransferOp op, uint64_t local,
              uint64_t remote, uint64_t length, const std::shared_ptr<TransferBatch>& batch,
              size_t index);

 private:
  struct Region {
    uint64_t addr = 0;
    uint64_t length = 0;
    std::vector<MemoryKeys> keys;  // per NIC
  };
  struct Slice {
    std::shared_ptr<const SegmentDescriptor> target;
    TransferOp op;
    uint64_t local, remote;
    uint32_t length;
    std::vector<uint32_t> rkeys;  // the target buffer's, per target NIC
    std::shared_ptr<TransferBatch> batch;
    size_t index;
    int attempts = 0;
    size_t nic = 0;  // local NIC of the current attempt
  };
  struct Outstanding {
    uint64_t wr_id;
    Slice slice;
  };
  struct Connection {
    absl::Mutex mu;
    std::unique_ptr<QueuePair> qp ABSL_GUARDED_BY(mu);
    bool broken ABSL_GUARDED_BY(mu) = false;
    std::deque<Outstanding> inflight ABSL_GUARDED_BY(mu);
    size_t since_signal ABSL_GUARDED_BY(mu) = 0;
  };

  RdmaTransport(std::vector<std::unique_ptr<Device>> devices, HandshakeCall handshake,
                RdmaOptions options, std::function<void(const std::string&)> on_failure);
  // Posts slices (all for one local NIC and one peer) on their connection.
  void Post(size_t nic, std::vector<Slice> slices);
  // The connected queue pair to `target` from NIC `nic`, made (or re-made) as needed.
  absl::StatusOr<Connection*> Connect(const SegmentDescriptor& target, size_t nic);
  uint32_t LocalKey(size_t nic, uint64_t addr, uint64_t length) const;
  // The buffer of `target` with remote keys that holds the remote range, or null.
  static const BufferInfo* RdmaBuffer(const SegmentDescriptor& target, uint64_t remote,
                                      uint64_t length);
  void Retry(Slice slice, const std::string& error);
  void PollLoop();
  void OnCompletion(const Completion& completion);

  std::vector<std::unique_ptr<Device>> devices_;
  const HandshakeCall handshake_;
  const RdmaOptions options_;
  const std::function<void(const std::string&)> on_failure_;

  mutable absl::Mutex regions_mu_;
  std::map<uint64_t, Region> regions_ ABSL_GUARDED_BY(regions_mu_);

  absl::Mutex connections_mu_;
  std::map<std::pair<std::string, size_t>, std::unique_ptr<Connection>> connections_
      ABSL_GUARDED_BY(connections_mu_);
  // Queue pairs peers connected to us, by the peer's queue pair (kept while the peer uses them).
  std::map<std::string, std::unique_ptr<QueuePair>> accepted_ ABSL_GUARDED_BY(connections_mu_);

  absl::Mutex wr_mu_;
  absl::flat_hash_map<uint64_t, Connection*> by_wr_ ABSL_GUARDED_BY(wr_mu_);
  std::atomic<uint64_t> next_wr_{1};
  std::atomic<size_t> next_nic_{0};

  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

}  // namespace mooncake::engine::rdma
