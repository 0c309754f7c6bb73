// Transfers to a peer on the same host through its shared memory: its buffers are mapped into this
// process once, and a transfer is a memcpy.
//
// A peer's mappings are tied to its incarnation and to the session that handed them out: when the
// peer's process ends, the session hangs up, the mappings are released, and `on_gone(segment)` is
// called, so a new process under the same segment name is never written through the old one's
// memory. A copy that races with the peer's end is caught by Alive(), which callers check after
// copying and before reporting success.
//
// Thread safety: all methods are thread-safe. A mapping stays alive while a copy uses it, even if
// the peer is detached meanwhile.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/auth.h"
#include "engine/segment_descriptor.h"
#include "engine/transfer.h"

namespace mooncake::engine::shm {

class ShmTransport {
 public:
  // `on_gone(segment)` runs on the transport's watcher thread when a mapped peer's process ends.
  ShmTransport(AuthToken auth, std::function<void(const std::string&)> on_gone);
  ~ShmTransport();

  ShmTransport(const ShmTransport&) = delete;
  ShmTransport& operator=(const ShmTransport&) = delete;

  // Maps the shared buffers `descriptor` offers, replacing earlier mappings of that segment.
  // Returns how many buffers are now reachable (0: use another transport).
  size_t Attach(const SegmentDescriptor& descriptor);
  void Detach(const std::string& segment);

  // True if [remote, remote + length) lies inside one mapped buffer of `segment` as incarnation
  // `incarnation` offered it.
  bool Covers(const std::string& segment, uint64_t incarnation, uint64_t remote,
              uint64_t length) const;

  // Copies between `local` and the memory of incarnation `incarnation` of `segment`.
  // TRANSFER_FAIL if no mapped buffer of it holds the whole remote range (nothing is copied then).
  absl::Status Copy(const std::string& segment, uint64_t incarnation, TransferOp op, void* local,
                    uint64_t remote, uint64_t length) const;
  // Copy() when a mapped buffer holds the whole range, and true; false (nothing copied) when none
  // does: the caller takes another transport. Covers() and Copy() in one look-up.
  bool TryCopy(const std::string& segment, uint64_t incarnation, TransferOp op, void* local,
               uint64_t remote, uint64_t length) const;

  // False once the process of incarnation `incarnation` of `segment` has ended (or nothing of it
  // is mapped).
  bool Alive(const std::string& segment, uint64_t incarnation) const;

 private:
  struct Peer;
  std::shared_ptr<const Peer> PeerFor(const std::string& segment) const;
  void Watch();

  const AuthToken auth_;
  const std::function<void(const std::string&)> on_gone_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  std::thread watcher_;

  mutable absl::Mutex mu_;
  uint64_t next_serial_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, std::shared_ptr<const Peer>> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::engine::shm
