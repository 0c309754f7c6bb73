#include "engine/transfer.h"

namespace mooncake::engine {

TransferBatch::TransferBatch(size_t requests) : requests_(requests), unfinished_(requests) {}

void TransferBatch::AddSlices(size_t index, size_t slices) {
  absl::MutexLock lock(&mu_);
  requests_[index].pending += slices;
}

void TransferBatch::CompleteSlice(size_t index, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  Request& request = requests_[index];
  if (!status.ok() && request.status.ok()) request.status = status;
  if (--request.pending == 0) {
    request.finished = absl::Now();
    --unfinished_;
  }
}

void TransferBatch::Fail(size_t index, absl::Status status) {
  absl::MutexLock lock(&mu_);
  requests_[index].status = std::move(status);
  if (requests_[index].pending == 0) {
    requests_[index].finished = absl::Now();
    --unfinished_;
  }
}

std::vector<absl::Duration> TransferBatch::Latencies() const {
  absl::MutexLock lock(&mu_);
  std::vector<absl::Duration> out;
  for (const Request& request : requests_) {
    if (request.pending == 0 && request.finished != absl::InfinitePast()) {
      out.push_back(request.finished - created_);
    }
  }
  return out;
}

std::vector<absl::Status> TransferBatch::Wait() { return *WaitFor(absl::InfiniteDuration()); }

std::optional<std::vector<absl::Status>> TransferBatch::WaitFor(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(this, &TransferBatch::DoneLocked), timeout)) {
    return std::nullopt;
  }
  std::vector<absl::Status> out;
  out.reserve(requests_.size());
  for (const Request& request : requests_) out.push_back(request.status);
  return out;
}

std::optional<std::vector<absl::Status>> TransferBatch::Poll() {
  return WaitFor(absl::ZeroDuration());
}

}  // namespace mooncake::engine
