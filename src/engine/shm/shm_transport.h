// Transfers to a peer on the same host through its shared memory: its buffers are mapped into this
// process once, and a transfer is a memcpy.
//
// Thread safety: all methods are thread-safe. A mapping stays alive while a copy uses it, even if
// the peer is detached meanwhile.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "engine/segment_descriptor.h"
#include "engine/transfer.h"

namespace mooncake::engine::shm {

class ShmTransport {
 public:
  // Maps the shared buffers `descriptor` offers, replacing earlier mappings of that segment.
  // Returns how many buffers are now reachable (0: use another transport).
  size_t Attach(const SegmentDescriptor& descriptor);
  void Detach(const std::string& segment);

  // True if [remote, remote + length) lies inside one mapped buffer of `segment`.
  bool Covers(const std::string& segment, uint64_t remote, uint64_t length) const;

  // Copies between `local` and the peer's memory. TRANSFER_FAIL if no mapped buffer of `segment`
  // holds the whole remote range (nothing is copied then).
  absl::Status Copy(const std::string& segment, TransferOp op, void* local, uint64_t remote,
                    uint64_t length) const;

 private:
  struct Peer;
  std::shared_ptr<const Peer> PeerFor(const std::string& segment) const;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Peer>> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::engine::shm
