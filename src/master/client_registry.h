// Which clients the master has heard from, and when.
//
// A client is known from its first MountSegment or Heartbeat. One that stays silent longer than
// the liveness TTL is dead: the master unmounts its segments and forgets it. A forgotten client
// that heartbeats again (after a partition, or because the master restarted) is told to remount.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace mooncake::master {

class ClientRegistry {
 public:
  // Records that `client_id` is alive at `now_us`. Returns true if the client was unknown.
  bool Touch(std::string_view client_id, int64_t now_us);

  // Forgets and returns the clients last heard from before `deadline_us`.
  std::vector<std::string> TakeSilentSince(int64_t deadline_us);

  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> last_seen_us_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mooncake::master
