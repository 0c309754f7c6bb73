// Parts of owners' indexes staged for mounts to come (MasterService::StageSegmentIndex): an index
// too large for one request arrives in parts, kept here by client id and segment name until the
// mount takes them all. Bounded in bytes; a staging no part was added to for kIdle is dropped.
//
// Thread safety: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "master/segment_manager.h"

namespace mooncake::master {

class IndexStaging {
 public:
  static constexpr uint64_t kMaxBytes = 1ull << 30;
  static constexpr absl::Duration kIdle = absl::Seconds(60);

  // Adds `entries` to the staging of (client_id, name); `first` starts it anew. Returns how many
  // entries it holds. BUFFER_OVERFLOW (and no change) when that would pass kMaxBytes in all.
  absl::StatusOr<uint64_t> Stage(std::string_view client_id, std::string_view name, bool first,
                                 std::vector<IndexEntry> entries, int64_t now_us);
  // Takes the staging of (client_id, name) away, with `last` appended, if it holds exactly
  // `count` entries; OBJECT_NOT_FOUND naming both counts otherwise.
  absl::StatusOr<std::vector<IndexEntry>> Take(std::string_view client_id, std::string_view name,
                                               uint64_t count, std::vector<IndexEntry> last);

 private:
  struct Staged {
    std::vector<IndexEntry> entries;
    uint64_t bytes = 0;  // counted against kMaxBytes
    int64_t updated_us = 0;
  };

  absl::Mutex mu_;
  absl::flat_hash_map<std::pair<std::string, std::string>, Staged> staged_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mooncake::master
