// Leader election of masters in etcd.
//
// Every master campaigns for one key (`mooncake/<cluster_id>/master/leader`): it grants itself an
// etcd lease and creates the key under it, holding its RPC address, only if the key does not exist
// (one transaction). The one that created it leads; the key's create_revision is its **epoch**,
// which grows with every new leader since etcd revisions only grow. The others watch the key and
// campaign again when it goes (the leader resigned, or its lease expired).
//
// A leader renews its lease every third of the TTL and counts its leadership as valid until the
// *send* time of its last successful renewal plus the TTL, less a safety margin: etcd can only
// have received the renewal after it was sent, so the lease cannot expire before then, and a
// leader that cannot reach etcd, or was paused (SIGSTOP, a VM stall), stops answering as leader
// before another can have been elected. epoch() reads the clock on every call, so a process that
// wakes from a pause sees at once that its leadership ran out.
//
// Thread safety: thread-safe. One background thread per election.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "http/etcd_client.h"
#include "http/etcd_leader.h"

namespace mooncake::master {

struct ElectionOptions {
  std::string key;    // the leader key
  std::string value;  // what the leader writes under it: its RPC address, "host:port"
  absl::Duration lease_ttl = absl::Seconds(2);
  // Subtracted from every validity window, for differences between this host's clock rate and
  // etcd's. Default: a tenth of the TTL, at least 100 ms.
  absl::Duration safety_margin = absl::ZeroDuration();
  // A monotonic clock (tests move it forward to stand for a paused process).
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
  // Called (from the election's thread) when this process is about to lead (before epoch()
  // says so) and after it stopped leading.
  std::function<void(uint64_t epoch)> on_elected = [](uint64_t) {};
  std::function<void(uint64_t epoch)> on_deposed = [](uint64_t) {};
};

using http::LeaderInfo;
using http::LeaderKey;
using http::ReadLeader;

class LeaderElection {
 public:
  LeaderElection(http::EtcdClient* etcd, ElectionOptions options);
  ~LeaderElection();  // Stop()

  void Start();
  // Stops campaigning; a leader resigns (deletes its key, revokes its lease) so that another
  // master takes over at once.
  void Stop();

  // This process's epoch while it leads and its lease is certainly alive; 0 otherwise.
  uint64_t epoch() const;
  // The leader as this process last saw it (itself, when leading).
  std::optional<LeaderInfo> leader() const;
  // Waits until this process leads; false at the timeout.
  bool WaitUntilLeader(absl::Duration timeout) const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  void Run();
  // One term as leader: renews the lease until it is lost or Stop() is called.
  void Lead(int64_t lease, uint64_t epoch, TimePoint valid_until);
  // Waits until the leader key goes, up to one TTL (or briefly, when etcd cannot be reached).
  void Follow(const http::EtcdKeyValue& holder);
  bool Sleep(absl::Duration d);  // false once stopping

  http::EtcdClient* const etcd_;
  const ElectionOptions options_;
  const absl::Duration margin_;

  std::atomic<uint64_t> epoch_{0};
  std::atomic<int64_t> valid_until_ns_{0};  // steady-clock nanoseconds
  mutable absl::Mutex mu_;
  std::optional<LeaderInfo> leader_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace mooncake::master
