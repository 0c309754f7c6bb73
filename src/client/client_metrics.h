// What a client did, for its process's /metrics (the store's, or a client's with
// enable_client_http_server): calls, keys, misses, errors and bytes per operation, and each call's
// latency. The series are process-wide (every client of the process adds to them) and exist at 0
// from the first client's creation, so rate() and absent() work before the first call.
//
// Thread safety: a CallRecord belongs to one call; the counters it adds to are atomics.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"

namespace mooncake::client {

enum class ClientOp { kPut, kUpsert, kGet, kExist, kGetSize, kRemove };

// Creates every client series (at 0) in the process's registry; later calls do nothing.
void RegisterClientMetrics();

// One public call of Client: counts its keys as they are tallied, then, when it goes, the call,
// its duration and its totals.
class CallRecord {
 public:
  explicit CallRecord(ClientOp op) : op_(op), start_(absl::Now()) {}
  CallRecord(const CallRecord&) = delete;
  CallRecord& operator=(const CallRecord&) = delete;
  ~CallRecord();

  // One key's outcome and, if it succeeded, the bytes it moved. OBJECT_NOT_FOUND is a miss, not
  // an error: a cache is asked for what it does not hold all the time.
  void Key(const absl::Status& status, uint64_t bytes = 0);
  // A key that was looked for and is absent (exist's false).
  void Miss() { ++keys_, ++misses_; }
  // The keys a call removed (remove_all, remove_by_regex: their count), or its error as one key.
  void Removed(const absl::StatusOr<uint64_t>& removed) {
    if (removed.ok()) {
      keys_ += *removed;
    } else {
      Key(removed.status());
    }
  }

  // Every key of `results`, with `bytes(i)` for each that succeeded.
  template <typename T, typename BytesOf>
  void Keys(const std::vector<T>& results, BytesOf bytes) {
    for (size_t i = 0; i < results.size(); ++i) {
      if constexpr (std::is_same_v<T, absl::Status>) {
        Key(results[i], results[i].ok() ? bytes(i) : 0);
      } else {
        Key(results[i].status(), results[i].ok() ? bytes(i) : 0);
      }
    }
  }

 private:
  const ClientOp op_;
  const absl::Time start_;
  uint64_t keys_ = 0;
  uint64_t misses_ = 0;
  uint64_t errors_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace mooncake::client
