// Transfer requests, their per-request state, and the batch that tracks them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mooncake::engine {

enum class TransferOp { kRead, kWrite };  // READ: remote -> local; WRITE: local -> remote

using SegmentId = uint64_t;

struct TransferRequest {
  TransferOp op = TransferOp::kRead;
  void* local = nullptr;  // inside memory registered with this engine (but see below)
  SegmentId segment = 0;  // from TransferEngine::OpenSegment
  uint64_t remote_addr =
      0;  // an address in the target segment's buffers (what the master hands out)
  uint64_t length = 0;
  // The incarnation of the target that `remote_addr` belongs to (what the master hands out with
  // it); 0: whichever is current. A request never reaches another incarnation.
  uint64_t incarnation = 0;
  // The local range is the caller's own memory, not registered here (a copying get's value, read
  // in place). Allowed where no transport needs local registration (a memcpy, shared memory,
  // TCP); a request that would go over RDMA fails with INVALID_PARAMS instead
  // (TransferEngine::LocalNeedsRegistration tells in advance). The target's side is checked as
  // always.
  bool local_unregistered = false;
};

// The state of one submitted batch. Transports complete its requests slice by slice.
class TransferBatch {
 public:
  explicit TransferBatch(size_t requests);

  // Blocks until every request has finished; returns one status per request, in order:
  // OK, or TRANSFER_FAIL / INVALID_PARAMS with a message.
  std::vector<absl::Status> Wait();
  // Like Wait, but gives up after `timeout` (nullopt).
  std::optional<std::vector<absl::Status>> WaitFor(absl::Duration timeout);
  // The statuses if every request has finished, nullopt otherwise. Never blocks.
  std::optional<std::vector<absl::Status>> Poll();

  // For transports: request `index` will complete after `slices` more CompleteSlice calls.
  void AddSlices(size_t index, size_t slices);
  // One slice of request `index` finished; a failed slice fails its request (first error kept).
  void CompleteSlice(size_t index, const absl::Status& status);
  // Fails request `index` outright (it was never split into slices).
  void Fail(size_t index, absl::Status status);

  // For each finished request, how long it took from the batch's creation to its last slice.
  std::vector<absl::Duration> Latencies() const;

 private:
  struct Request {
    size_t pending = 0;
    absl::Status status;
    absl::Time finished = absl::InfinitePast();
  };
  bool DoneLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return unfinished_ == 0; }

  const absl::Time created_ = absl::Now();
  mutable absl::Mutex mu_;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  size_t unfinished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::engine
